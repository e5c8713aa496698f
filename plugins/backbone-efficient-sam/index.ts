// The efficient_sam backbone plugin: EfficientSAM's ViT image encoder with its
// own prompt encoder and mask decoder, and the parity kinds that check them.
import { SegmentationBackbone, type Registry } from '../../src/index.js';
import { efficientSamPresets, efficientSamSchema, encoderOptions, headOptions, type EfficientSamConfig } from './config.js';
import { EfficientSamImageEncoder } from './encoder.js';
import { EfficientSamHead } from './head.js';
import { imageEncoderKind, maskHeadKind } from './parity.js';

export { efficientSamPresets, efficientSamSchema, type EfficientSamConfig } from './config.js';
export { EfficientSamImageEncoder } from './encoder.js';
export { EfficientSamHead, predictEfficientSamMasks, type QueryMasks } from './head.js';

/** EfficientSAM normalises 0..1 pixels with ImageNet statistics; on the 0..255 scale: */
const IMAGENET_MEAN: [number, number, number] = [0.485 * 255, 0.456 * 255, 0.406 * 255];
const IMAGENET_STD: [number, number, number] = [0.229 * 255, 0.224 * 255, 0.225 * 255];

export function createEfficientSam(config: EfficientSamConfig, preset: string): SegmentationBackbone {
  return new SegmentationBackbone({
    id: 'efficient_sam',
    preset,
    encoder: new EfficientSamImageEncoder(encoderOptions(config)),
    head: new EfficientSamHead(headOptions(config)),
    imageSize: config.img_size,
    pixelMean: IMAGENET_MEAN,
    pixelStd: IMAGENET_STD,
  });
}

export function register(registry: Registry): void {
  registry.registerBackbone({
    id: 'efficient_sam',
    summary: 'EfficientSAM (yformer/EfficientSAM): plain ViT encoder (vit_t / vit_s) with its prompt encoder and mask decoder',
    aliases: ['efficientsam', 'efficient-sam'],
    presets: efficientSamPresets,
    defaultPreset: 'vit_t',
    schema: efficientSamSchema,
    create: (config: EfficientSamConfig, preset: string) => createEfficientSam(config, preset),
    display: { family: 'EfficientSAM', encoders: { vit_t: 'ViT-Tiny', vit_s: 'ViT-Small', '*': 'ViT' } },
    flagKeys: { 'image-size': 'img_size' },
    // from random weights: disc Dice 0.85 in ~400 steps at 3e-3, ~0.90 after 1600 with a cosine decay
    // (the embedded data at the tiny preset, docs/results.md)
    fromScratch: { lr: 3e-3, lrSchedule: 'cosine', steps: 1600 },
  });
  registry.registerParityKind(imageEncoderKind);
  registry.registerParityKind(maskHeadKind);
}
