// Seeded initialisers matching PyTorch's defaults. Every draw takes the next
// seed from one counter, so `seedEverything(k)` makes model construction
// deterministic.
import * as tf from '@tensorflow/tfjs';

let counter = 0x5eed;

export function seedEverything(seed: number): void {
  counter = seed >>> 0;
}

export function nextSeed(): number {
  counter = (Math.imul(counter ^ (counter >>> 15), 0x2c1b3c6d) + 0x9e3779b9) >>> 0;
  return counter;
}

export function uniform(shape: number[], bound: number): tf.Tensor {
  return tf.randomUniform(shape, -bound, bound, 'float32', nextSeed());
}

export function normal(shape: number[], std: number, mean = 0): tf.Tensor {
  return tf.randomNormal(shape, mean, std, 'float32', nextSeed());
}

/** PyTorch's `kaiming_uniform_(w, a=sqrt(5))`: U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
export function kaimingUniform(shape: number[], fanIn: number): tf.Tensor {
  return uniform(shape, 1 / Math.sqrt(fanIn));
}
