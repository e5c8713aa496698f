// SAM's prompt encoder (`prompt_encoder.*`): points and box corners become
// sparse tokens (Fourier position encoding + a learned type embedding), a
// low-resolution mask becomes a dense embedding (`mask_downscaling`), and
// without a mask every cell gets `no_mask_embed`.
import * as tf from '@tensorflow/tfjs';
import { PeftError } from '../errors.js';
import { Module } from '../nn/module.js';
import { Conv2d, GELU, LayerNorm2d } from '../nn/layers.js';
import type { Prompts } from '../peft/backbone.js';
import { ModuleList, Sequential } from '../nn/containers.js';
import { Embedding } from '../nn/embedding.js';
import { PositionEmbeddingRandom } from './position-embedding.js';

export interface PromptEncoderOptions {
  embedDim: number;
  /** `[h, w]` of the image embedding. */
  imageEmbeddingSize: [number, number];
  /** `[H, W]` of the (padded) encoder input, the frame of point coordinates. */
  inputImageSize: [number, number];
  maskInChans: number;
}

export interface EncodedPrompts {
  /** `[B, N, C]` point and box-corner tokens, or null when there are none. */
  sparse: tf.Tensor3D | null;
  /** Dense embedding broadcastable to `[B, h, w, C]`: `[B, h, w, C]` from a mask, else `[1, 1, 1, C]`. */
  dense: tf.Tensor4D;
}

export class PromptEncoder extends Module {
  readonly embedDim: number;
  readonly imageEmbeddingSize: [number, number];
  readonly inputImageSize: [number, number];
  /** Positive/negative point, then the two box corners. */
  static readonly numPointEmbeddings = 4;

  constructor(options: PromptEncoderOptions) {
    super();
    const { embedDim, maskInChans } = options;
    if (embedDim % 2) throw new Error(`PromptEncoder: embed_dim must be even, got ${embedDim}`);
    if (maskInChans % 4) throw new Error(`PromptEncoder: mask_in_chans must be divisible by 4, got ${maskInChans}`);
    this.embedDim = embedDim;
    this.imageEmbeddingSize = options.imageEmbeddingSize;
    this.inputImageSize = options.inputImageSize;
    this.registerModule('pe_layer', new PositionEmbeddingRandom(embedDim / 2));
    const points = new ModuleList<Embedding>();
    for (let i = 0; i < PromptEncoder.numPointEmbeddings; i++) points.push(new Embedding(1, embedDim));
    this.registerModule('point_embeddings', points);
    this.registerModule('not_a_point_embed', new Embedding(1, embedDim));
    const q = maskInChans / 4;
    this.registerModule(
      'mask_downscaling',
      new Sequential([
        new Conv2d(1, q, 2, { stride: 2 }),
        new LayerNorm2d(q),
        new GELU(),
        new Conv2d(q, maskInChans, 2, { stride: 2 }),
        new LayerNorm2d(maskInChans),
        new GELU(),
        new Conv2d(maskInChans, embedDim, 1),
      ]),
    );
    this.registerModule('no_mask_embed', new Embedding(1, embedDim));
  }

  get peLayer(): PositionEmbeddingRandom {
    return this.child('pe_layer') as PositionEmbeddingRandom;
  }

  private embedding(name: string): tf.Variable {
    return (this.child(name) as Embedding).weight;
  }

  private pointEmbedding(i: number): tf.Variable {
    return (this.child('point_embeddings') as ModuleList<Embedding>).at(i).weight;
  }

  /** The position encoding of every image-embedding cell, channels-last `[h, w, C]`. */
  densePe(h = this.imageEmbeddingSize[0], w = this.imageEmbeddingSize[1]): tf.Tensor3D {
    return this.peLayer.grid(h, w);
  }

