// The EfficientSAM image encoder (yformer/EfficientSAM efficient_sam_encoder.py):
// patch embedding, a pretrain-size absolute position table (cls slot dropped,
// bicubic-resized to the token grid), plain global-attention ViT blocks and
// the SAM neck. Channels-last: `[B, H, W, 3]` → `[B, H/p, W/p, neck]`.
import { Conv2d,
  GELU,
  HookableBlock,
  LayerNorm,
  LayerNorm2d,
  Linear,
  Module,
  normal,
  resizeGrid,
  tf,
  type ImageEncoder,
  type InjectionSite,
  type LinearLike, ModuleList, Sequential, type TensorMap as Forward } from '../../src/index.js';
import { mergeHeads, scaledDotAttention } from './attention.js';
import type { EncoderOptions } from './config.js';
import { encoderSites } from './sites.js';

/** `patch_embed.proj`: a conv with kernel = stride = patch (with bias). */
class PatchEmbed extends Module {
  constructor(patch: number, inChans: number, dim: number) {
    super();
    this.registerModule('proj', new Conv2d(inChans, dim, patch, { stride: patch }));
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return (this.child('proj') as Conv2d).forward(x);
  }
}

/** Global multi-head self-attention with a fused `qkv` (bias) and `proj`. */
export class Attention extends Module {
  readonly scale: number;

  constructor(
    readonly dim: number,
    readonly numHeads: number,
  ) {
    super();
    this.scale = (dim / numHeads) ** -0.5;
    this.registerModule('qkv', new Linear(dim, 3 * dim));
    this.registerModule('proj', new Linear(dim, dim));
  }

  get qkv(): LinearLike {
    return this.child('qkv') as LinearLike;
  }

  get proj(): LinearLike {
    return this.child('proj') as LinearLike;
  }

  /** `x [B, N, C]` → `[B, N, C]`. */
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const [b, n, c] = x.shape as [number, number, number];
      const h = this.numHeads;
      const d = c / h;
      // [B, N, 3C] -> [3, B, heads, N, d] -> three [B*heads, N, d]
      const qkv = tf.reshape(tf.transpose(tf.reshape(this.qkv.forward(x), [b, n, 3, h, d]), [2, 0, 3, 1, 4]), [3, b * h, n, d]);
      const [q, k, v] = tf.unstack(qkv, 0);
      const out = mergeHeads(scaledDotAttention(q!, k!, v!, this.scale), h);
      return this.proj.forward(out);
    });
  }
}

/** `fc1 → GELU → fc2`. */
export class Mlp extends Module {
  constructor(dim: number, hidden: number) {
    super();
    this.registerModule('fc1', new Linear(dim, hidden));
    this.registerModule('act', new GELU());
    this.registerModule('fc2', new Linear(hidden, dim));
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const h = (this.child('fc1') as LinearLike).forward(x);
      return (this.child('fc2') as LinearLike).forward((this.child('act') as GELU).forward(h));
    });
  }
}

/** A pre-norm ViT block with the PEFT hook points. */
export class EncoderBlock extends HookableBlock {
  constructor(dim: number, numHeads: number, mlpHidden: number, eps: number) {
    super();
    this.registerModule('norm1', new LayerNorm(dim, eps));
    this.registerModule('attn', new Attention(dim, numHeads));
    this.registerModule('norm2', new LayerNorm(dim, eps));
    this.registerModule('mlp', new Mlp(dim, mlpHidden));
  }

  private sub(name: string): Forward {
    return this.child(name) as Forward;
  }

  /** `x [B, N, C]` → `[B, N, C]`. */
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const attnOut = this.sub('attn').forward(this.sub('norm1').forward(x));
      const y = tf.add(x, this.postAttn(attnOut));
      const n = this.sub('norm2').forward(y);
      return tf.add(y, this.mlpParallel(n, this.sub('mlp').forward(n)));
    });
  }
}

export class EfficientSamImageEncoder extends Module implements ImageEncoder {
  readonly outChannels: number;
  readonly patchSize: number;
  readonly mlpHidden: number;
  /** Side of the pretrain position grid (pretrain_img_size / patch). */
  readonly posGrid: number;

  constructor(readonly options: EncoderOptions) {
    super();
    const o = options;
    this.patchSize = o.patchSize;
    this.mlpHidden = Math.floor(o.embedDim * o.mlpRatio);
    this.posGrid = Math.floor(o.pretrainImgSize / o.patchSize);
    const neck = o.neckDims[0]!;
    this.outChannels = neck;
    this.registerParameter('pos_embed', normal([1, this.posGrid * this.posGrid + 1, o.embedDim], 0.02));
    this.registerModule('patch_embed', new PatchEmbed(o.patchSize, 3, o.embedDim));
    const blocks: EncoderBlock[] = [];
    for (let i = 0; i < o.depth; i++) blocks.push(new EncoderBlock(o.embedDim, o.numHeads, this.mlpHidden, o.layerNormEps));
    this.registerModule('blocks', new ModuleList(blocks));
    this.registerModule(
      'neck',
      new Sequential([
        new Conv2d(o.embedDim, neck, 1, { bias: false }),
        new LayerNorm2d(neck, o.neckLayerNormEps),
        new Conv2d(neck, neck, 3, { padding: 1, bias: false }),
        new LayerNorm2d(neck, o.neckLayerNormEps),
      ]),
    );
  }

  /** The absolute position table for an `h × w` token grid, `[h, w, C]` (cls slot dropped). */
  positionGrid(h: number, w: number): tf.Tensor3D {
    return tf.tidy(() => {
      const table = this.param('pos_embed').variable;
      const c = table.shape[2]!;
      const g = this.posGrid;
      const grid = tf.reshape(tf.slice(table, [0, 1, 0], [1, g * g, c]), [g, g, c]) as tf.Tensor3D;
      return resizeGrid(grid, h, w, 'bicubic');
    });
  }

  forward(images: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const patches = (this.child('patch_embed') as PatchEmbed).forward(images);
      const [b, h, w, c] = patches.shape;
      let x: tf.Tensor = tf.reshape(tf.add(patches, this.positionGrid(h, w)), [b, h * w, c]);
      for (const block of this.child('blocks') as ModuleList<EncoderBlock>) x = block.forward(x);
      return (this.child('neck') as Sequential).forward(tf.reshape(x, [b, h, w, c])) as tf.Tensor4D;
    });
  }

  sites(): InjectionSite[] {
    return encoderSites(this.options.depth, this.options.embedDim, this.mlpHidden);
  }
}
