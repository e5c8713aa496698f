// MobileSAM's image encoder: TinyViT with SAM's 256-channel neck.
//   patch_embed   [B, H, W, 3] -> [B, H/4, W/4, d0]       (two stride-2 Conv2d_BN)
//   layers.0      MBConv blocks, then PatchMerging to d1
//   layers.i>0    TinyViT attention blocks, then PatchMerging to d(i+1) (not the last)
//   neck          conv1x1 -> LayerNorm2d -> conv3x3 -> LayerNorm2d (eps 1e-6)
// Everything is channels-last and runs at any input size: the output is the
// real grid `[B, H/p, W/p, out_chans]` (p = 16 for MobileSAM), not MobileSAM's
// fixed 64x64 view. `norm_head` (and `head` when num_classes > 0) exist for the
// official state dict but are not used.
import { Conv2d, LayerNorm, LayerNorm2d, Module, PeftError, tf, type ImageEncoder, type InjectionSite, ModuleList, Sequential } from '../../src/index.js';
import { TinyVitBlock } from './block.js';
import { encoderPatchSize, type TinyVitConfig } from './config.js';
import { MBConv, PatchEmbed, PatchMerging } from './layers.js';
import { tinyVitSites } from './sites.js';

/** One stage: `blocks` then an optional `downsample`. */
export class TinyVitStage extends Module {
  constructor(blocks: Module[], downsample: PatchMerging | undefined) {
    super();
    const list = this.registerModule('blocks', new ModuleList());
    for (const b of blocks) list.push(b);
    if (downsample) this.registerModule('downsample', downsample);
  }

  get blocks(): ModuleList {
    return this.child('blocks') as ModuleList;
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      let y = x;
      const blocks = this.blocks;
      for (let i = 0; i < blocks.length; i++) y = (blocks.at(i) as MBConv | TinyVitBlock).forward(y);
      const down = this.child('downsample') as PatchMerging | undefined;
      return down ? down.forward(y) : y;
    });
  }
}

/** The unused classifier of TinyViT, kept so official checkpoints load strictly; optional when loading. */
class UnusedHead extends Module {
  constructor(inFeatures: number, classes: number) {
    super();
    this.registerParameter('weight', tf.zeros([classes, inFeatures]), { optional: true, trainable: false });
    this.registerParameter('bias', tf.zeros([classes]), { optional: true, trainable: false });
  }
}

export class TinyViT extends Module implements ImageEncoder {
  readonly outChannels: number;
  readonly patchSize: number;

  constructor(readonly config: TinyVitConfig) {
    super();
    const c = config;
    const d = c.embed_dims;
    this.outChannels = c.out_chans;
    this.patchSize = encoderPatchSize(c);
    this.registerModule('patch_embed', new PatchEmbed(c.in_chans, d[0]!));
    const layers = this.registerModule('layers', new ModuleList<TinyVitStage>());
    for (let i = 0; i < d.length; i++) {
      const dim = d[i]!;
      const blocks: Module[] = [];
      for (let j = 0; j < c.depths[i]!; j++) {
        blocks.push(
          i === 0
            ? new MBConv(dim, c.mbconv_expand_ratio)
            : new TinyVitBlock({
                dim,
                numHeads: c.num_heads[i]!,
                windowSize: c.window_sizes[i]!,
                mlpRatio: c.mlp_ratio,
                localConvSize: c.local_conv_size,
              }),
        );
      }
      layers.push(new TinyVitStage(blocks, i + 1 < d.length ? new PatchMerging(dim, d[i + 1]!) : undefined));
    }
    const last = d[d.length - 1]!;
    this.registerModule('norm_head', new LayerNorm(last));
    if (c.num_classes > 0) this.registerModule('head', new UnusedHead(last, c.num_classes));
    const neck = this.registerModule('neck', new Sequential());
    neck.push(new Conv2d(last, c.out_chans, 1, { bias: false }));
    neck.push(new LayerNorm2d(c.out_chans, 1e-6));
    neck.push(new Conv2d(c.out_chans, c.out_chans, 3, { padding: 1, bias: false }));
    neck.push(new LayerNorm2d(c.out_chans, 1e-6));
  }

  get layers(): ModuleList<TinyVitStage> {
    return this.child('layers') as ModuleList<TinyVitStage>;
  }

  /** `[B, H, W, in_chans]` normalised pixels → `[B, H/p, W/p, out_chans]`. */
  forward(images: tf.Tensor4D): tf.Tensor4D {
    if (images.rank !== 4 || images.shape[3] !== this.config.in_chans) {
      throw new PeftError(`TinyViT: expected images [B, H, W, ${this.config.in_chans}], got [${images.shape}]`);
    }
    return tf.tidy(() => {
      let x = (this.child('patch_embed') as PatchEmbed).forward(images);
      const layers = this.layers;
      for (let i = 0; i < layers.length; i++) x = layers.at(i).forward(x);
      return (this.child('neck') as Sequential).forward(x) as tf.Tensor4D;
    });
  }

  sites(): InjectionSite[] {
    return tinyVitSites(this.config);
  }
}