  /**
   * Point tokens `[B, N(+1), C]`. Coordinates are pixel positions shifted to the
   * pixel centre; label -1 (padding) gets only `not_a_point_embed`, 0 adds the
   * negative and 1 the positive embedding. Without boxes a padding point is appended.
   */
  embedPoints(coords: tf.Tensor3D, labels: tf.Tensor2D, pad: boolean): tf.Tensor3D {
    return tf.tidy(() => {
      const b = coords.shape[0];
      let xy: tf.Tensor3D = tf.add(tf.cast(coords, 'float32'), 0.5);
      let lab: tf.Tensor2D = tf.cast(labels, 'float32');
      if (pad) {
        xy = tf.concat([xy, tf.zeros([b, 1, 2])], 1);
        lab = tf.concat([lab, tf.fill([b, 1], -1)], 1);
      }
      const pe = this.peLayer.encodePixels(xy, this.inputImageSize);
      const l = tf.expandDims(lab, 2);
      const isPad = tf.cast(tf.equal(l, -1), 'float32');
      const isNeg = tf.cast(tf.equal(l, 0), 'float32');
      const isPos = tf.cast(tf.equal(l, 1), 'float32');
      let emb = tf.mul(pe, tf.sub(1, isPad));
      emb = tf.add(emb, tf.mul(isPad, this.embedding('not_a_point_embed')));
      emb = tf.add(emb, tf.mul(isNeg, this.pointEmbedding(0)));
      emb = tf.add(emb, tf.mul(isPos, this.pointEmbedding(1)));
      return emb as tf.Tensor3D;
    });
  }

  /** Box tokens `[B, 2, C]`: both corners encoded, plus the corner embeddings 2 and 3. */
  embedBoxes(boxes: tf.Tensor2D): tf.Tensor3D {
    return tf.tidy(() => {
      const b = boxes.shape[0];
      const corners = tf.reshape(tf.add(tf.cast(boxes, 'float32'), 0.5), [b, 2, 2]) as tf.Tensor3D;
      const pe = this.peLayer.encodePixels(corners, this.inputImageSize);
      const cornerEmb = tf.expandDims(tf.concat([this.pointEmbedding(2), this.pointEmbedding(3)], 0), 0);
      return tf.add(pe, cornerEmb) as tf.Tensor3D;
    });
  }

  /** Dense embedding of mask logits `[B, 4h, 4w, 1]` → `[B, h, w, C]`. */
  embedMasks(masks: tf.Tensor4D): tf.Tensor4D {
    return (this.child('mask_downscaling') as Sequential).forward(masks) as tf.Tensor4D;
  }

  /**
   * Encodes the prompts of `batch` images whose embeddings are `h × w`
   * (default: the configured embedding size).
   */
  forward(prompts: Prompts, batch: number, size: [number, number] = this.imageEmbeddingSize): EncodedPrompts {
    checkPrompts(prompts, batch, size);
    const parts: tf.Tensor3D[] = [];
    if (prompts.points) parts.push(this.embedPoints(prompts.points.coords, prompts.points.labels, !prompts.boxes));
    if (prompts.boxes) parts.push(this.embedBoxes(prompts.boxes));
    let sparse: tf.Tensor3D | null = parts[0] ?? null;
    if (parts.length > 1) {
      sparse = tf.concat(parts, 1);
      tf.dispose(parts);
    }
    const dense = prompts.masks
      ? this.embedMasks(prompts.masks)
      : tf.tidy(() => tf.reshape(this.embedding('no_mask_embed'), [1, 1, 1, this.embedDim]) as tf.Tensor4D);
    return { sparse, dense };
  }
}

/** Checks that every prompt belongs to a batch of `batch` images with `h × w` embeddings. */
export function checkPrompts(prompts: Prompts, batch: number, [h, w]: [number, number]): void {
  const shape = (t: tf.Tensor) => `[${t.shape.join(', ')}]`;
  if (prompts.points) {
    const { coords, labels } = prompts.points;
    if (coords.rank !== 3 || coords.shape[0] !== batch || coords.shape[2] !== 2) {
      throw new PeftError(`point prompts: coords must be [${batch}, N, 2] (x, y per point), got ${shape(coords)}`);
    }
    if (labels.rank !== 2 || labels.shape[0] !== batch || labels.shape[1] !== coords.shape[1]) {
      throw new PeftError(`point prompts: labels must be [${batch}, ${coords.shape[1]}] to match coords, got ${shape(labels)}`);
    }
  }
  if (prompts.boxes && (prompts.boxes.rank !== 2 || prompts.boxes.shape[0] !== batch || prompts.boxes.shape[1] !== 4)) {
    throw new PeftError(`box prompts must be [${batch}, 4] (x0, y0, x1, y1), got ${shape(prompts.boxes)}`);
  }
  const m = prompts.masks;
  if (m && (m.rank !== 4 || m.shape[0] !== batch || m.shape[1] !== 4 * h || m.shape[2] !== 4 * w || m.shape[3] !== 1)) {
    throw new PeftError(`mask prompts must be [${batch}, ${4 * h}, ${4 * w}, 1] (low-resolution logits), got ${shape(m)}`);
  }
}
