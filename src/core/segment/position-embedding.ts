// SAM's random Fourier position encoding (`PositionEmbeddingRandom`): a fixed
// Gaussian matrix `G [2, F]` (buffer `positional_encoding_gaussian_matrix`)
// maps a point p in [0,1]^2 to [sin(2π(2p-1)G), cos(2π(2p-1)G)], 2F channels.
import * as tf from '@tensorflow/tfjs';
import { Module } from '../nn/module.js';
import { normal } from '../nn/init.js';

export class PositionEmbeddingRandom extends Module {
  constructor(
    readonly numPosFeats: number,
    scale = 1,
  ) {
    super();
    this.registerBuffer('positional_encoding_gaussian_matrix', normal([2, numPosFeats], scale > 0 ? scale : 1));
  }

  get gaussian(): tf.Tensor2D {
    return this.param('positional_encoding_gaussian_matrix').variable as tf.Tensor2D;
  }

  /** Encodes points normalised to [0,1]^2: `[..., 2]` (x, y) → `[..., 2F]`. */
  encode(coords: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const lead = coords.shape.slice(0, -1);
      const c = tf.sub(tf.mul(tf.reshape(coords, [-1, 2]), 2), 1);
      const proj = tf.mul(tf.matMul(c, this.gaussian), 2 * Math.PI);
      return tf.reshape(tf.concat([tf.sin(proj), tf.cos(proj)], 1), [...lead, 2 * this.numPosFeats]);
    });
  }

  /** The encoding of every cell centre of an `h × w` grid, channels-last `[h, w, 2F]`. */
  grid(h: number, w: number): tf.Tensor3D {
    const xy = new Float32Array(h * w * 2);
    for (let i = 0; i < h; i++) {
      for (let j = 0; j < w; j++) {
        xy[(i * w + j) * 2] = (j + 0.5) / w;
        xy[(i * w + j) * 2 + 1] = (i + 0.5) / h;
      }
    }
    return tf.tidy(() => this.encode(tf.tensor3d(xy, [h, w, 2])) as tf.Tensor3D);
  }

  /** Encodes pixel coordinates `[B, N, 2]` (x, y) of an image of `[height, width]`. */
  encodePixels(coords: tf.Tensor3D, imageSize: [number, number]): tf.Tensor3D {
    return tf.tidy(() => this.encode(tf.div(coords, tf.tensor1d([imageSize[1], imageSize[0]]))) as tf.Tensor3D);
  }
}
