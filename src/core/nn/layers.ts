// The building-block layers, PyTorch-compatible in parameter names and shapes.
// Images flow channels-last ([B, H, W, C], TensorFlow.js's layout); weights are
// stored in PyTorch's layout so state dicts load unchanged.
import * as tf from '@tensorflow/tfjs';
import { channelAffine } from './channel-affine.js';
import { Module } from './module.js';
import { geluErf, geluTanh, layerNorm, linear } from './functional.js';
import { kaimingUniform, uniform } from './init.js';

/** Anything that maps `[..., in]` to `[..., out]` like a linear layer (a PEFT wrapper too). */
export interface LinearLike extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  forward(x: tf.Tensor): tf.Tensor;
}

export class Linear extends Module implements LinearLike {
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    bias = true,
  ) {
    super();
    this.registerParameter('weight', kaimingUniform([outFeatures, inFeatures], inFeatures));
    if (bias) this.registerParameter('bias', uniform([outFeatures], 1 / Math.sqrt(inFeatures)));
  }

  get weight(): tf.Variable {
    return this.param('weight').variable;
  }

  get bias(): tf.Variable | undefined {
    return this.hasParam('bias') ? this.param('bias').variable : undefined;
  }

  forward(x: tf.Tensor): tf.Tensor {
    return linear(x, this.weight, this.bias);
  }
}

export interface Conv2dOptions {
  stride?: number;
  padding?: number;
  groups?: number;
  bias?: boolean;
}

/**
 * 2-D convolution on channels-last input. Weight `[out, in/groups, kh, kw]` as
 * in PyTorch. `groups` = in channels is depthwise (multiplier out/in).
 */
export class Conv2d extends Module {
  readonly stride: number;
  readonly padding: number;
  readonly groups: number;

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernelSize: number,
    options: Conv2dOptions = {},
  ) {
    super();
    this.stride = options.stride ?? 1;
    this.padding = options.padding ?? 0;
    this.groups = options.groups ?? 1;
    if (inChannels % this.groups || outChannels % this.groups) {
      throw new Error(`Conv2d: channels ${inChannels}->${outChannels} not divisible by groups ${this.groups}`);
    }
    const fanIn = (inChannels / this.groups) * kernelSize * kernelSize;
    this.registerParameter('weight', kaimingUniform([outChannels, inChannels / this.groups, kernelSize, kernelSize], fanIn));
    if (options.bias ?? true) this.registerParameter('bias', uniform([outChannels], 1 / Math.sqrt(fanIn)));
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const w = this.param('weight').variable as tf.Tensor4D;
      const k = this.kernelSize;
      let y: tf.Tensor4D;
      if (this.groups === 1 && k === this.stride && this.padding === 0) {
        y = patchConv(x, w);
      } else if (this.groups === 1) {
        y = tf.conv2d(x, tf.transpose(w, [2, 3, 1, 0]) as tf.Tensor4D, this.stride, this.pad());
      } else if (this.groups === this.inChannels) {
        const mult = this.outChannels / this.inChannels;
        const filter = tf.transpose(tf.reshape(w, [this.inChannels, mult, k, k]), [2, 3, 0, 1]) as tf.Tensor4D;
        y = tf.depthwiseConv2d(x, filter, this.stride, this.pad()) as tf.Tensor4D;
      } else {
        const xs = tf.split(x, this.groups, 3) as tf.Tensor4D[];
        const ws = tf.split(w, this.groups, 0);
        y = tf.concat(
          xs.map((xi, g) => tf.conv2d(xi, tf.transpose(ws[g]!, [2, 3, 1, 0]) as tf.Tensor4D, this.stride, this.pad())),
          3,
        ) as tf.Tensor4D;
      }
      return this.hasParam('bias') ? tf.add(y, this.param('bias').variable) : y;
    });
  }

  private pad(): number | 'valid' {
    return this.padding === 0 ? 'valid' : this.padding;
  }
}

/**
 * A convolution whose kernel equals its stride (patch embedding): the image is
 * cut into non-overlapping patches and multiplied by the flattened kernel, so
 * forward and backward are plain matrix products. Trailing rows/columns that do
 * not fill a patch are dropped, as PyTorch does.
 */
