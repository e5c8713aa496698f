import * as tf from '@tensorflow/tfjs';
import { Module } from '../nn/module.js';
import type { HookPoint } from './injection-site.js';

/** A module attached at a block's hook point. */
export interface BlockHook extends Module {
  forward(x: tf.Tensor): tf.Tensor;
}

export interface AttachedHook {
  name: string;
  module: BlockHook;
  /** Multiplies the hook's output (the reference scales its MLP adapter by 0.5). */
  scale: number;
}

/**
 * A transformer block that accepts PEFT hooks. The block calls its `post-attn`
 * hooks in order on the attention output (each returns the new output), and
 * adds `scale * hook(mlpInput)` of every `mlp-parallel` hook to the MLP's output.
 */
export class HookableBlock extends Module {
  readonly hooks: Record<HookPoint, AttachedHook[]> = { 'post-attn': [], 'mlp-parallel': [] };

  /** Registers `module` as child `name` (its parameters get `<block>.<name>.*` names) and hooks it in. */
  attachHook(point: HookPoint, name: string, module: BlockHook, scale = 1): void {
    this.registerModule(name, module);
    this.hooks[point].push({ name, module, scale });
  }

  /** Applies the `post-attn` hooks to an attention output. */
  protected postAttn(x: tf.Tensor): tf.Tensor {
    let y = x;
    for (const h of this.hooks['post-attn']) {
      const out = h.module.forward(y);
      y = h.scale === 1 ? out : tf.mul(out, h.scale);
    }
    return y;
  }

  /** `mlpOut` plus `scale * hook(x)` for every `mlp-parallel` hook (`x` is the MLP's input). */
  protected mlpParallel(x: tf.Tensor, mlpOut: tf.Tensor): tf.Tensor {
    let y = mlpOut;
    for (const h of this.hooks['mlp-parallel']) {
      const out = h.module.forward(x);
      y = tf.add(y, h.scale === 1 ? out : tf.mul(out, h.scale));
    }
    return y;
  }
}
