// core sensitivityEma, whichever form runs (the native kernel where it is on,
// else the composite): every element as the float32 formula with one rounding
// per operation (scalars rounded from double), zeros for a missing previous
// average, the inputs left alone, no tensors left behind. The native kernel's
// bit-identity to the composite form is tested in
// src/accel/native/sensitivity-ema.test.ts.
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { fusedKernelActive, PEFT_SENSITIVITY_EMA } from '../../accel/native/fused-names.js';
import { built, without } from '../../../test/support/native.js';
import { seededValues } from '../../../test/support/reference-math.js';
import { sensitivityEma } from './sensitivity-ema.js';

const f = Math.fround;

/** The formula per element in float32 (Math.fround after every operation). */
function reference(p: Float32Array, g: Float32Array, ema0: Float32Array | undefined, unc0: Float32Array | undefined, b1: number, b2: number): [Float32Array, Float32Array] {
  const ema = new Float32Array(p.length);
  const unc = new Float32Array(p.length);
  for (let i = 0; i < p.length; i++) {
    const s = Math.abs(f(p[i]! * g[i]!));
    ema[i] = f(f((ema0?.[i] ?? 0) * f(b1)) + f(s * f(1 - b1)));
    unc[i] = f(f((unc0?.[i] ?? 0) * f(b2)) + f(Math.abs(f(s - ema[i]!)) * f(1 - b2)));
  }
  return [ema, unc];
}

const forms: [string, <T>(fn: () => T) => T][] = [
  ['active form', (fn) => fn()],
  ['composite form', (fn) => (built ? without(fn) : fn())],
];

describe.each(forms)('sensitivityEma (%s)', (label, run) => {
  it('is the float32 formula, one rounding per operation (first and later updates)', () => {
    const r = seededValues(41);
    const n = 4 * 192;
    const fill = (scale: number) => Float32Array.from({ length: n }, () => r(-1, 1) * scale);
    const [p, g, e0, u0] = [fill(1), fill(1e-2), fill(1e-2).map(Math.abs), fill(1e-3).map(Math.abs)];
    for (const [b1, b2] of [
      [0.85, 0.85],
      [0.9, 0.999],
      [f(0.3), 0.7],
    ]) {
      for (const first of [true, false]) {
        const [want, wantU] = reference(p, g, first ? undefined : e0, first ? undefined : u0, b1!, b2!);
        const got = run(() =>
          tf.tidy(() => {
            const out = sensitivityEma(tf.tensor(p, [4, 192]), tf.tensor(g, [4, 192]), first ? undefined : tf.tensor(e0, [4, 192]), first ? undefined : tf.tensor(u0, [4, 192]), b1!, b2!);
            return [out.ema.dataSync().slice(), out.unc.dataSync().slice()];
          }),
        );
        expect([...got[0]!], `${label} ema ${b1} ${b2} ${first}`).toEqual([...want]);
        expect([...got[1]!], `${label} unc ${b1} ${b2} ${first}`).toEqual([...wantU]);
      }
    }
  });

  it('leaves its inputs alone and no tensors behind', () => {
    run(() => {
      const p = tf.tensor([1, -2, 3, 0.5], [4, 1]);
      const g = tf.tensor([0.5, 0.25, -1, 2], [4, 1]);
      const first = sensitivityEma(p, g, undefined, undefined, 0.85, 0.85);
      const before = tf.memory().numTensors;
      for (let i = 0; i < 3; i++) {
        const next = sensitivityEma(p, g, first.ema, first.unc, 0.85, 0.85);
        tf.dispose([next.ema, next.unc]);
      }
      expect(tf.memory().numTensors).toBe(before);
      expect([...first.ema.dataSync()]).toEqual([...reference(p.dataSync() as Float32Array, g.dataSync() as Float32Array, undefined, undefined, 0.85, 0.85)[0]]);
      expect(p.isDisposed || g.isDisposed || first.ema.isDisposed || first.unc.isDisposed).toBe(false);
      tf.dispose([p, g, first.ema, first.unc]);
    });
  });

  it(`runs ${built ? 'the native kernel where it is on' : 'the composite form (addon not built)'}`, () => {
    expect(run(() => fusedKernelActive(PEFT_SENSITIVITY_EMA))).toBe(built && label === 'active form');
  });
});
