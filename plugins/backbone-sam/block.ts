// One block of SAM's ViT image encoder (segment-anything
// `modeling/image_encoder.py`, class `Block`, and its `MLPBlock`), with the
// PEFT hook points of `HookableBlock`:
//
//   x' = x + window_unpartition(postAttn(attn(window_partition(norm1(x)))))
//   n  = norm2(x')
//   y  = x' + mlpParallel(n, mlp(n))
//
// Windowed blocks zero-pad the grid to a multiple of the window size;
// `windowSize` 0 is global attention over the whole grid. With
// `padBeforeNorm` the partition (and its zero padding) comes before norm1, as
// in Medical-SAM-Adapter's adapter block: padded tokens then enter attention
// as norm1(0) = norm1's bias instead of zeros.
import { GELU, HookableBlock, LayerNorm, Linear, Module, PeftError, tf, type LinearLike } from '../../src/index.js';
import { Attention } from './attention.js';
import { windowPartition, windowUnpartition } from './window.js';

/** SAM's `MLPBlock`: `lin2(GELU(lin1(x)))` with the exact (erf) GELU. */
export class MlpBlock extends Module {
  constructor(
    readonly dim: number,
    readonly hidden: number,
  ) {
    super();
    this.registerModule('lin1', new Linear(dim, hidden));
    this.registerModule('act', new GELU());
    this.registerModule('lin2', new Linear(hidden, dim));
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const lin1 = this.child('lin1') as LinearLike;
      const lin2 = this.child('lin2') as LinearLike;
      return lin2.forward((this.child('act') as GELU).forward(lin1.forward(x)));
    });
  }
}

export interface SamBlockOptions {
  dim: number;
  numHeads: number;
  /** MLP hidden width = `dim * mlpRatio` (default 4). */
  mlpRatio?: number;
  qkvBias?: boolean;
  useRelPos?: boolean;
  /** 0 (default) = global attention; otherwise attention within `windowSize²` windows. */
  windowSize?: number;
  /** The token grid `[h, w]` of the encoder; sizes a global block's rel-pos tables. */
  inputSize?: [number, number];
  /**
   * An explicit grid for the rel-pos tables (`2*size - 1` rows). Default: the
   * window in windowed blocks, `inputSize` in global ones. Official
   * checkpoints size global tables for 64x64 (1024 px); keeping that grid at
   * a smaller image size lets them load, and the tables are resized at run time.
   */
  relPosSize?: [number, number];
  /** LayerNorm eps of norm1 and norm2 (SAM: 1e-6). */
  layerNormEps?: number;
  /** Partition (zero-pad) before norm1, as Medical-SAM-Adapter's adapter block does. */
  padBeforeNorm?: boolean;
}

export class SamBlock extends HookableBlock {
  readonly dim: number;
  readonly mlpDim: number;
  readonly windowSize: number;
  readonly padBeforeNorm: boolean;

  constructor(options: SamBlockOptions) {
    super();
    const { dim, numHeads } = options;
    this.dim = dim;
    this.windowSize = options.windowSize ?? 0;
    if (!Number.isInteger(this.windowSize) || this.windowSize < 0) {
      throw new PeftError(`SAM block: window_size must be a non-negative integer, got ${this.windowSize}`);
    }
    this.mlpDim = Math.floor(dim * (options.mlpRatio ?? 4));
    this.padBeforeNorm = options.padBeforeNorm ?? false;
    const eps = options.layerNormEps ?? 1e-6;
    const relPosSize =
      options.relPosSize ?? (this.windowSize > 0 ? ([this.windowSize, this.windowSize] as [number, number]) : options.inputSize);
    this.registerModule('norm1', new LayerNorm(dim, eps));
    this.registerModule('attn', new Attention(dim, numHeads, { qkvBias: options.qkvBias, useRelPos: options.useRelPos, relPosSize }));
    this.registerModule('norm2', new LayerNorm(dim, eps));
    this.registerModule('mlp', new MlpBlock(dim, this.mlpDim));
  }

  get attn(): Attention {
    return this.child('attn') as Attention;
  }

  /** `x [B, H, W, C]` → `[B, H, W, C]`. */
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const norm1 = this.child('norm1') as LayerNorm;
      const norm2 = this.child('norm2') as LayerNorm;
      const mlp = this.child('mlp') as MlpBlock;
      const n1 = norm1.forward(x) as tf.Tensor4D;
      const a = this.windowSize > 0 ? this.windowedAttention(n1) : (this.postAttn(this.attn.forward(n1)) as tf.Tensor4D);
      const x1 = tf.add(x, a);
      const n = norm2.forward(x1);
      return tf.add(x1, this.mlpParallel(n, mlp.forward(n))) as tf.Tensor4D;
    });
  }

  /**
   * Windowed attention of the normed tokens `n1 [B, H, W, C]`, equal to the
   * reference's partition → attn (qkv, attend, proj) → post-attn hooks →
   * unpartition, but with the per-token linears run on the real tokens only:
   * a padded token's qkv is the same for every padded position (qkv of a zero
   * token, or of norm1(0) with `padBeforeNorm`), so it is computed once; and
   * padded outputs are dropped, so proj runs after the padding is removed
   * (unless post-attn hooks must see whole windows).
   */
  private windowedAttention(n1: tf.Tensor4D): tf.Tensor4D {
    const ws = this.windowSize;
    const attn = this.attn;
    const [, h, w, c] = n1.shape;
    const ph = (ws - (h % ws)) % ws;
    const pw = (ws - (w % ws)) % ws;
    let qkv = attn.qkv.forward(n1) as tf.Tensor4D; // [B, H, W, 3C]
    if (ph || pw) {
      const zero = tf.zeros([1, 1, 1, c]);
      const padToken = attn.qkv.forward(this.padBeforeNorm ? (this.child('norm1') as LayerNorm).forward(zero) : zero); // [1, 1, 1, 3C]
      const mask = tf.pad(tf.zeros([1, h, w, 1]), [[0, 0], [0, ph], [0, pw], [0, 0]], 1); // 1 on padded positions
      qkv = tf.add(tf.pad(qkv, [[0, 0], [0, ph], [0, pw], [0, 0]]), tf.mul(mask, padToken)) as tf.Tensor4D;
    }
    const { windows, padded } = windowPartition(qkv, ws); // [B*nW, ws, ws, 3C], no padding added
    const o = attn.attend(windows); // [B*nW, ws, ws, C]
    if (this.hooks['post-attn'].length === 0) return attn.proj.forward(windowUnpartition(o, ws, padded, [h, w])) as tf.Tensor4D;
    const hooked = this.postAttn(attn.proj.forward(o)) as tf.Tensor4D;
    return windowUnpartition(hooked, ws, padded, [h, w]);
  }
}
