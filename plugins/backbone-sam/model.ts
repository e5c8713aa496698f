// SAM's ViT image encoder (segment-anything `modeling/image_encoder.py`,
// class `ImageEncoderViT`), channels-last:
//
//   images [B, H, W, in_chans]
//     → patch_embed.proj (conv, kernel = stride = patch)   [B, h, w, C]   (h = H / patch)
//     + pos_embed [1, G, G, C] resized bicubically to h x w
//     → blocks.0 .. blocks.{depth-1}                       [B, h, w, C]
//     → neck: conv1x1 → LayerNorm2d → conv3x3 pad 1 → LayerNorm2d
//                                                          [B, h, w, out_chans]
//
// Parameter names are the official checkpoint's below `image_encoder.`.
import {
  Conv2d,
  LayerNorm2d,
  Module,
  resizeGrid,
  tf,
  type ImageEncoder,
  type InjectionSite,
} from '../../src/index.js';
import { SamBlock } from './block.js';
import { checkSamConfig, tokenGrid, type SamEncoderConfig } from './config.js';
import { samBlockSites } from './sites.js';

/** A module whose children are named '0', '1', … (PyTorch's ModuleList / Sequential). */
export class ModuleList<M extends Module = Module> extends Module {
  readonly items: M[] = [];

  add(module: M): M {
    this.registerModule(String(this.items.length), module);
    this.items.push(module);
    return module;
  }

  /** The current child `i` (a PEFT method may have replaced it). */
  at(i: number): M {
    return this.child(String(i)) as M;
  }

  get length(): number {
    return this.items.length;
  }
}

export class PatchEmbed extends Module {
  constructor(inChans: number, embedDim: number, patch: number) {
    super();
    this.registerModule('proj', new Conv2d(inChans, embedDim, patch, { stride: patch }));
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return (this.child('proj') as Conv2d).forward(x);
  }
}

export interface ImageEncoderOptions {
  /** Medical-SAM-Adapter's adapter-block order (partition before norm1) in every block. */
  padBeforeNorm?: boolean;
}

export class ImageEncoderViT extends Module implements ImageEncoder {
  readonly config: SamEncoderConfig;
  readonly outChannels: number;
  readonly patchSize: number;
  /** The token grid side at `img_size`. */
  readonly grid: number;
  /** The grid pos_embed is stored for. */
  readonly posEmbedGrid: number;
  /** The grid global blocks' rel-pos tables are sized for. */
  readonly relPosGrid: number;

  constructor(config: SamEncoderConfig, options: ImageEncoderOptions = {}) {
    super();
    checkSamConfig(config);
    this.config = config;
    this.outChannels = config.out_chans;
    this.patchSize = config.patch_size;
    this.grid = tokenGrid(config);
    this.posEmbedGrid = config.pos_embed_grid ?? this.grid;
    this.relPosGrid = config.rel_pos_grid ?? this.posEmbedGrid;
    const c = config.embed_dim;

    this.registerModule('patch_embed', new PatchEmbed(config.in_chans, c, config.patch_size));
    if (config.use_abs_pos) this.registerParameter('pos_embed', tf.zeros([1, this.posEmbedGrid, this.posEmbedGrid, c]));
    const blocks = this.registerModule('blocks', new ModuleList<SamBlock>());
    const global = new Set(config.global_attn_indexes);
    for (let i = 0; i < config.depth; i++) {
      const windowSize = global.has(i) ? 0 : config.window_size;
      blocks.add(
        new SamBlock({
          dim: c,
          numHeads: config.num_heads,
          mlpRatio: config.mlp_ratio,
          qkvBias: config.qkv_bias,
          useRelPos: config.use_rel_pos,
          windowSize,
          inputSize: [this.grid, this.grid],
          relPosSize: windowSize > 0 ? [windowSize, windowSize] : [this.relPosGrid, this.relPosGrid],
          layerNormEps: config.layer_norm_eps,
          padBeforeNorm: options.padBeforeNorm,
        }),
      );
    }
    const neck = this.registerModule('neck', new ModuleList());
    neck.add(new Conv2d(c, config.out_chans, 1, { bias: false }));
    neck.add(new LayerNorm2d(config.out_chans, config.neck_layer_norm_eps));
    neck.add(new Conv2d(config.out_chans, config.out_chans, 3, { padding: 1, bias: false }));
    neck.add(new LayerNorm2d(config.out_chans, config.neck_layer_norm_eps));
  }

  get blocks(): ModuleList<SamBlock> {
    return this.child('blocks') as ModuleList<SamBlock>;
  }

  /** `[B, H, W, in_chans]` normalised pixels → `[B, H/patch, W/patch, out_chans]`. */
  forward(images: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      let x = (this.child('patch_embed') as PatchEmbed).forward(images);
      const [, h, w, c] = x.shape;
      if (this.config.use_abs_pos) {
        const g = this.posEmbedGrid;
        const pos = tf.reshape(this.param('pos_embed').variable, [g, g, c]) as tf.Tensor3D;
        x = tf.add(x, g === h && g === w ? pos : resizeGrid(pos, h, w, 'bicubic'));
      }
      const blocks = this.blocks;
      for (let i = 0; i < blocks.length; i++) x = blocks.at(i).forward(x);
      const neck = this.child('neck') as ModuleList;
      x = (neck.at(0) as Conv2d).forward(x);
      x = (neck.at(1) as LayerNorm2d).forward(x) as tf.Tensor4D;
      x = (neck.at(2) as Conv2d).forward(x);
      return (neck.at(3) as LayerNorm2d).forward(x) as tf.Tensor4D;
    });
  }

  /** Per block: qkv, proj, lin1, lin2 and the block itself; paths relative to this encoder. */
  sites(): InjectionSite[] {
    const out: InjectionSite[] = [];
    for (let i = 0; i < this.blocks.length; i++) {
      const b = this.blocks.at(i);
      out.push(...samBlockSites(`blocks.${i}`, b.dim, b.mlpDim, i));
    }
    return out;
  }
}
