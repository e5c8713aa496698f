// The `sam` backbone plugin: SAM's ViT image encoder (presets vit_b, vit_l,
// vit_h and a CPU-sized `tiny`) and the parity kinds `sam.Block` and
// `sam.ImageEncoderViT`.
import type { Registry } from '../../src/index.js';
import { samBackbone } from './backbone.js';
import { samBlockKind, samEncoderKind } from './parity.js';

export function register(registry: Registry): void {
  registry.registerParityKind(samBlockKind);
  registry.registerParityKind(samEncoderKind);
  registry.registerBackbone(samBackbone);
}

export { Attention } from './attention.js';
export { MlpBlock, SamBlock, type SamBlockOptions } from './block.js';
export { ImageEncoderViT, type ImageEncoderOptions } from './model.js';
export { createSamBackbone, samBackbone } from './backbone.js';
export * from './config.js';
export * from './keys.js';
export { samBlockSites } from './sites.js';
export { applyMod, samBlockKind, samEncoderKind, type SamMod } from './parity.js';
export { windowPartition, windowUnpartition } from './window.js';
export { relPosLookupMatrix, relPosTable } from './rel-pos.js';
