// TinyViT's attention (from LeViT): its own LayerNorm, one fused `qkv`
// linear whose output is laid out PER HEAD — `view(B, N, heads, -1)` then split
// `[key_dim, key_dim, head_dim]` — and a learned bias per head and per window
// offset, `attention_biases[:, attention_bias_idxs]`, added to the logits.
// Between the qkv and proj linears it is core `packedAttention` with the
// per-head layout and the bias: one native kernel each way where the addon's
// kernels are on (only the softmax is kept for the backward pass), the
// composite tfjs form elsewhere.
import { LayerNorm, Linear, Module, packedAttention, tf, type LinearLike } from '../../src/index.js';

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
  /** The gathered bias of a frozen table, with the table and data it came from. */
  private biasCache?: { table: tf.Variable; dataId: object; bias: tf.Tensor3D };

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

  /**
   * `[heads, N, N]` bias of the logits. A frozen table's is gathered once and
   * kept until the table's values change (a new data id: a checkpoint loaded,
   * an assign) or the table is unfrozen; a trainable one's is gathered on
   * every call, so that its gradient reaches the table.
   */
  bias(): tf.Tensor3D {
    const param = this.param('attention_biases');
    const table = param.variable;
    const frozen = !param.trainable;
    if (frozen && this.biasCache?.table === table && this.biasCache.dataId === table.dataId && !this.biasCache.bias.isDisposed) {
      return this.biasCache.bias;
    }
    const bias = tf.tidy(() => {
      const n = this.tokens;
      return tf.reshape(tf.gather(table, tf.tensor1d(this.idxs, 'int32'), 1), [this.numHeads, n, n]) as tf.Tensor3D;
    });
    if (!frozen) return bias;
    this.biasCache?.bias.dispose();
    this.biasCache = { table, dataId: table.dataId, bias: tf.keep(bias) };
    return bias;
  }

  override dispose(): void {
    this.biasCache?.bias.dispose();
    this.biasCache = undefined;
    super.dispose();
  }

  /** `x [n, N, dim]` (N = window²) → `[n, N, dim]`. */
  forward(x: tf.Tensor3D): tf.Tensor3D {
    return tf.tidy(() => {
      const [n, tokens] = x.shape;
      const xn = (this.child('norm') as LayerNorm).forward(x);
      // [n, N, heads * 3d]: q, k, v side by side within each head (key_dim = head_dim = d)
      const qkv = tf.reshape(this.qkv.forward(xn), [n, tokens, 3 * this.numHeads * this.headDim]);
      // (q k^T) * scale + bias, softmax, times v; heads merged → [n, N, heads * d]
      const merged = packedAttention(qkv, { heads: this.numHeads, scale: this.scale, scaleOn: 'logits', layout: 'per-head', bias: this.bias() });
      return this.proj.forward(merged) as tf.Tensor3D;
    });
  }
}
