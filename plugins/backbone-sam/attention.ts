// SAM's multi-head attention with decomposed relative-position bias
// (segment-anything `modeling/image_encoder.py`, class `Attention`), on a
// channels-last token grid.
//
// Parameter names follow official SAM checkpoints: `qkv.*`, `proj.*`,
// `rel_pos_h`, `rel_pos_w`. Medical-SAM-Adapter calls the tables `rel_h` and
// `rel_w`; `keys.ts` maps between the two.
import { Linear, Module, PeftError, packedAttention, tf, type LinearLike } from '../../src/index.js';
import { relPosTable } from './rel-pos.js';

export interface AttentionOptions {
  qkvBias?: boolean;
  useRelPos?: boolean;
  /**
   * The token grid `[h, w]` the relative-position tables are sized for
   * (`2h - 1` and `2w - 1` rows). A grid of another size resizes them with
   * linear interpolation at run time. Required when `useRelPos`.
   */
  relPosSize?: [number, number];
}

export class Attention extends Module {
  readonly headDim: number;
  readonly scale: number;
  readonly useRelPos: boolean;

  constructor(
    readonly dim: number,
    readonly numHeads: number,
    options: AttentionOptions = {},
  ) {
    super();
    if (!Number.isInteger(dim / numHeads)) throw new PeftError(`SAM attention: dim ${dim} is not divisible by num_heads ${numHeads}`);
    this.headDim = dim / numHeads;
    this.scale = this.headDim ** -0.5;
    this.useRelPos = options.useRelPos ?? true;
    this.registerModule('qkv', new Linear(dim, 3 * dim, options.qkvBias ?? true));
    this.registerModule('proj', new Linear(dim, dim));
    if (this.useRelPos) {
      const size = options.relPosSize;
      if (!size || !(size[0] >= 1 && size[1] >= 1)) {
        throw new PeftError('SAM attention: relative positions need the token grid (input size) to size their tables');
      }
      this.registerParameter('rel_pos_h', tf.zeros([2 * size[0] - 1, this.headDim]));
      this.registerParameter('rel_pos_w', tf.zeros([2 * size[1] - 1, this.headDim]));
    }
  }

  /** Looked up at every call: a PEFT method may have replaced the layer. */
  get qkv(): LinearLike {
    return this.child('qkv') as LinearLike;
  }

  get proj(): LinearLike {
    return this.child('proj') as LinearLike;
  }

  /** `x [B, H, W, C]` → `[B, H, W, C]`: every token attends to every token of its `H x W` grid. */
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => this.proj.forward(this.attend(this.qkv.forward(x) as tf.Tensor4D)) as tf.Tensor4D);
  }

  /**
   * The attention proper, between `qkv` and `proj`: `qkv [B, H, W, 3C]` (the
   * qkv projection of each token) → `[B, H, W, C]` (heads merged, before proj).
   * qkv and proj act on each token alone, so a caller may run them on fewer
   * tokens than attend (the windowed block skips its padding).
   */
  attend(qkvOut: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const [b, h, w, c3] = qkvOut.shape;
      // one kernel each way where the native kernels are on (core packedAttention)
      const relPos = this.useRelPos
        ? { rh: relPosTable(this.param('rel_pos_h').variable, h, h), rw: relPosTable(this.param('rel_pos_w').variable, w, w), grid: [h, w] as [number, number] }
        : undefined;
      const out = packedAttention(tf.reshape(qkvOut, [b, h * w, c3]), { heads: this.numHeads, scale: this.scale, scaleOn: 'query', relPos });
      return tf.reshape(out, [b, h, w, c3 / 3]) as tf.Tensor4D;
    });
  }
}
