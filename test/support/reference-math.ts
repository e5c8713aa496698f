// Small float64 dense-matrix helpers for independent reference computations
// in tests (expected values for synthetic fixtures). Row-major.
export interface Mat {
  rows: number;
  cols: number;
  data: Float64Array;
}

/** A seeded generator of float32-representable values in [lo, hi) (mulberry32). */
export function seededValues(seed: number): (lo?: number, hi?: number) => number {
  let s = seed >>> 0;
  return (lo = -1, hi = 1) => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const u = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    return Math.fround(lo + (hi - lo) * u);
  };
}

export function randomMat(rows: number, cols: number, next: (lo?: number, hi?: number) => number, lo = -1, hi = 1): Mat {
  const data = new Float64Array(rows * cols);
  for (let i = 0; i < data.length; i++) data[i] = next(lo, hi);
  return { rows, cols, data };
}

export function zerosMat(rows: number, cols: number): Mat {
  return { rows, cols, data: new Float64Array(rows * cols) };
}

export function matmul(a: Mat, b: Mat): Mat {
  if (a.cols !== b.rows) throw new Error(`matmul: ${a.rows}x${a.cols} by ${b.rows}x${b.cols}`);
  const out = zerosMat(a.rows, b.cols);
  for (let i = 0; i < a.rows; i++) {
    for (let k = 0; k < a.cols; k++) {
      const v = a.data[i * a.cols + k]!;
      if (v === 0) continue;
      for (let j = 0; j < b.cols; j++) out.data[i * b.cols + j] += v * b.data[k * b.cols + j]!;
    }
  }
  return out;
}

export function transpose(a: Mat): Mat {
  const out = zerosMat(a.cols, a.rows);
  for (let i = 0; i < a.rows; i++) for (let j = 0; j < a.cols; j++) out.data[j * a.rows + i] = a.data[i * a.cols + j]!;
  return out;
}

export function addMat(a: Mat, b: Mat): Mat {
  return { rows: a.rows, cols: a.cols, data: a.data.map((v, i) => v + b.data[i]!) };
}

export function scaleMat(a: Mat, s: number): Mat {
  return { rows: a.rows, cols: a.cols, data: a.data.map((v) => v * s) };
}

/** Adds a row vector to every row. */
export function addRow(a: Mat, row: ArrayLike<number>): Mat {
  return { rows: a.rows, cols: a.cols, data: a.data.map((v, i) => v + row[i % a.cols]!) };
}

/** Rows [r0, r0 + n). */
export function sliceRows(a: Mat, r0: number, n: number): Mat {
  return { rows: n, cols: a.cols, data: a.data.slice(r0 * a.cols, (r0 + n) * a.cols) };
}

/** Columns [c0, c0 + n). */
export function sliceCols(a: Mat, c0: number, n: number): Mat {
  const out = zerosMat(a.rows, n);
  for (let i = 0; i < a.rows; i++) for (let j = 0; j < n; j++) out.data[i * n + j] = a.data[i * a.cols + c0 + j]!;
  return out;
}

/** Concatenates along columns. */
export function hcat(parts: Mat[]): Mat {
  const cols = parts.reduce((n, p) => n + p.cols, 0);
  const out = zerosMat(parts[0]!.rows, cols);
  let c0 = 0;
  for (const p of parts) {
    for (let i = 0; i < p.rows; i++) for (let j = 0; j < p.cols; j++) out.data[i * cols + c0 + j] = p.data[i * p.cols + j]!;
    c0 += p.cols;
  }
  return out;
}

/** Concatenates along rows. */
export function vcat(parts: Mat[]): Mat {
  const out = zerosMat(
    parts.reduce((n, p) => n + p.rows, 0),
    parts[0]!.cols,
  );
  let off = 0;
  for (const p of parts) {
    out.data.set(p.data, off);
    off += p.data.length;
  }
  return out;
}

/** Column sums. */
export function colSums(a: Mat): Float64Array {
  const out = new Float64Array(a.cols);
  for (let i = 0; i < a.rows; i++) for (let j = 0; j < a.cols; j++) out[j] += a.data[i * a.cols + j]!;
  return out;
}

/** The error function to ~1e-12 (Taylor series below 3, continued fraction for erfc above). */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 3) {
    let term = ax;
    let sum = ax;
    for (let n = 1; n < 80; n++) {
      term *= (-ax * ax) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return Math.sign(x) * ((2 / Math.sqrt(Math.PI)) * sum);
  }
  // erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...)))) (Lentz)
  let f = ax;
  let c = ax;
  let d = 0;
  for (let n = 1; n < 200; n++) {
    const an = n / 2;
    d = ax + an * d;
    d = 1 / d;
    c = ax + an / c;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return Math.sign(x) * (1 - erfc);
}

/** Exact GELU `x Φ(x)` and its derivative `Φ(x) + x φ(x)`. */
export function gelu(x: number): number {
  return 0.5 * x * (1 + erf(x / Math.SQRT2));
}

export function geluGrad(x: number): number {
  return 0.5 * (1 + erf(x / Math.SQRT2)) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI);
}
