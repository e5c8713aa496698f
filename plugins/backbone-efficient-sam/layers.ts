// GroupNorm with one group, the one layer EfficientSAM needs beyond the core
// set (containers, Embedding, Identity come from the core). Channels-last.
import { Module, tf, type TensorMap } from '../../src/index.js';

/**
 * `nn.GroupNorm(1, C)` on channels-last `[B, H, W, C]`: one mean and variance
 * per sample over all of (H, W, C), then a per-channel affine.
 */
export class GroupNorm1 extends Module implements TensorMap {
  constructor(
    readonly dim: number,
    readonly eps = 1e-5,
  ) {
    super();
    this.registerParameter('weight', tf.ones([dim]));
    this.registerParameter('bias', tf.zeros([dim]));
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const axes = x.shape.map((_, i) => i).slice(1);
      const mean = tf.mean(x, axes, true);
      const xc = tf.sub(x, mean);
      const variance = tf.mean(tf.square(xc), axes, true);
      const y = tf.mul(xc, tf.rsqrt(tf.add(variance, this.eps)));
      return tf.add(tf.mul(y, this.param('weight').variable), this.param('bias').variable);
    });
  }
}
