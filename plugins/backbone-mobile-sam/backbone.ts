// The `mobile_sam` backbone: MobileSAM's TinyViT image encoder with SAM's
// prompt encoder and mask decoder, under one root whose names are the official
// checkpoint keys (`image_encoder.*`, `prompt_encoder.*`, `mask_decoder.*`).
import { SamHead, SegmentationBackbone, defaultSamHeadConfig, type Backbone, type BackboneDefinition } from '../../src/index.js';
import { MOBILE_SAM_PRESETS, tinyVitSchema, type TinyVitConfig } from './config.js';
import { TinyViT } from './model.js';

export function createMobileSamBackbone(config: TinyVitConfig, preset: string): Backbone {
  const encoder = new TinyViT(config);
  // the embedding grid is img_size / 16 for MobileSAM (encoder.patchSize follows the merging strides)
  const head = new SamHead(defaultSamHeadConfig(config.out_chans, config.img_size, encoder.patchSize));
  return new SegmentationBackbone({ id: 'mobile_sam', preset, encoder, head, imageSize: config.img_size });
}

export const mobileSamBackbone: BackboneDefinition<TinyVitConfig> = {
  id: 'mobile_sam',
  summary: 'MobileSAM: TinyViT image encoder (MBConv + windowed attention with learned offset biases) distilled from SAM, SAM prompt encoder and mask decoder',
  aliases: ['mobilesam'],
  presets: MOBILE_SAM_PRESETS as Record<string, Record<string, unknown>>,
  defaultPreset: 'tiny_vit',
  schema: tinyVitSchema,
  create: createMobileSamBackbone,
  display: { family: 'MobileSAM', encoders: { tiny_vit: 'Tiny-ViT', '*': 'Tiny-ViT' } },
  flagKeys: { 'image-size': 'img_size' },
  // from random weights, on the embedded data at the tiny preset: 3e-3 with a cosine decay over 2000
  // steps ends at disc Dice 0.87 with LoRA (seeds 0 and 1) and 0.88 with the adapter, above 1e-3 over
  // 3000 (0.859) in two thirds of the time (docs/results.md)
  fromScratch: { lr: 3e-3, lrSchedule: 'cosine', steps: 2000 },
  // TinyViT derives `attention_bias_idxs` from the window size; some MobileSAM checkpoints persist it
  isDerivedCheckpointKey: (key) => key.endsWith('.attention_bias_idxs'),
};
