/** Whether every element satisfies `|a - e| <= atol + rtol * |e|`, and the largest |a - e|. */
export function compareArrays(actual: ArrayLike<number>, expected: ArrayLike<number>, atol: number, rtol: number) {
  let maxAbs = 0;
  let worst = -1;
  let ok = actual.length === expected.length;
  for (let i = 0; i < Math.min(actual.length, expected.length); i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    const d = Math.abs(a - e);
    if (!(d <= atol + rtol * Math.abs(e))) {
      ok = false;
      if (worst < 0 || !(d <= maxAbs)) worst = i;
    }
    if (d > maxAbs || Number.isNaN(d)) maxAbs = Number.isNaN(d) ? Infinity : d;
  }
  return { ok, maxAbs, worst };
}
