// The TinyViT block: windowed attention (+ residual), a depthwise "local"
// Conv2d_BN, then an MLP with its own LayerNorm (+ residual). Channels-last
// `[B, H, W, C]` in and out.
//
// PEFT hook points (Medical-SAM-Adapter's TinyViT variant):
// - `post-attn` runs on the attention output ONLY on the windowed path (the
//   grid differs from one window), on the windows `[nW, window², C]` before the
//   window reverse. When the grid is exactly one window the reference calls
//   attention directly and applies no space adapter, so neither do we; a grid
//   smaller than the window is zero-padded to one window and takes the
//   windowed path, adapter included (adapter-paths.test.ts covers each path).
// - `mlp-parallel` receives the un-normalised x after local_conv:
//   `x = x + mlp(x) + Σ scale·hook(x)` (TinyViT's MLP normalises inside).
import { HookableBlock, LayerNorm, Linear, Module, geluErf, tf, type LinearLike } from '../../src/index.js';
import { TinyVitAttention } from './attention.js';
import { Conv2dBN } from './layers.js';

/** TinyViT's Mlp: `fc2(GELU(fc1(norm(x))))`. */
export class TinyVitMlp extends Module {
  constructor(dim: number, hidden: number) {
    super();
    this.registerModule('norm', new LayerNorm(dim));
    this.registerModule('fc1', new Linear(dim, hidden));
    this.registerModule('fc2', new Linear(hidden, dim));
  }

  get fc1(): LinearLike {
    return this.child('fc1') as LinearLike;
  }

  get fc2(): LinearLike {
    return this.child('fc2') as LinearLike;
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => this.fc2.forward(geluErf(this.fc1.forward((this.child('norm') as LayerNorm).forward(x)))));
  }
}

export interface TinyVitBlockOptions {
  dim: number;
  numHeads: number;
  windowSize: number;
  mlpRatio: number;
  localConvSize: number;
}

export class TinyVitBlock extends HookableBlock {
  readonly dim: number;
  readonly windowSize: number;
  readonly mlpHidden: number;

  constructor(o: TinyVitBlockOptions) {
    super();
    this.dim = o.dim;
    this.windowSize = o.windowSize;
    this.mlpHidden = Math.floor(o.dim * o.mlpRatio);
    this.registerModule('attn', new TinyVitAttention(o.dim, o.numHeads, o.windowSize));
    this.registerModule('mlp', new TinyVitMlp(o.dim, this.mlpHidden));
    const k = o.localConvSize;
    this.registerModule('local_conv', new Conv2dBN(o.dim, o.dim, k, 1, Math.floor(k / 2), o.dim));
  }

  get attn(): TinyVitAttention {
    return this.child('attn') as TinyVitAttention;
  }

  get mlp(): TinyVitMlp {
    return this.child('mlp') as TinyVitMlp;
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const [b, h, w, c] = x.shape;
      const ws = this.windowSize;
      let a: tf.Tensor;
      if (h === ws && w === ws) {
        a = tf.reshape(this.attn.forward(tf.reshape(x, [b, h * w, c]) as tf.Tensor3D), [b, h, w, c]);
      } else {
        // zero-pad bottom/right to whole windows; attention normalises inside, so padded
        // tokens enter it as norm(0) exactly as in the reference
        const padB = (ws - (h % ws)) % ws;
        const padR = (ws - (w % ws)) % ws;
        const xp = padB || padR ? tf.pad(x, [[0, 0], [0, padB], [0, padR], [0, 0]]) : x;
        const nH = (h + padB) / ws;
        const nW = (w + padR) / ws;
        // [B, nH, ws, nW, ws, C] -> [B, nH, nW, ws, ws, C] -> [B*nH*nW, ws*ws, C]; with windows of one token or
        // one window a row the swap moves an axis of size 1, the same order of elements: a Reshape, no Transpose
        // (forward and backward, both ways)
        const swap = ws !== 1 && nW !== 1;
        const windows = swap
          ? tf.reshape(tf.transpose(tf.reshape(xp, [b, nH, ws, nW, ws, c]), [0, 1, 3, 2, 4, 5]), [b * nH * nW, ws * ws, c])
          : tf.reshape(xp, [b * nH * nW, ws * ws, c]);
        const out = this.postAttn(this.attn.forward(windows as tf.Tensor3D));
        const back = swap
          ? tf.reshape(tf.transpose(tf.reshape(out, [b, nH, nW, ws, ws, c]), [0, 1, 3, 2, 4, 5]), [b, h + padB, w + padR, c])
          : tf.reshape(out, [b, h + padB, w + padR, c]);
        a = padB || padR ? tf.slice(back, [0, 0, 0, 0], [b, h, w, c]) : back;
      }
      const y = (this.child('local_conv') as Conv2dBN).forward(tf.add(x, a)) as tf.Tensor4D;
      return tf.add(y, this.mlpParallel(y, this.mlp.forward(y))) as tf.Tensor4D;
    });
  }
}
