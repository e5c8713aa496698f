// PyTorch's `nn.Embedding`: a learned table `weight [num, dim]`, initialised N(0, 1).
import type * as tf from '@tensorflow/tfjs';
import { Module } from './module.js';
import { normal } from './init.js';

export class Embedding extends Module {
  constructor(
    readonly num: number,
    readonly dim: number,
  ) {
    super();
    this.registerParameter('weight', normal([num, dim], 1));
  }

  /** The table `[num, dim]` (live: do not dispose). */
  get weight(): tf.Variable {
    return this.param('weight').variable;
  }
}