function patchConv(x: tf.Tensor4D, w: tf.Tensor4D): tf.Tensor4D {
  const [b, h, wd, c] = x.shape;
  const [out, , k] = w.shape;
  const gh = Math.floor(h / k);
  const gw = Math.floor(wd / k);
  const xc = gh * k === h && gw * k === wd ? x : tf.slice(x, [0, 0, 0, 0], [b, gh * k, gw * k, c]);
  // [B, gh, k, gw, k, C] -> [B, gh, gw, C, k, k] so each patch flattens as PyTorch's (c, kh, kw); a 1x1
  // kernel moves only axes of size 1 there, the same order of elements: one Reshape (no Transpose forward
  // and backward, two Reshapes fewer)
  const patches =
    k === 1 ? tf.reshape(xc, [b * gh * gw, c]) : tf.reshape(tf.transpose(tf.reshape(xc, [b, gh, k, gw, k, c]), [0, 1, 3, 5, 2, 4]), [b * gh * gw, c * k * k]);
  const y = tf.matMul(patches, tf.reshape(w, [out, c * k * k]), false, true);
  return tf.reshape(y, [b, gh, gw, out]);
}

/**
 * Transposed convolution (PyTorch `ConvTranspose2d`, weight `[in, out, kh, kw]`)
 * on channels-last input, no padding. When kernel equals stride (SAM's
 * upscaling) it is a matrix product followed by depth-to-space.
 */
export class ConvTranspose2d extends Module {
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernelSize: number,
    readonly stride: number,
    bias = true,
  ) {
    super();
    const fanIn = outChannels * kernelSize * kernelSize;
    this.registerParameter('weight', kaimingUniform([inChannels, outChannels, kernelSize, kernelSize], fanIn));
    if (bias) this.registerParameter('bias', uniform([outChannels], 1 / Math.sqrt(fanIn)));
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const w = this.param('weight').variable as tf.Tensor4D;
      const [b, h, wd] = x.shape;
      const k = this.kernelSize;
      let y: tf.Tensor4D;
      if (k === this.stride) {
        const flat = tf.matMul(tf.reshape(x, [-1, this.inChannels]), tf.reshape(w, [this.inChannels, -1]));
        // [B, H, W, out, kh, kw] -> [B, H, kh, W, kw, out]
        const six = tf.reshape(flat, [b, h, wd, this.outChannels, k, k]);
        y = tf.reshape(tf.transpose(six, [0, 1, 4, 2, 5, 3]), [b, h * k, wd * k, this.outChannels]);
      } else {
        const outH = (h - 1) * this.stride + k;
        const outW = (wd - 1) * this.stride + k;
        const filter = tf.transpose(w, [2, 3, 1, 0]) as tf.Tensor4D;
        y = tf.conv2dTranspose(x, filter, [b, outH, outW, this.outChannels], this.stride, 'valid');
      }
      return this.hasParam('bias') ? tf.add(y, this.param('bias').variable) : y;
    });
  }
}

/** LayerNorm over the last axis, with PyTorch's names `weight` and `bias`. */
export class LayerNorm extends Module {
  constructor(
    readonly dim: number,
    readonly eps = 1e-5,
  ) {
    super();
    this.registerParameter('weight', tf.ones([dim]));
    this.registerParameter('bias', tf.zeros([dim]));
  }

  forward(x: tf.Tensor): tf.Tensor {
    return layerNorm(x, this.param('weight').variable, this.param('bias').variable, this.eps);
  }
}

/**
 * SAM's LayerNorm2d: a norm over channels at each pixel. On channels-last data
 * that is the last axis, so it is LayerNorm with SAM's eps (1e-6).
 */
export class LayerNorm2d extends LayerNorm {
  constructor(dim: number, eps = 1e-6) {
    super(dim, eps);
  }
}

/** Batch norm in inference mode (running statistics), channels-last. */
export class BatchNorm2d extends Module {
  constructor(
    readonly dim: number,
    readonly eps = 1e-5,
  ) {
    super();
    this.registerParameter('weight', tf.ones([dim]));
    this.registerParameter('bias', tf.zeros([dim]));
    this.registerBuffer('running_mean', tf.zeros([dim]));
    this.registerBuffer('running_var', tf.ones([dim]));
    this.registerBuffer('num_batches_tracked', tf.scalar(0, 'int32'), { optional: true });
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const scale = tf.mul(this.param('weight').variable, tf.rsqrt(tf.add(this.param('running_var').variable, this.eps)));
      const shift = tf.sub(this.param('bias').variable, tf.mul(this.param('running_mean').variable, scale));
      return channelAffine(x, scale, shift);
    });
  }
}

export class GELU extends Module {
  constructor(readonly approximate: 'none' | 'tanh' = 'none') {
    super();
  }

  forward(x: tf.Tensor): tf.Tensor {
    return this.approximate === 'tanh' ? geluTanh(x) : geluErf(x);
  }
}

export class Dropout extends Module {
  constructor(readonly p = 0) {
    super();
    if (!(p >= 0 && p < 1)) throw new Error(`Dropout: p must be in [0, 1), got ${p}`);
  }

  forward(x: tf.Tensor): tf.Tensor {
    if (!this.training || this.p === 0) return x;
    return tf.dropout(x, this.p);
  }
}
