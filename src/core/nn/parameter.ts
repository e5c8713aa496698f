import * as tf from '@tensorflow/tfjs';

export interface ParameterOptions {
  /** Whether an optimiser may update it. Buffers are never trainable. */
  trainable?: boolean;
  /** A buffer is state, not a weight (batch-norm statistics, AdaLoRA's ranknum). */
  buffer?: boolean;
  /** A buffer whose absence from a loaded state dict is not an error (PyTorch's `num_batches_tracked`). */
  optional?: boolean;
}

/** A named tensor of a module: a `tf.Variable` plus its role. */
export class Parameter {
  readonly variable: tf.Variable;
  readonly buffer: boolean;
  readonly optional: boolean;
  private trainableFlag: boolean;

  constructor(value: tf.Tensor, options: ParameterOptions = {}) {
    this.buffer = options.buffer ?? false;
    this.optional = options.optional ?? false;
    this.trainableFlag = this.buffer ? false : (options.trainable ?? true);
    this.variable = tf.variable(value, this.trainableFlag);
  }

  get trainable(): boolean {
    return this.trainableFlag;
  }

  set trainable(on: boolean) {
    if (this.buffer && on) throw new Error('a buffer cannot be trainable');
    this.trainableFlag = on;
    this.variable.trainable = on;
  }

  get shape(): number[] {
    return this.variable.shape;
  }

  get size(): number {
    return this.variable.size;
  }

  get dtype(): tf.DataType {
    return this.variable.dtype;
  }

  /** Replaces the value (same shape and dtype). Does not dispose `value`. */
  assign(value: tf.Tensor): void {
    // assigning a variable to itself would free its data first
    if (value === this.variable || value.dataId === this.variable.dataId) return;
    this.variable.assign(value);
  }

  dispose(): void {
    this.variable.dispose();
  }
}
