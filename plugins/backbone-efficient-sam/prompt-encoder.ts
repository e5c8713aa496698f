// EfficientSAM's prompt encoder (efficient_sam_decoder.py PromptEncoder):
// random-Fourier position encoding of points plus one learned embedding per
// label (-1 padding, 1 foreground point, 2 box top-left, 3 box bottom-right;
// label 0, a background point, adds nothing). No dense (mask) prompts.
import { Module, normal, tf, Embedding } from '../../src/index.js';

/** `PositionEmbeddingRandom`: buffer `positional_encoding_gaussian_matrix [2, C/2]`. */
export class PositionEmbeddingRandom extends Module {
  constructor(numPosFeats: number) {
    super();
    this.registerBuffer('positional_encoding_gaussian_matrix', normal([2, numPosFeats], 1));
  }

  /** `coords [..., 2]` in [0, 1] → `[..., C]` = [sin, cos] of 2π (2c - 1) G. */
  encode(coords: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const g = this.param('positional_encoding_gaussian_matrix').variable;
      const lead = coords.shape.slice(0, -1);
      const flat = tf.reshape(tf.sub(tf.mul(coords, 2), 1), [-1, 2]);
      const proj = tf.mul(tf.matMul(flat, g), 2 * Math.PI);
      const out = tf.concat([tf.sin(proj), tf.cos(proj)], -1);
      return tf.reshape(out, [...lead, out.shape[1]!]);
    });
  }

  /** The encoding of every cell centre of an `h × w` grid, channels-last `[h, w, C]`. */
  grid(h: number, w: number): tf.Tensor3D {
    return tf.tidy(() => {
      const ys = tf.div(tf.add(tf.range(0, h, 1, 'float32'), 0.5), h);
      const xs = tf.div(tf.add(tf.range(0, w, 1, 'float32'), 0.5), w);
      const xy = tf.stack([tf.tile(tf.reshape(xs, [1, w]), [h, 1]), tf.tile(tf.reshape(ys, [h, 1]), [1, w])], -1);
      return this.encode(xy) as tf.Tensor3D;
    });
  }
}

export class EfficientSamPromptEncoder extends Module {
  constructor(
    readonly embedDim: number,
    readonly inputImageSize: [number, number],
  ) {
    super();
    this.registerModule('pe_layer', new PositionEmbeddingRandom(embedDim / 2));
    this.registerModule('invalid_points', new Embedding(1, embedDim));
    this.registerModule('point_embeddings', new Embedding(1, embedDim));
    this.registerModule('bbox_top_left_embeddings', new Embedding(1, embedDim));
    this.registerModule('bbox_bottom_right_embeddings', new Embedding(1, embedDim));
  }

  get peLayer(): PositionEmbeddingRandom {
    return this.child('pe_layer') as PositionEmbeddingRandom;
  }

  /** Dense positional encoding of the image embedding grid, `[h, w, C]`. */
  densePe(h: number, w: number): tf.Tensor3D {
    return this.peLayer.grid(h, w);
  }

  /**
   * `points [M, N, 2]` (x, y in input-image pixels) and `labels [M, N]` →
   * sparse embeddings `[M, N, C]`.
   */
  forward(points: tf.Tensor, labels: tf.Tensor): tf.Tensor3D {
    return tf.tidy(() => {
      const [ih, iw] = this.inputImageSize;
      // Shift to the pixel centre, then normalise x by the width and y by the height.
      const norm = tf.div(tf.add(points, 0.5), tf.tensor1d([iw, ih]));
      let emb = this.peLayer.encode(norm);
      const lab = tf.expandDims(tf.cast(labels, 'float32'), -1);
      const table: [number, string][] = [
        [-1, 'invalid_points'],
        [1, 'point_embeddings'],
        [2, 'bbox_top_left_embeddings'],
        [3, 'bbox_bottom_right_embeddings'],
      ];
      for (const [value, name] of table) {
        const mask = tf.cast(tf.equal(lab, value), 'float32');
        emb = tf.add(emb, tf.mul(mask, (this.child(name) as Embedding).weight));
      }
      return emb as tf.Tensor3D;
    });
  }
}
