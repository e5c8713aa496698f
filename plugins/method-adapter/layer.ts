// Medical-SAM-Adapter's `Adapter`: a bottleneck MLP, with or without skip.
//   h = D_fc2(GELU(D_fc1(x)))     D_fc1: dim -> hidden, D_fc2: hidden -> dim
//   y = x + h (skip_connect) or y = h
// Where the native kernels are on, the whole adapter is core `bottleneckMlp`:
// one kernel each way instead of the linear, GELU, linear (and add) chain.
import { GELU, Linear, Module, PeftError, bottleneckMlp, bottleneckMlpIsNative, tf, type BlockHook } from '../../src/index.js';

export class Adapter extends Module implements BlockHook {
  private readonly act = new GELU();

  /** `zeroInit` zeroes D_fc2 so the adapter's branch is 0 at init. */
  constructor(
    readonly features: number,
    readonly hidden: number,
    readonly skipConnect: boolean,
    zeroInit = false,
  ) {
    super();
    if (!Number.isInteger(hidden) || hidden < 1) {
      throw new PeftError(`adapter hidden width must be a positive integer, got ${hidden} (width ${features}; raise mlp_ratio or set mid_dim)`);
    }
    this.registerModule('D_fc1', new Linear(features, hidden));
    const fc2 = this.registerModule('D_fc2', new Linear(hidden, features));
    if (zeroInit) {
      fc2.registerParameter('weight', tf.zeros([features, hidden]));
      fc2.registerParameter('bias', tf.zeros([features]));
    }
  }

  get fc1(): Linear {
    return this.child('D_fc1') as Linear;
  }

  get fc2(): Linear {
    return this.child('D_fc2') as Linear;
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const [fc1, fc2] = [this.fc1, this.fc2];
      if (bottleneckMlpIsNative() && fc1.bias && fc2.bias && x.rank >= 2) {
        const x2 = (x.rank === 2 ? x : tf.reshape(x, [-1, this.features])) as tf.Tensor2D;
        const y = bottleneckMlp(x2, fc1.weight as tf.Tensor2D, fc1.bias as tf.Tensor1D, fc2.weight as tf.Tensor2D, fc2.bias as tf.Tensor1D, this.skipConnect);
        return x.rank === 2 ? y : tf.reshape(y, x.shape);
      }
      const h = this.fc2.forward(this.act.forward(this.fc1.forward(x)));
      return this.skipConnect ? tf.add(x, h) : h;
    });
  }
}
