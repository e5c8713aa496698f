// The threaded wasm product against a float64 reference: random shapes,
// transposes, batches (each side shared or not), 1-3 threads; the split of
// work; the same bits whatever the thread count; workers that do not keep the
// process alive; the committed module built from the committed source.
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';
import { KERNELS_SOURCE_SHA256 } from './kernels-wasm.js';
import { WasmKernelPool, splitWork, type BinaryOp, type Product, type Side } from './pool.js';

/** A product on arrays (the pool's copy mode). */
type ArrayProduct = Product & { a: Float32Array; b: Float32Array; out: Float32Array };

const here = dirname(fileURLToPath(import.meta.url));

function random(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 32 - 0.5;
  }
  return out;
}

/** op(a) op(b) in float64 for each matrix of the batch. */
function reference(p: ArrayProduct): Float64Array {
  const { m, k, n, batchA, batchB } = p;
  const batch = Math.max(batchA, batchB);
  const out = new Float64Array(batch * m * n);
  for (let t = 0; t < batch; t++) {
    const ao = (batchA > 1 ? t : 0) * m * k;
    const bo = (batchB > 1 ? t : 0) * k * n;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let q = 0; q < k; q++) {
          const x = p.a[ao + (p.transposeA ? q * m + i : i * k + q)]!;
          const y = p.b[bo + (p.transposeB ? j * k + q : q * n + j)]!;
          s += x * y;
        }
        out[t * m * n + i * n + j] = s;
      }
    }
  }
  return out;
}

function makeProduct(c: { m: number; k: number; n: number; batch: number; sharedA: boolean; sharedB: boolean; transposeA: boolean; transposeB: boolean; seed: number }): ArrayProduct {
  const batchA = c.sharedA ? 1 : c.batch;
  const batchB = c.sharedB && !c.sharedA ? 1 : c.batch;
  return {
    a: random(batchA * c.m * c.k, c.seed),
    b: random(batchB * c.k * c.n, c.seed + 7),
    out: new Float32Array(Math.max(batchA, batchB) * c.m * c.n).fill(Number.NaN),
    batchA,
    batchB,
    m: c.m,
    k: c.k,
    n: c.n,
    transposeA: c.transposeA,
    transposeB: c.transposeB,
  };
}

const productCase = fc.record({
  m: fc.integer({ min: 1, max: 70 }),
  k: fc.integer({ min: 1, max: 300 }),
  n: fc.integer({ min: 1, max: 70 }),
  batch: fc.integer({ min: 1, max: 4 }),
  sharedA: fc.boolean(),
  sharedB: fc.boolean(),
  transposeA: fc.boolean(),
  transposeB: fc.boolean(),
  seed: fc.integer({ min: 1, max: 1e6 }),
});

const pools = [1, 2, 3].map((t) => new WasmKernelPool(t));
afterAll(async () => {
  for (const p of pools) await p.close();
});

function expectClose(p: ArrayProduct, label: string): void {
  const want = reference(p);
  for (let i = 0; i < want.length; i++) {
    // float32 sums of k products of numbers below 0.5 in size
    const tol = 1e-6 * Math.max(1, p.k);
    if (!(Math.abs(p.out[i]! - want[i]!) <= tol)) throw new Error(`${label}: element ${i} is ${p.out[i]}, expected ${want[i]}`);
  }
}

