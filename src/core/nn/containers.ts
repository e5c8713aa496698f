// PyTorch's `nn.ModuleList` and `nn.Sequential`: children named '0', '1', ...
// so state-dict keys read `layers.0.weight`, `output_upscaling.3.bias`.
import * as tf from '@tensorflow/tfjs';
import { Module } from './module.js';

/** A module that maps one tensor to one tensor (a layer, an activation). */
export interface TensorMap extends Module {
  forward(x: tf.Tensor): tf.Tensor;
}

/** An indexed list of child modules (`nn.ModuleList`). */
export class ModuleList<M extends Module = Module> extends Module {
  private count = 0;

  constructor(items: M[] = []) {
    super();
    for (const m of items) this.push(m);
  }

  push(m: M): M {
    return this.registerModule(String(this.count++), m);
  }

  get length(): number {
    return this.count;
  }

  /** The i-th child, looked up now (a PEFT wrapper may have replaced it). */
  at(i: number): M {
    const m = this.child(String(i));
    if (!m) throw new Error(`ModuleList has no item ${i}`);
    return m as M;
  }

  *[Symbol.iterator](): Iterator<M> {
    for (let i = 0; i < this.count; i++) yield this.at(i);
  }
}

/** `nn.Identity`: keeps an index in a Sequential, holds nothing. */
export class Identity extends Module implements TensorMap {
  forward(x: tf.Tensor): tf.Tensor {
    return x;
  }
}

/** Children applied in order (`nn.Sequential`); each is looked up at forward time. */
export class Sequential extends ModuleList<TensorMap> {
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      let y = x;
      for (let i = 0; i < this.length; i++) y = this.at(i).forward(y);
      return y;
    });
  }
}
