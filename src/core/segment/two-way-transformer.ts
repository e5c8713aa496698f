// SAM's two-way transformer (`mask_decoder.transformer.*`): prompt tokens and
// image tokens attend to each other in `depth` blocks, then the tokens attend
// to the image once more. All tensors are token-major `[B, N, C]`.
import * as tf from '@tensorflow/tfjs';
import { Module } from '../nn/module.js';
import { LayerNorm, Linear, type LinearLike } from '../nn/layers.js';
import { ModuleList } from '../nn/containers.js';
import { MLPBlock } from './mlp.js';

/**
 * Multi-head attention whose projections may shrink the width by
 * `downsampleRate` (`q_proj`, `k_proj`, `v_proj`: C → C/rate; `out_proj` back).
 * Heads are folded into the batch (`[B*heads, N, d]`) so both products are
 * plain batched matMuls.
 */
export class Attention extends Module {
  readonly internalDim: number;

  constructor(
    readonly embeddingDim: number,
    readonly numHeads: number,
    readonly downsampleRate = 1,
  ) {
    super();
    this.internalDim = Math.floor(embeddingDim / downsampleRate);
    if (this.internalDim % numHeads) {
      throw new Error(`Attention: num_heads ${numHeads} must divide the internal width ${this.internalDim}`);
    }
    this.registerModule('q_proj', new Linear(embeddingDim, this.internalDim));
    this.registerModule('k_proj', new Linear(embeddingDim, this.internalDim));
    this.registerModule('v_proj', new Linear(embeddingDim, this.internalDim));
    this.registerModule('out_proj', new Linear(this.internalDim, embeddingDim));
  }

  get qProj(): LinearLike {
    return this.child('q_proj') as LinearLike;
  }

  get kProj(): LinearLike {
    return this.child('k_proj') as LinearLike;
  }

  get vProj(): LinearLike {
    return this.child('v_proj') as LinearLike;
  }

  get outProj(): LinearLike {
    return this.child('out_proj') as LinearLike;
  }

  /** `[B, N, I]` → `[B*heads, N, I/heads]`. */
  private separateHeads(x: tf.Tensor, b: number, n: number): tf.Tensor3D {
    const h = this.numHeads;
    const d = this.internalDim / h;
    if (h === 1) return tf.reshape(x, [b, n, d]);
    return tf.reshape(tf.transpose(tf.reshape(x, [b, n, h, d]), [0, 2, 1, 3]), [b * h, n, d]);
  }

  /** `[B*heads, N, d]` → `[B, N, heads*d]`. */
  private recombineHeads(x: tf.Tensor, b: number, n: number): tf.Tensor3D {
    const h = this.numHeads;
    const d = this.internalDim / h;
    if (h === 1) return tf.reshape(x, [b, n, d]);
    return tf.reshape(tf.transpose(tf.reshape(x, [b, h, n, d]), [0, 2, 1, 3]), [b, n, h * d]);
  }

  /** `q [B, Nq, C]`, `k`, `v [B, Nk, C]` → `[B, Nq, C]`. */
  forward(q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D): tf.Tensor3D {
    return tf.tidy(() => {
      const [b, nq] = q.shape;
      const nk = k.shape[1];
      const qh = this.separateHeads(this.qProj.forward(q), b, nq);
      const kh = this.separateHeads(this.kProj.forward(k), b, nk);
      const vh = this.separateHeads(this.vProj.forward(v), b, nk);
      const scale = 1 / Math.sqrt(this.internalDim / this.numHeads);
      const attn = tf.softmax(tf.mul(tf.matMul(qh, kh, false, true), scale));
      const out = this.recombineHeads(tf.matMul(attn, vh), b, nq);
      return this.outProj.forward(out) as tf.Tensor3D;
    });
  }
}

/**
 * One block: token self-attention, tokens → image cross-attention, token MLP,
 * image → tokens cross-attention, each followed by a LayerNorm. The first block
 * skips the positional encoding (and the residual) in its self-attention.
 */
