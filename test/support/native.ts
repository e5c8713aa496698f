// Shared by the native kernel tests: whether the addon is built (and why
// not), the composite reference (native kernels off), and a float32 comparison.
import * as tf from '@tensorflow/tfjs';
import { expect } from 'vitest';
import { loadAddon } from '../../src/accel/native/addon.js';
import { nativeDisabledByEnv, setNativeKernelsEnabled } from '../../src/accel/native/index.js';

export const load = loadAddon();
export const built = Boolean(load.addon) && !nativeDisabledByEnv();
export const whyNotBuilt = nativeDisabledByEnv() ? 'PEFT_NATIVE=0' : load.addon ? '' : (load as { reason: string }).reason;
export const RUNS = Number(process.env.PEFT_PROPERTY_RUNS ?? 25);

/** Under CI, a machine with OpenBLAS installed must have built the addon. */
export function expectBuiltWhereOpenBlasIs(): void {
  const openblas = load.addon ? true : (load as { openblasInstalled: boolean }).openblasInstalled;
  if (openblas) expect(load.addon, `libopenblas-dev is installed but the addon did not build: ${whyNotBuilt}`).toBeDefined();
}

/** Runs `f` with the native kernels of the active backend off, then puts them back. */
export function without<T>(f: () => T): T {
  const backend = tf.getBackend();
  setNativeKernelsEnabled(false, backend);
  try {
    return f();
  } finally {
    setNativeKernelsEnabled(true, backend);
  }
}

/** |actual - expected| <= 2e-6 scale + 1e-6 + 1e-5 |expected|, and NaN exactly where expected is NaN. */
export function close(actual: tf.Tensor, expected: tf.Tensor, scale = 1, label = ''): void {
  expect(actual.shape, label).toEqual(expected.shape);
  const a = actual.dataSync();
  const e = expected.dataSync();
  let worst = 0;
  let at = -1;
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(e[i]!) || Number.isNaN(a[i]!)) {
      expect(Number.isNaN(a[i]!), `${label} NaN mismatch at ${i}: ${a[i]} vs ${e[i]}`).toBe(Number.isNaN(e[i]!));
      continue;
    }
    const d = Math.abs(a[i]! - e[i]!) - 1e-5 * Math.abs(e[i]!);
    if (d > worst) [worst, at] = [d, i];
  }
  expect(worst, `${label} worst at ${at}: ${a[at]} vs ${e[at]}`).toBeLessThanOrEqual(2e-6 * scale + 1e-6);
}

export function rand(shape: number[], seed: number, scale = 1): tf.Tensor {
  return tf.randomUniform(shape, -scale, scale, 'float32', seed);
}

/** The same bits at every index of each output (any NaN equals any NaN); `names` label the outputs. */
export function expectSameBits(got: Float32Array[], want: Float32Array[], label: string, names: string[] = []): void {
  expect(got.length).toBe(want.length);
  got.forEach((a, k) => {
    const b = want[k]!;
    expect(a.length, label).toBe(b.length);
    const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
    const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
    let first = -1;
    let count = 0;
    for (let i = 0; i < a.length; i++) {
      if (ua[i] !== ub[i] && !(Number.isNaN(a[i]!) && Number.isNaN(b[i]!))) {
        if (first < 0) first = i;
        count++;
      }
    }
    expect(count, `${label} output ${names[k] ?? k}: ${count} differ, first at ${first}: ${a[first]} vs ${b[first]}`).toBe(0);
  });
}
