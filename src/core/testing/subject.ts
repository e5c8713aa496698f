// What the laws act on: a toy backbone of a drawn shape with a method (of a
// drawn config) composed into it, plus tensor helpers (bitwise snapshots,
// seeded random values, one training step).
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { PeftError } from '../errors.js';
import { valueAndGrads } from '../nn/grad.js';
import type { Module } from '../nn/module.js';
import { compose, type PeftModel } from '../peft/compose.js';
import type { LayerInjector } from '../peft/layer-injector.js';
import { parseConfig } from '../registry/config.js';
import type { MethodDefinition } from '../registry/definitions.js';
import type { LawTally } from './law.js';
import { ToyBackbone, type ToySpec } from './toy-backbone.js';

export interface ToyShape extends ToySpec {
  batch: number;
  tokens: number;
}

/** Toy shapes: 1-3 blocks, width 4-10, MLP width 4-12, 1-2 images of 1-4 tokens. */
export const toyShape: fc.Arbitrary<ToyShape> = fc.record({
  seed: fc.integer({ min: 0, max: 0xffff }),
  depth: fc.integer({ min: 1, max: 3 }),
  dim: fc.integer({ min: 4, max: 10 }),
  hidden: fc.integer({ min: 4, max: 12 }),
  batch: fc.integer({ min: 1, max: 2 }),
  tokens: fc.integer({ min: 1, max: 4 }),
});

/** A seed for the `i`-th draw of a case. */
export function subSeed(seed: number, ...parts: number[]): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  for (const p of parts) h = (Math.imul(h ^ (p + 0x7f4a7c15), 0x85ebca6b) + 0xc2b2ae35) >>> 0;
  return h;
}

export function randomTensor(shape: number[], seed: number, lo = -1, hi = 1): tf.Tensor {
  return tf.randomUniform(shape, lo, hi, 'float32', seed);
}

/** A toy backbone, a method built from a (validated) config, and an input. */
export class Subject {
  readonly toy: ToyBackbone;
  readonly method: LayerInjector;
  readonly x: tf.Tensor3D;
  peft?: PeftModel;

  private constructor(
    readonly shape: ToyShape,
    readonly config: Record<string, unknown>,
    method: LayerInjector,
  ) {
    this.toy = new ToyBackbone(shape);
    this.method = method;
    this.x = randomTensor([shape.batch, shape.tokens, shape.dim], subSeed(shape.seed, 1)) as tf.Tensor3D;
  }

  /** Validates `raw` with the method's schema (an invalid draw is rejected) and builds the subject. */
  static create(def: MethodDefinition, shape: ToyShape, raw: Record<string, unknown>, tally: LawTally): Subject {
    let config: Record<string, unknown>;
    let method: LayerInjector;
    try {
      config = parseConfig(def.schema, raw, `method '${def.id}'`) as Record<string, unknown>;
      method = def.create(config);
    } catch (err) {
      if (err instanceof PeftError) tally.reject(err.message);
      throw err;
    }
    return new Subject(shape, config, method);
  }

  get model(): Module {
    return this.toy.model;
  }

  /** Freezes the toy and injects the method (compose); a PeftError rejects the draw (the caller still disposes). */
  compose(tally: LawTally): PeftModel {
    try {
      this.peft = compose(this.toy, this.method, { trainDecoder: false });
    } catch (err) {
      if (err instanceof PeftError) tally.reject(err.message);
      throw err;
    }
    return this.peft;
  }

  /** The model's output in eval mode. */
  forward(): tf.Tensor3D {
    this.model.eval();
    return this.toy.forward(this.x);
  }

  dispose(): void {
    this.x.dispose();
    this.toy.dispose();
    (this.method as { dispose?: () => void }).dispose?.();
  }
}

/** Every parameter's and buffer's bytes, by name (copies). */
export function snapshot(model: Module): Map<string, { shape: number[]; bytes: Uint8Array }> {
  const out = new Map<string, { shape: number[]; bytes: Uint8Array }>();
  for (const [name, p] of model.namedTensors()) {
    const d = p.variable.dataSync() as Float32Array | Int32Array;
    out.set(name, { shape: [...p.shape], bytes: new Uint8Array(d.buffer.slice(d.byteOffset, d.byteOffset + d.byteLength)) });
  }
  return out;
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Names whose value (or shape) differs between two snapshots; `only` filters names. */
export function changedTensors(
  before: ReturnType<typeof snapshot>,
  after: ReturnType<typeof snapshot>,
  only: (name: string) => boolean = () => true,
): string[] {
  const out: string[] = [];
  for (const [name, b] of before) {
    if (!only(name)) continue;
    const a = after.get(name);
    if (!a || a.shape.join(',') !== b.shape.join(',') || !sameBytes(a.bytes, b.bytes)) out.push(name);
  }
  return out;
}

/** Largest |a - b| (Infinity on shape mismatch or NaN). */
export function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  if (a.shape.join(',') !== b.shape.join(',')) return Infinity;
  const x = a.dataSync();
  const y = b.dataSync();
  let m = 0;
  for (let i = 0; i < x.length; i++) {
    const d = Math.abs(x[i]! - y[i]!);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

export function maxAbs(a: tf.Tensor): number {
  let m = 0;
  for (const v of a.dataSync() as Float32Array) m = Math.max(m, Math.abs(v));
  return m;
}

/** Bitwise equality of two tensors' values. */
export function sameValues(a: tf.Tensor, b: tf.Tensor): boolean {
  if (a.shape.join(',') !== b.shape.join(',')) return false;
  const x = a.dataSync() as Float32Array;
  const y = b.dataSync() as Float32Array;
  return sameBytes(new Uint8Array(x.buffer, x.byteOffset, x.byteLength), new Uint8Array(y.buffer, y.byteOffset, y.byteLength));
}

/** Sets the named parameters to seeded uniform values in [-scale, scale]. */
export function randomiseParameters(model: Module, names: Iterable<string>, seed: number, scale = 0.5): void {
  const all = new Map(model.namedParameters());
  let i = 0;
  for (const name of names) {
    const p = all.get(name);
    i++;
    if (!p || p.size === 0) continue;
    tf.tidy(() => p.assign(randomTensor(p.shape, subSeed(seed, 17, i), -scale, scale)));
  }
}

/**
 * One optimiser step as a trainer takes it: loss = sum(y * upstream) (+ the
 * method's regulariser), gradients of the trainable parameters, plain SGD,
 * then the method's `afterStep` with the global step.
 */
export function trainStep(subject: Subject, upstream: tf.Tensor, step: number, lr = 0.05): void {
  const { model, method } = subject;
  model.train();
  const named = model.trainableParameters();
  const { value, grads } = valueAndGrads(
    () =>
      tf.tidy(() => {
        const y = subject.toy.forward(subject.x);
        const loss = tf.sum(tf.mul(y, upstream)) as tf.Scalar;
        return method.regulariser ? (tf.add(loss, method.regulariser(model)) as tf.Scalar) : loss;
      }),
    named.map(([, p]) => p.variable),
  );
  value.dispose();
  tf.tidy(() => named.forEach(([, p], i) => p.assign(tf.sub(p.variable, tf.mul(grads[i]!, lr)))));
  try {
    method.afterStep?.({ step, model, grads: new Map(named.map(([k], i) => [k, grads[i]!])) });
  } finally {
    for (const g of grads) g.dispose();
  }
}
