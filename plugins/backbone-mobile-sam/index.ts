// The `mobile_sam` backbone plugin: MobileSAM's TinyViT image encoder (presets
// `tiny_vit` = the official encoder, and a CPU-sized `tiny`), the parity kind
// `tinyvit.TinyViT`, and the parity kind `torch.checkpoint` for the core's
// torch.save reader (MobileSAM ships its weights as a `.pt`).
import type { Registry } from '../../src/index.js';
import { mobileSamBackbone } from './backbone.js';
import { torchCheckpointKind } from './checkpoint-parity.js';
import { tinyVitKind } from './parity.js';

export function register(registry: Registry): void {
  registry.registerParityKind(tinyVitKind);
  registry.registerParityKind(torchCheckpointKind);
  registry.registerBackbone(mobileSamBackbone);
}

export { TinyVitAttention, attentionBiasIdxs } from './attention.js';
export { TinyVitBlock, TinyVitMlp, type TinyVitBlockOptions } from './block.js';
export { Conv2dBN, MBConv, PatchEmbed, PatchMerging } from './layers.js';
export { TinyViT, TinyVitStage } from './model.js';
export { createMobileSamBackbone, mobileSamBackbone } from './backbone.js';
export * from './config.js';
export { tinyVitSites } from './sites.js';
export { applyTinyVitMod, tinyVitKind, type TinyVitMod } from './parity.js';
export { torchCheckpointKind } from './checkpoint-parity.js';
