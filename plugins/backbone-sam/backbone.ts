// The `sam` backbone: SAM's ViT image encoder with SAM's prompt encoder and
// mask decoder, under one root whose names are the official checkpoint keys
// (`image_encoder.*`, `prompt_encoder.*`, `mask_decoder.*`).
import { SamHead, SegmentationBackbone, defaultSamHeadConfig, type Backbone, type BackboneDefinition } from '../../src/index.js';
import { DEFAULT_SAM_PRESET, samConfigSchema, samPresets, type SamEncoderConfig } from './config.js';
import { ImageEncoderViT } from './model.js';

export function createSamBackbone(config: SamEncoderConfig, preset: string): Backbone {
  const encoder = new ImageEncoderViT(config);
  const head = new SamHead(defaultSamHeadConfig(config.out_chans, config.img_size, config.patch_size));
  return new SegmentationBackbone({ id: 'sam', preset, encoder, head, imageSize: config.img_size });
}

export const samBackbone: BackboneDefinition<SamEncoderConfig> = {
  id: 'sam',
  summary: 'Segment Anything (SAM): ViT image encoder with windowed and global attention, SAM prompt encoder and mask decoder',
  aliases: ['sam_vit', 'segment-anything'],
  presets: samPresets,
  defaultPreset: DEFAULT_SAM_PRESET,
  schema: samConfigSchema,
  create: createSamBackbone,
  display: { family: 'SAM', encoders: { vit_b: 'ViT-B', vit_l: 'ViT-L', vit_h: 'ViT-H', '*': 'ViT' } },
  flagKeys: { 'image-size': 'img_size' },
  // from random weights: disc Dice 0.85 in ~400 steps at 3e-3, ~0.89 after 1600 with a cosine decay
  // (the embedded data at the tiny preset, docs/results.md)
  fromScratch: { lr: 3e-3, lrSchedule: 'cosine', steps: 1600 },
};
