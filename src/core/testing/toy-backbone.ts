// A small synthetic ViT-like backbone for the laws: 1-3 blocks of width C,
// each  x += proj(attn(qkv(norm1 x)))  (post-attn hooks on the attention
// output) and  x += fc2(GELU(fc1(norm2 x)))  (+ mlp-parallel hooks), with the
// sites a real backbone declares: `attn.qkv` (groups q, k, v), `attn.proj`,
// `mlp.fc1`, `mlp.fc2` and the block itself. Tokens flow `[B, N, C]`.
// Weights are drawn from `seed` alone, so two toys of one spec are identical.
import * as tf from '@tensorflow/tfjs';
import { PeftError } from '../errors.js';
import { geluErf } from '../nn/functional.js';
import { LayerNorm, Linear, type LinearLike } from '../nn/layers.js';
import { Module } from '../nn/module.js';
import type { Backbone, HeadOutput } from '../peft/backbone.js';
import { HookableBlock } from '../peft/hookable-block.js';
import type { InjectionSite } from '../peft/injection-site.js';

export interface ToySpec {
  /** Number of blocks (1-3 in the laws). */
  depth: number;
  /** Token width C. */
  dim: number;
  /** MLP hidden width. */
  hidden: number;
  seed: number;
}

class ToyAttention extends Module {
  constructor(readonly dim: number) {
    super();
    this.registerModule('qkv', new Linear(dim, 3 * dim));
    this.registerModule('proj', new Linear(dim, dim));
  }

  /** Looked up at forward time: a method may replace it. */
  get qkv(): LinearLike {
    return this.child('qkv') as LinearLike;
  }

  get proj(): LinearLike {
    return this.child('proj') as LinearLike;
  }

  forward(x: tf.Tensor3D): tf.Tensor3D {
    return tf.tidy(() => {
      const [q, k, v] = tf.split(this.qkv.forward(x), 3, 2) as [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D];
      const attn = tf.softmax(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(this.dim)));
      return this.proj.forward(tf.matMul(attn, v)) as tf.Tensor3D;
    });
  }
}

class ToyMlp extends Module {
  constructor(dim: number, hidden: number) {
    super();
    this.registerModule('fc1', new Linear(dim, hidden));
    this.registerModule('fc2', new Linear(hidden, dim));
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => (this.child('fc2') as LinearLike).forward(geluErf((this.child('fc1') as LinearLike).forward(x))));
  }
}

export class ToyBlock extends HookableBlock {
  constructor(
    readonly dim: number,
    readonly hidden: number,
  ) {
    super();
    this.registerModule('norm1', new LayerNorm(dim));
    this.registerModule('attn', new ToyAttention(dim));
    this.registerModule('norm2', new LayerNorm(dim));
    this.registerModule('mlp', new ToyMlp(dim, hidden));
  }

  forward(x: tf.Tensor3D): tf.Tensor3D {
    return tf.tidy(() => {
      const a = (this.child('attn') as ToyAttention).forward((this.child('norm1') as LayerNorm).forward(x) as tf.Tensor3D);
      const x1 = tf.add(x, this.postAttn(a));
      const n = (this.child('norm2') as LayerNorm).forward(x1);
      return tf.add(x1, this.mlpParallel(n, (this.child('mlp') as ToyMlp).forward(n))) as tf.Tensor3D;
    });
  }
}

class ToyModel extends Module {}

/** The toy as a `Backbone` (so `compose` applies); `decode` is not available. */
export class ToyBackbone implements Backbone {
  readonly id = 'toy';
  readonly preset: string;
  readonly model = new ToyModel();
  readonly imageSize = 0;
  readonly pixelMean: [number, number, number] = [0, 0, 0];
  readonly pixelStd: [number, number, number] = [1, 1, 1];
  readonly decoderPath = 'head';

  constructor(readonly spec: ToySpec) {
    if (!(spec.depth >= 1 && spec.dim >= 1 && spec.hidden >= 1)) throw new Error(`toy backbone: bad spec ${JSON.stringify(spec)}`);
    this.preset = `d${spec.depth}-c${spec.dim}-h${spec.hidden}`;
    const blocks = this.model.registerModule('blocks', new ToyModel());
    for (let i = 0; i < spec.depth; i++) blocks.registerModule(String(i), new ToyBlock(spec.dim, spec.hidden));
    // Deterministic weights from the seed alone (not the global init counter).
    this.model.namedParameters().forEach(([name, p], i) => {
      const s = (spec.seed * 7919 + i * 104729) >>> 0;
      const fan = p.shape.length === 2 ? p.shape[1]! : 1;
      tf.tidy(() => {
        const base = name.includes('norm') && name.endsWith('weight') ? 1 : 0;
        p.assign(tf.add(tf.randomUniform(p.shape, -1 / Math.sqrt(fan), 1 / Math.sqrt(fan), 'float32', s), base));
      });
    });
  }

  block(i: number): ToyBlock {
    return this.model.getModule(`blocks.${i}`) as ToyBlock;
  }

  sites(): InjectionSite[] {
    const { depth, dim, hidden } = this.spec;
    const out: InjectionSite[] = [];
    for (let i = 0; i < depth; i++) {
      const p = `blocks.${i}`;
      out.push(
        { kind: 'linear', path: `${p}.attn.qkv`, role: 'attn.qkv', in: dim, out: 3 * dim, groups: ['q', 'k', 'v'], block: i },
        { kind: 'linear', path: `${p}.attn.proj`, role: 'attn.proj', in: dim, out: dim, block: i },
        { kind: 'linear', path: `${p}.mlp.fc1`, role: 'mlp.fc1', in: dim, out: hidden, block: i },
        { kind: 'linear', path: `${p}.mlp.fc2`, role: 'mlp.fc2', in: hidden, out: dim, block: i },
        { kind: 'block', path: p, role: 'block', dim, hooks: ['post-attn', 'mlp-parallel'], block: i },
      );
    }
    return out;
  }

  /** Tokens `[B, N, C]` through every block. */
  forward(x: tf.Tensor3D): tf.Tensor3D {
    return tf.tidy(() => {
      let y = x;
      for (let i = 0; i < this.spec.depth; i++) y = this.block(i).forward(y);
      return y;
    });
  }

  /** `[B, H, W, C]` feature maps as `H*W` tokens. */
  encode(images: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const [b, h, w, c] = images.shape;
      return tf.reshape(this.forward(tf.reshape(images, [b, h * w, c]) as tf.Tensor3D), [b, h, w, c]) as tf.Tensor4D;
    });
  }

  decode(): HeadOutput {
    throw new PeftError('the toy backbone has no segmentation head');
  }

  dispose(): void {
    this.model.dispose();
  }
}
