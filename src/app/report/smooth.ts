// Smoothing of a noisy per-step loss curve for display.

/**
 * Debiased exponential moving average (TensorBoard's smoothing): weight
 * `alpha` on the past, the start corrected so the first values are not pulled
 * toward zero. alpha = 0 returns the input.
 */
export function emaSmooth(values: number[], alpha: number): number[] {
  if (!(alpha >= 0 && alpha < 1)) throw new RangeError(`smoothing weight must be in [0, 1), got ${alpha}`);
  const out: number[] = [];
  let acc = 0;
  let weight = 0;
  for (const v of values) {
    acc = alpha * acc + (1 - alpha) * v;
    weight = alpha * weight + (1 - alpha);
    out.push(acc / weight);
  }
  return out;
}

/** A smoothing weight for n points: an effective window of about n/10 points (1 to 40). */
export function smoothingFor(n: number): number {
  const window = Math.min(40, Math.max(1, n / 10));
  return Math.min(0.95, 1 - 2 / (window + 1));
}

/** Keeps at most `max` points, evenly spaced, always the last one. */
export function thin<T>(points: T[], max: number): T[] {
  if (points.length <= max) return points;
  const stride = points.length / max;
  const out: T[] = [];
  for (let i = 0; i < max - 1; i++) out.push(points[Math.floor(i * stride)]!);
  out.push(points.at(-1)!);
  return out;
}
