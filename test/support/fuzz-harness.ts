// The shared harness of the parser fuzz tests: mutations of valid files
// (truncation, bit flips, lying lengths and offsets, spliced garbage), and the
// one check every case must pass: the parser either accepts the bytes or
// throws a PeftError whose one-line message names the file; it never throws
// anything else, never runs longer than a deadline (a synchronous hang is
// interrupted through `vm`'s watchdog, which terminates whatever JavaScript
// is running), and never keeps more memory than the input's size justifies.
//
// Budget: PEFT_FUZZ_RUNS (cases per property; default: the test's own, a few
// hundred). With PEFT_RELIABILITY_STATS=<file>, every property appends one
// JSON line {suite, property, runs, passed, failed, seconds, ...} to it
// (`npm run reliability` collects these for docs/reliability.md).
import fc from 'fast-check';
import { appendFileSync } from 'node:fs';
import vm from 'node:vm';
import { expect } from 'vitest';
import { PeftError } from '../../src/core/errors.js';

/** Cases per property: the env budget, else the test's default. */
export function runs(defaultRuns: number): number {
  const env = Number(process.env.PEFT_FUZZ_RUNS);
  return Number.isInteger(env) && env > 0 ? env : defaultRuns;
}

/** Deadline of one case (a parse of a small file takes well under this). */
export const CASE_DEADLINE_MS = Number(process.env.PEFT_FUZZ_DEADLINE_MS) || 5000;

const watchdog = vm.createContext({ call: undefined as undefined | (() => unknown) });

/** Runs `f` synchronously; throws a `HangError` if it runs longer than `ms`. */
export function withDeadline<T>(f: () => T, ms = CASE_DEADLINE_MS): T {
  watchdog.call = f;
  try {
    return vm.runInContext('call()', watchdog, { timeout: ms }) as T;
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') throw new HangError(ms);
    throw err;
  } finally {
    watchdog.call = undefined;
  }
}

