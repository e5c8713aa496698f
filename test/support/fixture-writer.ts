// Writes a fixture pair (NAME.json + NAME.safetensors) in the reference
// fixtures' format, so tests can run the parity kinds on other shapes and
// configs than the shipped fixtures (expected values from an independent
// reference computation).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { serializeSafetensors, type TensorToWrite } from '../../src/core/io/safetensors.js';
import { makeDir } from '../../src/core/io/make-dir.js';

export interface FixtureArray {
  shape: number[];
  data: ArrayLike<number>;
}

/** Writes `dir/name.json` and `dir/name.safetensors` (all tensors F32); returns the json path. */
export function writeFixture(
  dir: string,
  name: string,
  json: { kind: string; config: Record<string, unknown>; atol?: number; rtol?: number; [extra: string]: unknown },
  tensors: Record<string, FixtureArray>,
): string {
  makeDir(dir);
  const entries = new Map<string, TensorToWrite>();
  for (const [key, t] of Object.entries(tensors)) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== n) throw new Error(`${key}: shape [${t.shape}] needs ${n} values, got ${t.data.length}`);
    entries.set(key, { dtype: 'F32', shape: t.shape, data: Float32Array.from(t.data) });
  }
  writeFileSync(join(dir, `${name}.safetensors`), serializeSafetensors(entries));
  const path = join(dir, `${name}.json`);
  writeFileSync(path, JSON.stringify({ atol: 1e-4, rtol: 1e-4, ...json }, null, 2));
  return path;
}
