// Small PyTorch containers and layers EfficientSAM needs beyond the core set:
// ModuleList / Sequential (children named '0', '1', ...), Identity, Embedding
// and GroupNorm with one group. All channels-last.
import { Module, normal, tf } from '../../src/index.js';

/** Anything with a tensor-to-tensor forward. */
export interface Forward extends Module {
  forward(x: tf.Tensor): tf.Tensor;
}

/** PyTorch's `nn.ModuleList`: children named by their index. */
export class ModuleList<M extends Module = Module> extends Module {
  readonly length: number;

  constructor(modules: M[]) {
    super();
    modules.forEach((m, i) => this.registerModule(String(i), m));
    this.length = modules.length;
  }

  /** The child at `i`, looked up at call time (a PEFT wrapper may have replaced it). */
  at(i: number): M {
    const m = this.child(String(i));
    if (!m) throw new Error(`${this.constructor.name} has no child ${i}`);
    return m as M;
  }

  *[Symbol.iterator](): Iterator<M> {
    for (let i = 0; i < this.length; i++) yield this.at(i);
  }
}

/** PyTorch's `nn.Sequential`: applies its children in order. */
export class Sequential extends ModuleList<Forward> implements Forward {
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      let y = x;
      for (const m of this) y = m.forward(y);
      return y;
    });
  }
}

/** `nn.Identity`: keeps an index in a Sequential, holds nothing. */
export class Identity extends Module implements Forward {
  forward(x: tf.Tensor): tf.Tensor {
    return x;
  }
}

/** `nn.Embedding(n, dim)`: a table `weight [n, dim]` (EfficientSAM only reads rows). */
export class Embedding extends Module {
  constructor(
    readonly num: number,
    readonly dim: number,
  ) {
    super();
    this.registerParameter('weight', normal([num, dim], 1));
  }

  get weight(): tf.Variable {
    return this.param('weight').variable;
  }
}

/**
 * `nn.GroupNorm(1, C)` on channels-last `[B, H, W, C]`: one mean and variance
 * per sample over all of (H, W, C), then a per-channel affine.
 */
export class GroupNorm1 extends Module implements Forward {
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
