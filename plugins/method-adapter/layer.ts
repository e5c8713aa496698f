// Medical-SAM-Adapter's `Adapter`: a bottleneck MLP, with or without skip.
//   h = D_fc2(GELU(D_fc1(x)))     D_fc1: dim -> hidden, D_fc2: hidden -> dim
//   y = x + h (skip_connect) or y = h
// scaled by `scale` when given (y = s h (+ x)): the reference's Block adds
// 0.5 x its MLP adapter (`x + mlp(xn) + scale * MLP_Adapter(xn)`); the scale
// is the adapter's own so that it rides in the adapter's kernel (the products'
// alpha) rather than a multiply of the block's hook each way.
// Where the native kernels are on, the whole adapter is core `bottleneckMlp`:
// one kernel each way instead of the linear, GELU, linear (scale, add) chain.
import { GELU, Linear, Module, PeftError, bottleneckMlp, bottleneckMlpIsNative, tf, type BlockHook } from '../../src/index.js';

export class Adapter extends Module implements BlockHook {
  private readonly act = new GELU();

  /** `zeroInit` zeroes D_fc2 so the adapter's branch is 0 at init; `scale` multiplies h (not the skip). */
  constructor(
    readonly features: number,
    readonly hidden: number,
    readonly skipConnect: boolean,
    zeroInit = false,
    readonly scale = 1,
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
        const y = bottleneckMlp(x2, fc1.weight as tf.Tensor2D, fc1.bias as tf.Tensor1D, fc2.weight as tf.Tensor2D, fc2.bias as tf.Tensor1D, this.skipConnect, this.scale);
        return x.rank === 2 ? y : tf.reshape(y, x.shape);
      }
      const h0 = this.fc2.forward(this.act.forward(this.fc1.forward(x)));
      const h = this.scale === 1 ? h0 : tf.mul(h0, this.scale);
      return this.skipConnect ? tf.add(x, h) : h;
    });
  }
}
