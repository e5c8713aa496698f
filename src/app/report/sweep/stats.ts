// Numbers over seeds: mean, sample standard deviation (n - 1), range. Plain
// loops, never Math.max(...values): a curve can have hundreds of thousands
// of points, more arguments than a call may take.

/** One metric of a group over its finished seeds. */
export interface SeedStat {
  /** Mean over the seeds that have a value (null when none has). */
  mean: number | null;
  /** Sample standard deviation (n - 1); null with fewer than 2 values. */
  std: number | null;
  n: number;
  /** Each seed's value, in seed order. */
  values: { seed: number; value: number }[];
}

export function mean(xs: readonly number[]): number | null {
  if (xs.length === 0) return null;
  let s = 0;
  for (const x of xs) s += x;
  return s / xs.length;
}

/** Sample standard deviation (Bessel's n - 1); null below two values. */
export function sampleStd(xs: readonly number[]): number | null {
  if (xs.length < 2) return null;
  const m = mean(xs)!;
  let s = 0;
  for (const x of xs) s += (x - m) * (x - m);
  return Math.sqrt(s / (xs.length - 1));
}

/** Smallest and largest value (null for none), without spreading the array into a call. */
export function range(xs: Iterable<number>): { min: number; max: number } | null {
  let min = Infinity;
  let max = -Infinity;
  for (const x of xs) {
    if (x < min) min = x;
    if (x > max) max = x;
  }
  return min <= max ? { min, max } : null;
}

/** The stat of per-seed values; a value that is not a finite number is left out. */
export function seedStat(values: { seed: number; value: number | null | undefined }[]): SeedStat {
  const kept = values
    .filter((v): v is { seed: number; value: number } => typeof v.value === 'number' && Number.isFinite(v.value))
    .sort((a, b) => a.seed - b.seed);
  const xs = kept.map((v) => v.value);
  return { mean: mean(xs), std: sampleStd(xs), n: xs.length, values: kept };
}
