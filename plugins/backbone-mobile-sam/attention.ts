// TinyViT's attention (from LeViT): its own LayerNorm, one fused `qkv`
// linear whose output is laid out PER HEAD — `view(B, N, heads, -1)` then split
// `[key_dim, key_dim, head_dim]` — and a learned bias per head and per window
// offset, `attention_biases[:, attention_bias_idxs]`, added to the logits.
import { LayerNorm, Linear, Module, tf, type LinearLike } from '../../src/index.js';

/**
 * `attention_bias_idxs` for a `rows x cols` window, flattened row-major
 * (`[N * N]`, N = rows * cols): the index of the offset `(|dy|, |dx|)` between
 * query and key, offsets numbered in order of first appearance (as TinyViT).
 * Not a state-dict entry (TinyViT registers it non-persistent): derived here.
 */
export function attentionBiasIdxs(rows: number, cols: number): { idxs: Int32Array; offsets: number } {
  const points: [number, number][] = [];
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) points.push([r, c]);
  const seen = new Map<number, number>();
  const idxs = new Int32Array(points.length * points.length);
  let k = 0;
  for (const [r1, c1] of points) {
    for (const [r2, c2] of points) {
      const key = Math.abs(r1 - r2) * (cols + 1) + Math.abs(c1 - c2);
      let id = seen.get(key);
      if (id === undefined) seen.set(key, (id = seen.size));
      idxs[k++] = id;
    }
  }
  return { idxs, offsets: seen.size };
}

export class TinyVitAttention extends Module {
  readonly keyDim: number;
  readonly headDim: number;
  readonly scale: number;
  readonly tokens: number;
  private readonly idxs: Int32Array;

  constructor(
    readonly dim: number,
    readonly numHeads: number,
    /** The window side: attention always runs on `window x window` tokens. */
    readonly window: number,
  ) {
    super();
    // MobileSAM's TinyViT block: key_dim = head_dim = dim / heads (attn_ratio 1)
    this.keyDim = dim / numHeads;
    this.headDim = this.keyDim;
    this.scale = this.keyDim ** -0.5;
    this.tokens = window * window;
    const { idxs, offsets } = attentionBiasIdxs(window, window);
    this.idxs = idxs;
    this.registerModule('norm', new LayerNorm(dim));
    this.registerModule('qkv', new Linear(dim, numHeads * (2 * this.keyDim + this.headDim)));
    this.registerModule('proj', new Linear(numHeads * this.headDim, dim));
    this.registerParameter('attention_biases', tf.zeros([numHeads, offsets]));
  }

  get qkv(): LinearLike {
    return this.child('qkv') as LinearLike;
  }

  get proj(): LinearLike {
    return this.child('proj') as LinearLike;
  }

  /** `[heads, N, N]` bias of the logits. */
  bias(): tf.Tensor3D {
    return tf.tidy(() => {
      const table = this.param('attention_biases').variable;
      const n = this.tokens;
      return tf.reshape(tf.gather(table, tf.tensor1d(this.idxs, 'int32'), 1), [this.numHeads, n, n]) as tf.Tensor3D;
    });
  }

  /** `x [n, N, dim]` (N = window²) → `[n, N, dim]`. */
  forward(x: tf.Tensor3D): tf.Tensor3D {
    return tf.tidy(() => {
      const [n, tokens] = x.shape;
      const h = this.numHeads;
      const xn = (this.child('norm') as LayerNorm).forward(x);
      // [n, N, heads, 3, d]: q, k, v side by side within each head (key_dim = head_dim = d)
      // -> [3, n, heads, N, d]; one transpose, then contiguous slices along the first axis
      const qkv = tf.transpose(tf.reshape(this.qkv.forward(xn), [n, tokens, h, 3, this.headDim]), [3, 0, 2, 1, 4]);
      const [q, k, v] = tf.unstack(qkv, 0); // each [n, heads, N, d]
      const logits = tf.add(tf.mul(tf.matMul(q!, k!, false, true), this.scale), this.bias());
      const out = tf.matMul(tf.softmax(logits), v!); // [n, heads, N, d]
      const merged = tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [n, tokens, h * this.headDim]);
      return this.proj.forward(merged) as tf.Tensor3D;
    });
  }
}