describe('wasm threaded product', () => {
  it('equals the float64 product (random shapes, transposes, batches; 1-3 threads)', () => {
    fc.assert(
      fc.property(productCase, fc.integer({ min: 0, max: 2 }), (c, t) => {
        const p = makeProduct(c);
        pools[t]!.product(p);
        expectClose(p, `${JSON.stringify(c)} on ${t + 1} threads`);
      }),
      { numRuns: 150 },
    );
  });

  it('gives the same bits on 1, 2 and 3 threads (sizes that take the threaded path)', () => {
    for (const c of [
      { m: 512, k: 192, n: 576, batch: 1, sharedA: false, sharedB: true, transposeA: false, transposeB: false, seed: 3 },
      { m: 13, k: 512, n: 200, batch: 1, sharedA: false, sharedB: true, transposeA: true, transposeB: true, seed: 4 },
      { m: 300, k: 64, n: 12, batch: 1, sharedA: true, sharedB: false, transposeA: false, transposeB: true, seed: 5 },
      { m: 64, k: 32, n: 64, batch: 7, sharedA: false, sharedB: false, transposeA: false, transposeB: true, seed: 6 },
    ]) {
      const outs = pools.map((pool) => {
        const p = makeProduct(c);
        pool.product(p);
        return p;
      });
      expectClose(outs[0]!, JSON.stringify(c));
      expect(Buffer.from(outs[1]!.out.buffer).equals(Buffer.from(outs[0]!.out.buffer)), JSON.stringify(c)).toBe(true);
      expect(Buffer.from(outs[2]!.out.buffer).equals(Buffer.from(outs[0]!.out.buffer)), JSON.stringify(c)).toBe(true);
    }
  });

  it('writes zeros for an empty inner size and nothing for an empty result', () => {
    const p = makeProduct({ m: 3, k: 0, n: 5, batch: 2, sharedA: false, sharedB: false, transposeA: false, transposeB: false, seed: 1 });
    pools[1]!.product(p);
    expect([...p.out]).toEqual(new Array(30).fill(0));
    const q = makeProduct({ m: 0, k: 4, n: 5, batch: 1, sharedA: false, sharedB: false, transposeA: false, transposeB: false, seed: 1 });
    expect(() => pools[1]!.product(q)).not.toThrow();
  });

  it('rejects operands smaller than their shapes, naming them', () => {
    const p = makeProduct({ m: 4, k: 4, n: 4, batch: 1, sharedA: false, sharedB: false, transposeA: false, transposeB: false, seed: 1 });
    expect(() => pools[0]!.product({ ...p, a: p.a.subarray(0, 3) })).toThrow(/operands smaller than their shapes \(1x4x4, 1x4x4\)/);
  });

  it('splits a batch by matrices, a wide product by 8-column panels, a narrow one by 4-row tiles', () => {
    expect(splitWork(5, 10, 10, 2).map((s) => [s.b0, s.b1])).toEqual([[0, 2], [2, 5]]);
    expect(splitWork(1, 100, 40, 2).map((s) => [s.j0, s.j1, s.i0, s.i1])).toEqual([[0, 16, 0, 100], [16, 40, 0, 100]]);
    expect(splitWork(1, 10, 12, 2).map((s) => [s.i0, s.i1, s.j0, s.j1])).toEqual([[0, 4, 0, 12], [4, 10, 0, 12]]);
    expect(splitWork(1, 3, 12, 2)).toHaveLength(1);
    expect(splitWork(3, 3, 3, 1)).toEqual([{ b0: 0, b1: 3, i0: 0, i1: 3, j0: 0, j1: 3 }]);
  });

  it('does not keep the process alive, and fails once closed', async () => {
    const pool = new WasmKernelPool(2);
    const p = makeProduct({ m: 256, k: 256, n: 256, batch: 1, sharedA: false, sharedB: false, transposeA: false, transposeB: false, seed: 2 });
    pool.product(p);
    await pool.close();
    expect(() => pool.product(p)).toThrow(/used after close/);
    // a process that leaves its pool open (workers asleep) still exits at once: run
    // this folder's modules, transpiled, in a child process
    const dir = mkdtempSync(join(tmpdir(), 'peft-wasm-pool-'));
    try {
      for (const f of ['pool', 'worker-source', 'kernels-wasm']) {
        const js = ts.transpileModule(readFileSync(join(here, `${f}.ts`), 'utf8'), { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } });
        writeFileSync(join(dir, `${f}.js`), js.outputText);
      }
      writeFileSync(
        join(dir, 'main.mjs'),
        `import { WasmKernelPool } from './pool.js';\n` +
          `const pool = new WasmKernelPool(2); const a = new Float32Array(256 * 256).fill(1); const out = new Float32Array(256 * 256);\n` +
          `pool.product({ a, b: a, out, batchA: 1, batchB: 1, m: 256, k: 256, n: 256, transposeA: false, transposeB: false });\n` +
          `console.log(out[0]);\n`,
      );
      const started = Date.now();
      const r = spawnSync(process.execPath, [join(dir, 'main.mjs')], { encoding: 'utf8', timeout: 20000 });
      expect(r.stderr).toBe('');
      expect(r.stdout.trim()).toBe('256');
      expect(r.status).toBe(0);
      expect(Date.now() - started).toBeLessThan(10000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('adds, subtracts, multiplies and divides as float32 does, each side whole, a row, a value per row or one value', () => {
    const sides: Side[] = ['full', 'row', 'column', 'scalar'];
    const ops: Array<[BinaryOp, (x: number, y: number) => number]> = [
      ['add', (x, y) => x + y],
      ['sub', (x, y) => x - y],
      ['mul', (x, y) => x * y],
      ['div', (x, y) => x / y],
    ];
    fc.assert(
      fc.property(
        fc.record({
          rows: fc.integer({ min: 1, max: 40 }),
          n: fc.integer({ min: 1, max: 40 }),
          op: fc.integer({ min: 0, max: 3 }),
          sideA: fc.constantFrom(...sides),
          sideB: fc.constantFrom(...sides),
          pool: fc.integer({ min: 0, max: 2 }),
          seed: fc.integer({ min: 1, max: 1e6 }),
        }),
        (c) => {
          const count = c.rows * c.n;
          const size = (side: Side) => (side === 'full' ? count : side === 'row' ? c.n : side === 'column' ? c.rows : 1);
          const a = random(size(c.sideA), c.seed);
          const b = random(size(c.sideB), c.seed + 1);
          const out = new Float32Array(count).fill(Number.NaN);
          const [op, f] = ops[c.op]!;
          pools[c.pool]!.binary(op, a, c.sideA, b, c.sideB, out, count, c.n);
          const at = (x: Float32Array, side: Side, i: number) => x[side === 'full' ? i : side === 'row' ? i % c.n : side === 'column' ? Math.floor(i / c.n) : 0]!;
          for (let i = 0; i < count; i++) {
            const want = Math.fround(f(at(a, c.sideA, i), at(b, c.sideB, i)));
            if (!Object.is(out[i], want)) throw new Error(`${JSON.stringify(c)}: element ${i} is ${out[i]}, expected ${want}`);
          }
        },
      ),
      { numRuns: 200 },
    );
    // large enough for both threads: the same bits
    const count = 300 * 257;
    const a = random(count, 9);
    const b = random(257, 10);
    const outs = pools.map((pool) => {
      const out = new Float32Array(count);
      pool.binary('mul', a, 'full', b, 'row', out, count, 257);
      return out;
    });
    for (let i = 0; i < count; i++) expect(outs[1]![i]).toBe(Math.fround(a[i]! * b[i % 257]!));
    expect(Buffer.from(outs[2]!.buffer).equals(Buffer.from(outs[1]!.buffer))).toBe(true);
  });

  it('computes exact GELU and its gradient within 1e-6 of float64, every tail length', () => {
    const erf = (x: number) => {
      // float64 erf by its Taylor series (|x| <= 3 here), to ~1e-15
      let sum = 0;
      let term = x;
      for (let k = 0; k < 80; k++) {
        sum += term / (2 * k + 1);
        term *= (-x * x) / (k + 1);
      }
      return (2 / Math.sqrt(Math.PI)) * sum;
    };
    for (const count of [1, 2, 3, 4, 5, 7, 9, 33, 70001]) {
      const x = random(count, count).map((v) => v * 6);
      const dy = random(count, count + 1);
      for (const pool of pools) {
        const y = new Float32Array(count).fill(Number.NaN);
        const dx = new Float32Array(count).fill(Number.NaN);
        pool.elementwise('gelu', [x], y, count);
        pool.elementwise('geluGrad', [x, dy], dx, count);
        for (let i = 0; i < count; i++) {
          const v = x[i]!;
          const cdf = 0.5 * (1 + erf(v / Math.SQRT2));
          expect(Math.abs(y[i]! - v * cdf), `gelu(${v})`).toBeLessThan(1e-6 * Math.max(1, Math.abs(v)));
          const grad = dy[i]! * (cdf + (v * Math.exp(-0.5 * v * v)) / Math.sqrt(2 * Math.PI));
          expect(Math.abs(dx[i]! - grad), `gelu'(${v})`).toBeLessThan(1e-6);
        }
      }
    }
  });

  it('layer norm and its gradient equal a float64 reference (with and without weight and bias; 1-3 threads)', () => {
    fc.assert(
      fc.property(
        fc.record({
          rows: fc.integer({ min: 1, max: 300 }),
          n: fc.integer({ min: 1, max: 70 }),
          weight: fc.boolean(),
          bias: fc.boolean(),
          pool: fc.integer({ min: 0, max: 2 }),
          seed: fc.integer({ min: 1, max: 1e6 }),
        }),
        (c) => {
          const count = c.rows * c.n;
          const x = random(count, c.seed).map((v) => 3 * v + 1);
          const w = c.weight ? random(c.n, c.seed + 1) : undefined;
          const b = c.bias ? random(c.n, c.seed + 2) : undefined;
          const dy = random(count, c.seed + 3);
          const y = new Float32Array(count);
          const mean = new Float32Array(c.rows);
          const rstd = new Float32Array(c.rows);
          const pool = pools[c.pool]!;
          pool.layerNorm(x, w, b, y, mean, rstd, c.rows, c.n, 1e-5);
          const dx = new Float32Array(count);
          const dw = c.weight ? new Float32Array(c.n) : undefined;
          const db = c.bias ? new Float32Array(c.n) : undefined;
          pool.layerNormGrad(dy, x, mean, rstd, w, dx, dw, db, c.rows, c.n);
          const wantDw = new Float64Array(c.n);
          const wantDb = new Float64Array(c.n);
          for (let r = 0; r < c.rows; r++) {
            const row = Array.from(x.subarray(r * c.n, (r + 1) * c.n));
            const m = row.reduce((s, v) => s + v, 0) / c.n;
            const rs = 1 / Math.sqrt(row.reduce((s, v) => s + (v - m) ** 2, 0) / c.n + 1e-5);
            expect(Math.abs(mean[r]! - m)).toBeLessThan(1e-5);
            expect(Math.abs(rstd[r]! - rs) / rs).toBeLessThan(1e-4);
            const xhat = row.map((v) => (v - m) * rs);
            const g = xhat.map((_, j) => dy[r * c.n + j]! * (w ? w[j]! : 1));
            const mg = g.reduce((s, v) => s + v, 0) / c.n;
            const mgx = g.reduce((s, v, j) => s + v * xhat[j]!, 0) / c.n;
            for (let j = 0; j < c.n; j++) {
              const want = xhat[j]! * (w ? w[j]! : 1) + (b ? b[j]! : 0);
              // float32 rounding of x - mean (about |x| 1e-7) is amplified by rstd
              if (!(Math.abs(y[r * c.n + j]! - want) < 2e-5 + 1e-6 * rs * (1 + Math.abs(m)) * Math.max(1, Math.abs(w ? w[j]! : 1)))) throw new Error(`${JSON.stringify(c)}: y[${r},${j}] ${y[r * c.n + j]} vs ${want}`);
              const wantDx = (g[j]! - mg - xhat[j]! * mgx) * rs;
              if (!(Math.abs(dx[r * c.n + j]! - wantDx) < 2e-4 * Math.max(1, rs))) throw new Error(`${JSON.stringify(c)}: dx[${r},${j}] ${dx[r * c.n + j]} vs ${wantDx}`);
              wantDw[j] += dy[r * c.n + j]! * xhat[j]!;
              wantDb[j] += dy[r * c.n + j]!;
            }
          }
          for (let j = 0; j < c.n; j++) {
            if (dw) expect(Math.abs(dw[j]! - wantDw[j]!), `dw ${j}`).toBeLessThan(1e-4 * c.rows);
            if (db) expect(Math.abs(db[j]! - wantDb[j]!), `db ${j}`).toBeLessThan(1e-5 * c.rows);
          }
        },
      ),
      { numRuns: 80 },
    );
  });

  it('sums columns in row order, to the bit (1-3 threads, every column tail)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 200 }), fc.integer({ min: 1, max: 90 }), fc.integer({ min: 0, max: 2 }), fc.integer({ min: 1, max: 1e6 }), (rows, n, t, seed) => {
        const x = random(rows * n, seed);
        const out = new Float32Array(n).fill(Number.NaN);
        pools[t]!.columnSums(x, out, rows, n);
        for (let j = 0; j < n; j++) {
          let want = 0;
          for (let r = 0; r < rows; r++) want = Math.fround(want + x[r * n + j]!);
          if (!Object.is(out[j], want)) throw new Error(`${rows}x${n} on ${t + 1} threads: column ${j} is ${out[j]}, expected ${want}`);
        }
      }),
      { numRuns: 100 },
    );
  });

  it('transposes any permutation of rank 1-6 exactly (1-3 threads), and names a bad permutation', () => {
    const transposeCase = fc
      .array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 6 })
      .chain((shape) => fc.record({ shape: fc.constant(shape), perm: fc.shuffledSubarray([...shape.keys()], { minLength: shape.length }), pool: fc.integer({ min: 0, max: 2 }), seed: fc.integer({ min: 1, max: 1e6 }) }));
    fc.assert(
      fc.property(transposeCase, (c) => {
        const count = c.shape.reduce((a, b) => a * b, 1);
        const x = random(count, c.seed);
        const out = new Float32Array(count).fill(Number.NaN);
        pools[c.pool]!.transpose(x, out, c.shape, c.perm);
        const strides = c.shape.map((_, d) => c.shape.slice(d + 1).reduce((a, b) => a * b, 1));
        const os = c.perm.map((a) => c.shape[a]!);
        for (let i = 0; i < count; i++) {
          let rem = i;
          let src = 0;
          for (let d = os.length - 1; d >= 0; d--) {
            src += (rem % os[d]!) * strides[c.perm[d]!]!;
            rem = Math.floor(rem / os[d]!);
          }
          if (!Object.is(out[i], x[src])) throw new Error(`${JSON.stringify(c)}: element ${i} is ${out[i]}, expected ${x[src]}`);
        }
      }),
      { numRuns: 200 },
    );
    expect(() => pools[0]!.transpose(new Float32Array(6), new Float32Array(6), [2, 3], [0, 0])).toThrow(/perm \[0,0\] is not a permutation of the axes of \[2,3\]/);
  });

  it('rejects a binary operation whose elements are not whole rows, and operands shorter than their sides', () => {
    const x = new Float32Array(6);
    expect(() => pools[0]!.binary('add', x, 'full', x, 'full', x, 6, 4)).toThrow(/6 elements are not rows of 4/);
    expect(() => pools[0]!.binary('add', x, 'full', x.subarray(0, 2), 'row', x, 6, 3)).toThrow(/input 1 has 2 elements, fewer than its shape's 3/);
  });

  it('is built from the committed kernels.c (run scripts/build-wasm-kernels.sh after changing it)', () => {
    const sha = createHash('sha256').update(readFileSync(join(here, 'kernels.c'))).digest('hex');
    expect(KERNELS_SOURCE_SHA256).toBe(sha);
  });
});