/** Runs async `f`; rejects with a `HangError` after `ms`. */
export async function withAsyncDeadline<T>(f: () => Promise<T>, ms = CASE_DEADLINE_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      f(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new HangError(ms)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export class HangError extends Error {
  constructor(ms: number) {
    super(`no answer within ${ms} ms (a hang)`);
  }
}

export type Outcome = { ok: true; value: unknown } | { ok: false; error: PeftError };

/** Longest acceptable error message (one clear line, not a dump). */
export const MAX_MESSAGE = 400;

/**
 * The contract of a hostile-input case: the outcome of `run`, which must be a
 * value or a PeftError naming `file` in one short line. Anything else fails
 * the test with a description of what went wrong.
 */
export function classify(err: unknown, file: string): PeftError {
  if (err instanceof HangError) throw new Error(`hang: ${err.message}`);
  if (!(err instanceof PeftError)) {
    const e = err as Error;
    throw new Error(`untyped error (a crash): ${e?.name}: ${String(e?.message ?? e).slice(0, 300)}\n${e?.stack ?? ''}`);
  }
  const m = err.message;
  if (!m.includes(file)) throw new Error(`the message does not name the file ${file}: ${m.slice(0, 300)}`);
  if (m.includes('\n')) throw new Error(`the message is not one line: ${JSON.stringify(m.slice(0, 300))}`);
  // file paths are the user's own and stay whole; the rest must be short
  const prose = m.split(file).join('<file>').replace(/\/[^\s:'"()]+/g, '<path>');
  if (prose.length > MAX_MESSAGE) throw new Error(`the message is ${prose.length} characters long (paths aside): ${m.slice(0, 300)}…`);
  return err;
}

function retained(): number {
  const m = process.memoryUsage();
  return m.arrayBuffers + m.heapUsed;
}

export interface CaseOptions {
  /** Bytes the case may keep alive beyond its input (default 64 x input + 16 MB). */
  allowance?: number;
  deadlineMs?: number;
}

/** Runs one synchronous case under the deadline and checks the contract and the memory kept. */
export function hostileCase(file: string, inputBytes: number, run: () => unknown, options: CaseOptions = {}): Outcome {
  const before = retained();
  let outcome: Outcome;
  try {
    outcome = { ok: true, value: withDeadline(run, options.deadlineMs) };
  } catch (err) {
    outcome = { ok: false, error: classify(err, file) };
  }
  const grown = retained() - before;
  const allowance = options.allowance ?? 64 * inputBytes + 16 * 2 ** 20;
  if (grown > allowance) throw new Error(`kept ${grown} bytes after a ${inputBytes}-byte input (allowance ${allowance})`);
  return outcome;
}

/** The async twin of `hostileCase` (file-system loaders). */
export async function hostileCaseAsync(file: string, run: () => Promise<unknown>, options: CaseOptions = {}): Promise<Outcome> {
  try {
    return { ok: true, value: await withAsyncDeadline(run, options.deadlineMs) };
  } catch (err) {
    return { ok: false, error: classify(err, file) };
  }
}

// ---------------------------------------------------------------------------
// Mutations of valid files

export type Mutation =
  | { kind: 'truncate'; at: number }
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'byte'; at: number; value: number }
  | { kind: 'int'; at: number; width: 2 | 4 | 8; littleEndian: boolean; value: bigint }
  | { kind: 'insert'; at: number; bytes: number[] }
  | { kind: 'delete'; at: number; length: number }
  | { kind: 'append'; bytes: number[] }
  | { kind: 'duplicate'; at: number; length: number };

/** Values that lie: zero, all ones, sign boundaries, near the input's size. */
const interestingInts = fc.oneof(
  fc.constantFrom(0n, 1n, 0x7fn, 0x80n, 0xffn, 0x7fffn, 0x8000n, 0xffffn, 0x7fffffffn, 0x80000000n, 0xffffffffn, 2n ** 53n, 2n ** 63n - 1n, 2n ** 64n - 1n),
  fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  fc.bigInt({ min: 0n, max: 4096n }),
);

/** Positions are fractions of the length (the file is chosen later). */
const pos = fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true });

export const mutationArb: fc.Arbitrary<{ kind: Mutation['kind']; p: number; extra: unknown }> = fc.oneof(
  fc.record({ kind: fc.constant('truncate' as const), p: pos, extra: fc.constant(null) }),
  fc.record({ kind: fc.constant('flip' as const), p: pos, extra: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('byte' as const), p: pos, extra: fc.constantFrom(0, 0xff, 0x7f, 0x80, 0x2e, 0x22, 0x5c, 0x0a, 0x7b, 0x7d) }),
  fc.record({
    kind: fc.constant('int' as const),
    p: pos,
    extra: fc.record({ width: fc.constantFrom(2 as const, 4 as const, 8 as const), littleEndian: fc.boolean(), value: interestingInts }),
  }),
  fc.record({ kind: fc.constant('insert' as const), p: pos, extra: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 16 }) }),
  fc.record({ kind: fc.constant('delete' as const), p: pos, extra: fc.integer({ min: 1, max: 64 }) }),
  fc.record({ kind: fc.constant('append' as const), p: pos, extra: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 64 }) }),
  fc.record({ kind: fc.constant('duplicate' as const), p: pos, extra: fc.integer({ min: 1, max: 256 }) }),
);

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Applies one mutation (positions scaled to the buffer) and returns a new buffer. */
export function mutate(input: Uint8Array, m: { kind: Mutation['kind']; p: number; extra: unknown }): Uint8Array {
  // a copy: a Buffer's slice() is a view, and seeds must never change
  const buf = new Uint8Array(input);
  const at = Math.floor(m.p * buf.length);
  switch (m.kind) {
    case 'truncate':
      return buf.slice(0, at);
    case 'flip': {
      const out = buf.slice();
      if (out.length) out[at]! ^= 1 << (m.extra as number);
      return out;
    }
    case 'byte': {
      const out = buf.slice();
      if (out.length) out[at] = m.extra as number;
      return out;
    }
    case 'int': {
      const { width, littleEndian, value } = m.extra as { width: 2 | 4 | 8; littleEndian: boolean; value: bigint };
      const out = buf.slice();
      if (at + width > out.length) return out;
      const dv = new DataView(out.buffer);
      const v = value & ((1n << BigInt(width * 8)) - 1n);
      if (width === 2) dv.setUint16(at, Number(v), littleEndian);
      else if (width === 4) dv.setUint32(at, Number(v), littleEndian);
      else dv.setBigUint64(at, v, littleEndian);
      return out;
    }
    case 'insert':
      return concat(buf.subarray(0, at), Uint8Array.from(m.extra as number[]), buf.subarray(at));
    case 'delete':
      return concat(buf.subarray(0, at), buf.subarray(at + (m.extra as number)));
    case 'append':
      return concat(buf, Uint8Array.from(m.extra as number[]));
    case 'duplicate':
      return concat(buf.subarray(0, at + (m.extra as number)), buf.subarray(at));
  }
}