export class TwoWayAttentionBlock extends Module {
  constructor(
    embeddingDim: number,
    numHeads: number,
    mlpDim: number,
    attentionDownsampleRate: number,
    readonly skipFirstLayerPe: boolean,
  ) {
    super();
    this.registerModule('self_attn', new Attention(embeddingDim, numHeads));
    this.registerModule('norm1', new LayerNorm(embeddingDim));
    this.registerModule('cross_attn_token_to_image', new Attention(embeddingDim, numHeads, attentionDownsampleRate));
    this.registerModule('norm2', new LayerNorm(embeddingDim));
    this.registerModule('mlp', new MLPBlock(embeddingDim, mlpDim));
    this.registerModule('norm3', new LayerNorm(embeddingDim));
    this.registerModule('norm4', new LayerNorm(embeddingDim));
    this.registerModule('cross_attn_image_to_token', new Attention(embeddingDim, numHeads, attentionDownsampleRate));
  }

  private attn(name: string): Attention {
    return this.child(name) as Attention;
  }

  private norm(name: string, x: tf.Tensor): tf.Tensor3D {
    return (this.child(name) as LayerNorm).forward(x) as tf.Tensor3D;
  }

  /** `queries [B, Nt, C]`, `keys [B, Ni, C]`, `queryPe [B, Nt, C]`, `keyPe` broadcastable to keys. */
  forward(queries: tf.Tensor3D, keys: tf.Tensor3D, queryPe: tf.Tensor3D, keyPe: tf.Tensor3D): [tf.Tensor3D, tf.Tensor3D] {
    return tf.tidy(() => {
      let qs: tf.Tensor3D;
      if (this.skipFirstLayerPe) {
        qs = this.attn('self_attn').forward(queries, queries, queries);
      } else {
        const q = tf.add(queries, queryPe) as tf.Tensor3D;
        qs = tf.add(queries, this.attn('self_attn').forward(q, q, queries));
      }
      qs = this.norm('norm1', qs);

      const kWithPe = tf.add(keys, keyPe) as tf.Tensor3D;
      let q = tf.add(qs, queryPe) as tf.Tensor3D;
      qs = this.norm('norm2', tf.add(qs, this.attn('cross_attn_token_to_image').forward(q, kWithPe, keys)));

      qs = this.norm('norm3', tf.add(qs, (this.child('mlp') as MLPBlock).forward(qs)));

      q = tf.add(qs, queryPe) as tf.Tensor3D;
      const ks = this.norm('norm4', tf.add(keys, this.attn('cross_attn_image_to_token').forward(kWithPe, q, qs)));
      return [qs, ks];
    });
  }
}

export interface TwoWayTransformerOptions {
  depth: number;
  embeddingDim: number;
  numHeads: number;
  mlpDim: number;
  /** Width reduction of the cross attentions (SAM: 2). */
  attentionDownsampleRate?: number;
}

export class TwoWayTransformer extends Module {
  readonly depth: number;

  constructor(options: TwoWayTransformerOptions) {
    super();
    const { depth, embeddingDim, numHeads, mlpDim } = options;
    const rate = options.attentionDownsampleRate ?? 2;
    this.depth = depth;
    const layers = new ModuleList<TwoWayAttentionBlock>();
    for (let i = 0; i < depth; i++) layers.push(new TwoWayAttentionBlock(embeddingDim, numHeads, mlpDim, rate, i === 0));
    this.registerModule('layers', layers);
    this.registerModule('final_attn_token_to_image', new Attention(embeddingDim, numHeads, rate));
    this.registerModule('norm_final_attn', new LayerNorm(embeddingDim));
  }

  /**
   * `image [B, Ni, C]` (flattened channels-last embedding), `imagePe` broadcastable
   * to it, `tokens [B, Nt, C]` → processed `[tokens, image]`.
   */
  forward(image: tf.Tensor3D, imagePe: tf.Tensor3D, tokens: tf.Tensor3D): [tf.Tensor3D, tf.Tensor3D] {
    return tf.tidy(() => {
      let queries = tokens;
      let keys = image;
      const layers = this.child('layers') as ModuleList<TwoWayAttentionBlock>;
      for (let i = 0; i < layers.length; i++) [queries, keys] = layers.at(i).forward(queries, keys, tokens, imagePe);
      const q = tf.add(queries, tokens) as tf.Tensor3D;
      const k = tf.add(keys, imagePe) as tf.Tensor3D;
      const out = (this.child('final_attn_token_to_image') as Attention).forward(q, k, keys);
      queries = (this.child('norm_final_attn') as LayerNorm).forward(tf.add(queries, out)) as tf.Tensor3D;
      return [queries, keys];
    });
  }
}
