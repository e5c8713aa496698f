// Runs every fixture in a directory against its registered kind and compares
// each expected tensor with the fixture's tolerance.
import * as tf from '@tensorflow/tfjs';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { PeftError, errorReason } from '../errors.js';
import type { Registry } from '../registry/registry.js';
import { compareArrays } from './compare.js';
import { Fixture } from './fixture.js';

export interface TensorResult {
  key: string;
  ok: boolean;
  maxAbs: number;
  note?: string;
}

export interface FixtureResult {
  name: string;
  kind: string;
  ok: boolean;
  maxAbs: number;
  checks: TensorResult[];
  error?: string;
  ms: number;
}

export function fixtureFiles(dir: string): string[] {
  let names: string[];
  try {
    if (!statSync(dir).isDirectory()) throw new PeftError(`${dir}: not a directory`);
    names = readdirSync(dir);
  } catch (err) {
    if (err instanceof PeftError) throw err;
    throw new PeftError(`${dir}: cannot read fixture directory (${errorReason(err)})`);
  }
  return names.filter((n) => n.endsWith('.json')).sort().map((n) => join(dir, n));
}

export async function runFixture(path: string, registry: Registry): Promise<FixtureResult> {
  const start = performance.now();
  let fixture: Fixture;
  try {
    fixture = new Fixture(path);
  } catch (err) {
    return { name: path, kind: '?', ok: false, maxAbs: NaN, checks: [], error: (err as Error).message, ms: 0 };
  }
  const base = { name: fixture.name, kind: fixture.kind };
  const kind = registry.parityKind(fixture.kind);
  if (!kind) {
    const known = registry.parityKinds().map((k) => k.kind).sort().join(', ');
    return { ...base, ok: false, maxAbs: NaN, checks: [], error: `unknown kind '${fixture.kind}' (known: ${known})`, ms: 0 };
  }
  const { atol, rtol } = fixture.json;
  const checks: TensorResult[] = [];
  tf.engine().startScope();
  try {
    const out = await kind.run(fixture, { registry });
    for (const key of fixture.expectedKeys()) {
      const actual = out.tensors.get(key);
      if (!actual) {
        checks.push({ key, ok: false, maxAbs: NaN, note: 'not produced' });
        continue;
      }
      const exp = fixture.tensor(key);
      if (actual.shape.join(',') !== exp.shape.join(',')) {
        checks.push({ key, ok: false, maxAbs: NaN, note: `shape [${actual.shape}] expected [${exp.shape}]` });
        continue;
      }
      const r = compareArrays(await actual.data(), await exp.data(), atol, rtol);
      checks.push({ key, ok: r.ok, maxAbs: r.maxAbs });
    }
    for (const s of out.scalars ?? []) {
      let ok: boolean;
      let maxAbs = 0;
      if (s.expected === null || s.actual === null) ok = s.expected === s.actual;
      else {
        maxAbs = Math.abs(s.actual - s.expected);
        ok = maxAbs <= atol + rtol * Math.abs(s.expected);
      }
      checks.push({ key: s.name, ok, maxAbs, note: ok ? undefined : `got ${s.actual}, expected ${s.expected}` });
    }
  } catch (err) {
    return { ...base, ok: false, maxAbs: NaN, checks, error: (err as Error).message.split('\n')[0], ms: performance.now() - start };
  } finally {
    tf.engine().endScope();
  }
  const maxAbs = checks.reduce((m, c) => Math.max(m, Number.isNaN(c.maxAbs) ? Infinity : c.maxAbs), 0);
  const ok = checks.length > 0 && checks.every((c) => c.ok);
  return { ...base, ok, maxAbs, checks, error: checks.length === 0 ? 'fixture holds nothing to compare' : undefined, ms: performance.now() - start };
}

export async function runParity(dir: string, registry: Registry): Promise<FixtureResult[]> {
  const results: FixtureResult[] = [];
  for (const f of fixtureFiles(dir)) results.push(await runFixture(f, registry));
  return results;
}
