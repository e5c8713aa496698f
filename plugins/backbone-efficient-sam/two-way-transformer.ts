// EfficientSAM's two-way transformer (two_way_transformer.py): prompt tokens
// and image tokens attend to each other; the MLPs use GELU (the official
// build's activation), LayerNorms PyTorch's default eps.
import { LayerNorm, Linear, Module, tf, type LinearLike, ModuleList } from '../../src/index.js';
import { mergeHeads, scaledDotAttention, splitHeads } from './attention.js';
import { MlpBlock } from './mlp-block.js';

/** Attention whose q/k/v project to `dim / downsampleRate` before the heads split. */
export class TwoWayAttention extends Module {
  readonly internalDim: number;

  constructor(
    readonly dim: number,
    readonly numHeads: number,
    downsampleRate = 1,
  ) {
    super();
    this.internalDim = Math.floor(dim / downsampleRate);
    for (const name of ['q_proj', 'k_proj', 'v_proj']) this.registerModule(name, new Linear(dim, this.internalDim));
    this.registerModule('out_proj', new Linear(this.internalDim, dim));
  }

  private lin(name: string): LinearLike {
    return this.child(name) as LinearLike;
  }

  /** `q [M, Nq, C]`, `k, v [M, Nk, C]` → `[M, Nq, C]`. */
  forward(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const h = this.numHeads;
      const qh = splitHeads(this.lin('q_proj').forward(q), h);
      const kh = splitHeads(this.lin('k_proj').forward(k), h);
      const vh = splitHeads(this.lin('v_proj').forward(v), h);
      const scale = 1 / Math.sqrt(this.internalDim / h);
      return this.lin('out_proj').forward(mergeHeads(scaledDotAttention(qh, kh, vh, scale), h));
    });
  }
}

export class TwoWayAttentionBlock extends Module {
  constructor(
    dim: number,
    numHeads: number,
    mlpDim: number,
    downsampleRate: number,
    readonly skipFirstLayerPe: boolean,
  ) {
    super();
    this.registerModule('self_attn', new TwoWayAttention(dim, numHeads));
    this.registerModule('norm1', new LayerNorm(dim));
    this.registerModule('cross_attn_token_to_image', new TwoWayAttention(dim, numHeads, downsampleRate));
    this.registerModule('norm2', new LayerNorm(dim));
    this.registerModule('mlp', new MlpBlock(dim, mlpDim, dim, 1));
    this.registerModule('norm3', new LayerNorm(dim));
    this.registerModule('norm4', new LayerNorm(dim));
    this.registerModule('cross_attn_image_to_token', new TwoWayAttention(dim, numHeads, downsampleRate));
  }

  private attn(name: string): TwoWayAttention {
    return this.child(name) as TwoWayAttention;
  }

  private norm(name: string, x: tf.Tensor): tf.Tensor {
    return (this.child(name) as LayerNorm).forward(x);
  }

  /** Returns the new `[queries, keys]`. */
  forward(queries: tf.Tensor, keys: tf.Tensor, queryPe: tf.Tensor, keyPe: tf.Tensor): [tf.Tensor, tf.Tensor] {
    return tf.tidy(() => {
      let q = queries;
      let k = keys;
      // Self-attention of the tokens (the first layer feeds them without their PE).
      if (!this.skipFirstLayerPe) q = tf.add(q, queryPe);
      q = this.norm('norm1', tf.add(q, this.attn('self_attn').forward(q, q, q)));
      // Tokens attend to the image.
      const kp = tf.add(k, keyPe);
      q = this.norm('norm2', tf.add(q, this.attn('cross_attn_token_to_image').forward(tf.add(q, queryPe), kp, k)));
      // MLP on the tokens.
      q = this.norm('norm3', tf.add(q, (this.child('mlp') as MlpBlock).forward(q)));
      // The image attends to the tokens.
      const qp = tf.add(q, queryPe);
      k = this.norm('norm4', tf.add(k, this.attn('cross_attn_image_to_token').forward(kp, qp, q)));
      return [q, k];
    });
  }
}

export class TwoWayTransformer extends Module {
  readonly depth: number;

  constructor(depth: number, dim: number, numHeads: number, mlpDim: number, downsampleRate = 2) {
    super();
    this.depth = depth;
    const layers: TwoWayAttentionBlock[] = [];
    for (let i = 0; i < depth; i++) layers.push(new TwoWayAttentionBlock(dim, numHeads, mlpDim, downsampleRate, i === 0));
    this.registerModule('layers', new ModuleList(layers));
    this.registerModule('final_attn_token_to_image', new TwoWayAttention(dim, numHeads, downsampleRate));
    this.registerModule('norm_final_attn', new LayerNorm(dim));
  }

  /**
   * `image [M, HW, C]`, `imagePe [1 or M, HW, C]`, `tokens [M, T, C]` →
   * `[tokens out [M, T, C], image out [M, HW, C]]`.
   */
  forward(image: tf.Tensor, imagePe: tf.Tensor, tokens: tf.Tensor): [tf.Tensor, tf.Tensor] {
    return tf.tidy(() => {
      let q = tokens;
      let k = image;
      for (const layer of this.child('layers') as ModuleList<TwoWayAttentionBlock>) [q, k] = layer.forward(q, k, tokens, imagePe);
      const attnOut = (this.child('final_attn_token_to_image') as TwoWayAttention).forward(tf.add(q, tokens), tf.add(k, imagePe), k);
      q = (this.child('norm_final_attn') as LayerNorm).forward(tf.add(q, attnOut));
      return [q, k];
    });
  }
}
