// TinyViT's small building blocks, channels-last ([B, H, W, C]) with
// PyTorch's parameter names: indexed lists (`layers.0`, `seq.2`), Conv2d_BN
// (`c` + `bn`, batch norm with running statistics), and the conv stages
// (patch embedding, MBConv, patch merging).
import { BatchNorm2d, Conv2d, GELU, Module, Sequential, geluErf, tf } from '../../src/index.js';
import { mergeStride } from './config.js';

/** TinyViT's Conv2d_BN: a bias-free conv (`c`) followed by batch norm (`bn`, inference mode). */
export class Conv2dBN extends Module {
  constructor(inChannels: number, outChannels: number, kernel = 1, stride = 1, pad = 0, groups = 1) {
    super();
    this.registerModule('c', new Conv2d(inChannels, outChannels, kernel, { stride, padding: pad, groups, bias: false }));
    this.registerModule('bn', new BatchNorm2d(outChannels));
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => (this.child('bn') as BatchNorm2d).forward((this.child('c') as Conv2d).forward(x as tf.Tensor4D)));
  }
}

/** Two stride-2 3x3 Conv2d_BN with GELU between: `[B, H, W, in]` → `[B, H/4, W/4, dim]`. */
export class PatchEmbed extends Module {
  constructor(inChans: number, dim: number) {
    super();
    const seq = this.registerModule('seq', new Sequential());
    seq.push(new Conv2dBN(inChans, Math.floor(dim / 2), 3, 2, 1));
    seq.push(new GELU());
    seq.push(new Conv2dBN(Math.floor(dim / 2), dim, 3, 2, 1));
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return (this.child('seq') as Sequential).forward(x) as tf.Tensor4D;
  }
}

/** Inverted residual: 1x1 expand, GELU, 3x3 depthwise, GELU, 1x1 project, + x, GELU. */
export class MBConv extends Module {
  constructor(dim: number, expandRatio: number) {
    super();
    const hidden = Math.floor(dim * expandRatio);
    this.registerModule('conv1', new Conv2dBN(dim, hidden, 1));
    this.registerModule('conv2', new Conv2dBN(hidden, hidden, 3, 1, 1, hidden));
    this.registerModule('conv3', new Conv2dBN(hidden, dim, 1));
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const conv = (name: string) => this.child(name) as Conv2dBN;
      let y = gelu(conv('conv1').forward(x));
      y = gelu(conv('conv2').forward(y));
      y = conv('conv3').forward(y);
      return gelu(tf.add(y, x)) as tf.Tensor4D;
    });
  }
}

/**
 * Downsampling between stages: 1x1 conv, GELU, 3x3 depthwise conv (stride 2,
 * or 1 when `out` is 320/448/576, see `mergeStride`), GELU, 1x1 conv.
 */
export class PatchMerging extends Module {
  readonly stride: number;

  constructor(dim: number, out: number) {
    super();
    this.stride = mergeStride(out);
    this.registerModule('conv1', new Conv2dBN(dim, out, 1));
    this.registerModule('conv2', new Conv2dBN(out, out, 3, this.stride, 1, out));
    this.registerModule('conv3', new Conv2dBN(out, out, 1));
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const conv = (name: string) => this.child(name) as Conv2dBN;
      const y = gelu(conv('conv2').forward(gelu(conv('conv1').forward(x))));
      return conv('conv3').forward(y) as tf.Tensor4D;
    });
  }
}

const gelu = geluErf;