/** 1 to `max` mutations of one of the seeds. */
export function mutatedArb(seeds: Uint8Array[], max = 3): fc.Arbitrary<Uint8Array> {
  return fc
    .tuple(fc.integer({ min: 0, max: seeds.length - 1 }), fc.array(mutationArb, { minLength: 1, maxLength: max }))
    .map(([i, ms]) => ms.reduce((b, m) => mutate(b, m), seeds[i]!));
}

// ---------------------------------------------------------------------------
// Counting, for the figures in docs/reliability.md

export interface PropertyStats {
  suite: string;
  property: string;
  runs: number;
  accepted: number;
  rejected: number;
  failed: number;
  seconds: number;
  maxCaseMs: number;
  counterexample?: string;
}

/**
 * `fc.assert` over `arb` with a case counter: `check` returns 'accepted' or
 * 'rejected' (a typed error) or throws (a failure). Appends the figures to
 * $PEFT_RELIABILITY_STATS when set.
 */
export function fuzz<T>(suite: string, property: string, arb: fc.Arbitrary<T>, check: (v: T) => 'accepted' | 'rejected', numRuns: number): PropertyStats {
  const stats: PropertyStats = { suite, property, runs: 0, accepted: 0, rejected: 0, failed: 0, seconds: 0, maxCaseMs: 0 };
  const started = performance.now();
  try {
    fc.assert(
      fc.property(arb, (v) => {
        stats.runs++;
        const t0 = performance.now();
        try {
          stats[check(v)]++;
        } catch (err) {
          stats.failed++;
          throw err;
        } finally {
          stats.maxCaseMs = Math.max(stats.maxCaseMs, performance.now() - t0);
        }
      }),
      { numRuns, seed: seedFromEnv(), endOnFailure: true },
    );
  } catch (err) {
    stats.counterexample = (err as Error).message.split('\n').slice(0, 6).join(' | ').slice(0, 600);
    throw err;
  } finally {
    stats.seconds = (performance.now() - started) / 1000;
    record(stats);
  }
  expect(stats.failed).toBe(0);
  return stats;
}

/** The async twin of `fuzz`. */
export async function fuzzAsync<T>(
  suite: string,
  property: string,
  arb: fc.Arbitrary<T>,
  check: (v: T) => Promise<'accepted' | 'rejected'>,
  numRuns: number,
): Promise<PropertyStats> {
  const stats: PropertyStats = { suite, property, runs: 0, accepted: 0, rejected: 0, failed: 0, seconds: 0, maxCaseMs: 0 };
  const started = performance.now();
  try {
    await fc.assert(
      fc.asyncProperty(arb, async (v) => {
        stats.runs++;
        const t0 = performance.now();
        try {
          stats[await check(v)]++;
        } catch (err) {
          stats.failed++;
          throw err;
        } finally {
          stats.maxCaseMs = Math.max(stats.maxCaseMs, performance.now() - t0);
        }
      }),
      { numRuns, seed: seedFromEnv(), endOnFailure: true },
    );
  } catch (err) {
    stats.counterexample = (err as Error).message.split('\n').slice(0, 6).join(' | ').slice(0, 600);
    throw err;
  } finally {
    stats.seconds = (performance.now() - started) / 1000;
    record(stats);
  }
  return stats;
}

/** Deterministic table cases (hand-written hostile inputs, scenarios) counted like a property. */
export function recordTable(suite: string, property: string, results: ('accepted' | 'rejected' | 'failed')[], seconds: number): void {
  record({
    suite,
    property,
    runs: results.length,
    accepted: results.filter((r) => r === 'accepted').length,
    rejected: results.filter((r) => r === 'rejected').length,
    failed: results.filter((r) => r === 'failed').length,
    seconds,
    maxCaseMs: 0,
  });
}

function seedFromEnv(): number | undefined {
  const s = Number(process.env.PEFT_FUZZ_SEED);
  return Number.isInteger(s) ? s : undefined;
}

export function record(stats: PropertyStats): void {
  const file = process.env.PEFT_RELIABILITY_STATS;
  if (file) appendFileSync(file, `${JSON.stringify(stats)}\n`);
}

/** 'accepted' or 'rejected' for an outcome. */
export function verdict(o: Outcome): 'accepted' | 'rejected' {
  return o.ok ? 'accepted' : 'rejected';
}
