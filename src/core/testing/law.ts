// A law: a named property checked with fast-check over random cases, with
// shrinking; a failure reports the shrunk counterexample.
import fc from 'fast-check';

export interface LawParams {
  numRuns: number;
  seed?: number;
  /** Stop drawing new cases after this long (ms); what ran still counts. */
  timeLimitMs?: number;
}

/**
 * What a method's laws may be told (the core laws' and a plugin's own
 * `laws(options)`). Here rather than in method-laws.ts, which imports
 * registry/definitions.ts: definitions.ts needs this type, and the import back
 * would make a cycle.
 */
export interface MethodLawOptions {
  /** Raw configs to draw (validated by the method's schema). Default: drawn from the schema's keys. */
  configs?: fc.Arbitrary<Record<string, unknown>>;
  /** One fixed config instead of drawn ones (e.g. from `peft verify --config`). */
  config?: Record<string, unknown>;
  /** Whether a (validated) config promises adapted == base at init. Default: unless `zero_init` or `identity_at_init` is false. */
  promisesIdentity?: (config: Record<string, unknown>) => boolean;
  /** Relative tolerance of merged vs unmerged outputs (default 1e-4). */
  mergeTolerance?: number;
}

export interface LawResult {
  ok: boolean;
  /** Why the law did not apply (e.g. the method declares no merge). */
  skipped?: string;
  /** The shrunk failing case, as fast-check prints it. */
  counterexample?: string;
  error?: string;
  /** Cases that exercised the law. */
  runs?: number;
}

export interface Law {
  name: string;
  run(params: LawParams): Promise<LawResult>;
}

/** Thrown by a law's body when the property does not hold. */
export class LawViolation extends Error {
  override name = 'LawViolation';
}

export function violation(message: string): never {
  throw new LawViolation(message);
}

/** Counts, per law run, the cases that exercised the law, those where it did not apply, and rejected draws. */
export class LawTally {
  ran = 0;
  vacuous = 0;
  lastVacuous?: string;
  rejected = 0;
  lastRejection?: string;

  /** The case is not one the law applies to: passes vacuously. */
  notApplicable(reason: string): void {
    this.vacuous++;
    this.lastVacuous = reason;
  }

  /** The drawn case is invalid (e.g. a config the method refuses): fast-check draws another. */
  reject(reason: string): never {
    this.rejected++;
    this.lastRejection = reason;
    fc.pre(false);
    throw new Error('unreachable');
  }
}

/**
 * Checks `body` on cases drawn from `arb`. The body throws (a LawViolation or
 * any error) when the law fails, calls `tally.reject` for invalid draws and
 * `tally.notApplicable` when the law does not apply, else `tally.ran++`.
 * `examples` are checked first, within `numRuns` (the core laws put the
 * method's default config there, so it is always one of the cases).
 */
export async function checkLaw<T>(
  arb: fc.Arbitrary<T>,
  body: (c: T, tally: LawTally) => Promise<void> | void,
  params: LawParams,
  examples: T[] = [],
): Promise<LawResult> {
  const tally = new LawTally();
  const details = await fc.check(
    fc.asyncProperty(arb, async (c) => {
      await body(c, tally);
    }),
    {
      numRuns: params.numRuns,
      seed: params.seed,
      interruptAfterTimeLimit: params.timeLimitMs,
      markInterruptAsFailure: false,
      examples: examples.map((e): [T] => [e]),
    },
  );
  if (details.failed) {
    if (details.counterexample === null) {
      return {
        ok: false,
        error: details.interrupted
          ? 'interrupted'
          : `every drawn case was rejected${tally.lastRejection ? ` (last: ${tally.lastRejection})` : ''}`,
      };
    }
    const err = details.errorInstance;
    return {
      ok: false,
      counterexample: fc.stringify(details.counterexample[0]),
      error: err instanceof Error ? err.message : String(err),
      runs: details.numRuns,
    };
  }
  if (tally.ran === 0 && tally.vacuous > 0) return { ok: true, skipped: tally.lastVacuous, runs: 0 };
  return { ok: true, runs: tally.ran };
}
