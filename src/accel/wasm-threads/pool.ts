// The threads that run kernels.wasm (a matrix product, GELU and its gradient)
// for the wasm path without the native addon: tfjs-backend-wasm itself runs on
// one thread in Node.
//
// Every thread — this one and `threads - 1` workers — instantiates the module
// on one shared WebAssembly.Memory: the wasm backend's own heap when it
// started on one (shared-heap.ts; operands are then passed as byte offsets and
// used in place), else a memory of the pool's own, into which operands are
// copied and results out of. A call splits the work (matrices of a batch, else
// columns of C in panels of 8, else rows; elements for elementwise kernels),
// writes each thread's share as a job record (kernels.c's `job`), wakes the
// workers through a control SharedArrayBuffer, runs its own share and waits
// for theirs. Each element of a result is computed by one thread in one
// order, so results do not depend on the thread count.
//
// Workers spin briefly after a job (the next call is usually microseconds
// away), then sleep in Atomics.wait; they are unref'd, so they never keep the
// process alive.
import { Worker } from 'node:worker_threads';
import { KERNELS_WASM_BASE64 } from './kernels-wasm.js';
import type { SharedHeap } from './shared-heap.js';
import { WORKER_SOURCE } from './worker-source.js';

/** A float32 array, or the byte offset of one in the pool's memory (`WasmKernelPool.memory`). */
export type Operand = Float32Array | number;

/** `out = op(a) op(b)` for a batch; a side with batch 1 is shared by every matrix of the other. */
export interface Product {
  /** `batchA` matrices, each `[m, k]` (`[k, m]` when `transposeA`). */
  a: Operand;
  /** `batchB` matrices, each `[k, n]` (`[n, k]` when `transposeB`). */
  b: Operand;
  /** `max(batchA, batchB)` matrices `[m, n]`. */
  out: Operand;
  batchA: number;
  batchB: number;
  m: number;
  k: number;
  n: number;
  transposeA: boolean;
  transposeB: boolean;
}

export type ElementwiseKind = 'gelu' | 'geluGrad';
export type BinaryOp = 'add' | 'sub' | 'mul' | 'div';
/** How a side of a binary operation covers the output's rows of n: all of it, one row, a value per row, one value. */
export type Side = 'full' | 'row' | 'column' | 'scalar';

interface KernelExports {
  run_job(job: number): void;
  pack_floats(ncols: number): number;
  scratch_floats(): number;
}

const PAGE = 65536;
/** The fields of kernels.c's `job`, 4 bytes each, and the bytes kept per record. */
const JOB_FIELDS = 21;
const JOB_BYTES = 128;
/** In a memory of the pool's own: the job records, then the working space (kernels.c has no data and uses no stack). */
const OWN_JOBS_AT = 64 * 1024;
const OWN_SPACE_AT = 1 << 20;
/** Copied matrices of a batch go in chunks of about this many bytes. */
const CHUNK_BYTES = 256 << 20;
/** Below this many multiply-adds a product runs on the calling thread alone. */
const THREADED_MIN_MACS = 512 * 1024;
/** Below this many elements an elementwise kernel runs on the calling thread alone. */
const THREADED_MIN_ELEMENTS = 16 * 1024;
/** Spins of a waiting thread before it sleeps (a few tens of microseconds). */
const SPIN = 20000;
/** A threaded call is cut into this many pieces per thread, taken in turn by whichever thread is free. */
const PIECES_PER_THREAD = 4;
/** Job records kept (the pieces of one call at most). */
const MAX_PIECES = 64;
/** The control words: generation (-1: exit), next piece, pieces, pieces done, a piece failed. */
const CTL = { generation: 0, next: 1, count: 2, done: 3, failed: 4 } as const;
/** `next` between calls: no piece can be taken. */
const CLOSED = 1 << 30;
/** A worker silent this long has died (no call takes minutes). */
const WORKER_TIMEOUT_S = 600;
/** kernels.c's micro-kernel: rows of a tile, columns of a panel. */
const TILE_ROWS = 4;
const PANEL = 8;
/** kernels.c's job kinds. */
const JOB = { gemm: 0, gelu: 2, geluGrad: 3, binary: 4, norm: 5, normGrad: 6, colSum: 7, permute: 8 } as const;

/** kernels.c's norm_job, as job record fields. */
function normJob(kind: number, f: { x: number; w: number; b: number; mean: number; rstd: number; dy: number; out: number; dw: number; db: number; n: number; eps: number; r0: number; r1: number }): number[] {
  const job = [kind, f.x, f.w, f.b, f.mean, f.rstd, f.dy, f.out, f.dw, f.db, f.n, f.eps, f.r0, f.r1];
  return [...job, ...new Array<number>(JOB_FIELDS - job.length).fill(0)];
}
const OP: Record<BinaryOp, number> = { add: 0, sub: 1, mul: 2, div: 3 };
const SIDE: Record<Side, number> = { full: 0, row: 1, column: 2, scalar: 3 };

let compiled: WebAssembly.Module | undefined;

function kernelsModule(): WebAssembly.Module {
  compiled ??= new WebAssembly.Module(Buffer.from(KERNELS_WASM_BASE64, 'base64'));
  return compiled;
}

/** Where the job records and each call's working space live. */
interface Space {
  readonly memory: WebAssembly.Memory;
  readonly jobs: number;
  /** A block of at least `bytes` for the current call. */
  block(bytes: number): number;
  release(): void;
}

/** A memory of the pool's own, grown as calls need. */
class OwnSpace implements Space {
  readonly memory = new WebAssembly.Memory({ initial: OWN_SPACE_AT / PAGE + 16, maximum: 65536, shared: true });
  readonly jobs = OWN_JOBS_AT;

  block(bytes: number): number {
    const need = OWN_SPACE_AT + bytes;
    const have = this.memory.buffer.byteLength;
    if (need > 65536 * PAGE) throw new Error(`wasm kernels: a call needs ${Math.ceil(bytes / 2 ** 20)} MB, over wasm's 4 GB`);
    if (need > have) this.memory.grow(Math.ceil((need - have) / PAGE));
    return OWN_SPACE_AT;
  }

  release(): void {}
}

/** The wasm backend's heap: blocks from its allocator, kept and grown between calls. */
class HeapSpace implements Space {
  readonly memory: WebAssembly.Memory;
  readonly jobs: number;
  private at = 0;
  private size = 0;

  constructor(private readonly heap: SharedHeap) {
    this.memory = heap.memory;
    this.jobs = this.allocate(MAX_PIECES * JOB_BYTES);
  }

  private allocate(bytes: number): number {
    const p = this.heap.malloc(bytes);
    if (!p) throw new Error(`wasm kernels: the heap could not give ${Math.ceil(bytes / 2 ** 20)} MB`);
    return p;
  }

  block(bytes: number): number {
    if (bytes <= this.size) return this.at;
    if (this.at) this.heap.free(this.at);
    this.at = 0;
    this.size = Math.max(bytes, Math.ceil(this.size * 1.25), 1 << 16);
    this.at = this.allocate(this.size);
    return this.at;
  }

  release(): void {
    if (this.at) this.heap.free(this.at);
    this.heap.free(this.jobs);
    this.at = this.size = 0;
  }
}

/** One thread's share: matrices [b0, b1), rows [i0, i1), columns [j0, j1). */
interface Share {
  b0: number;
  b1: number;
  i0: number;
  i1: number;
  j0: number;
  j1: number;
}

/** Splits `units` into `parts` contiguous ranges of nearly equal size (empty ones dropped). */
function ranges(units: number, parts: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let t = 0; t < parts; t++) {
    const lo = Math.floor((units * t) / parts);
    const hi = Math.floor((units * (t + 1)) / parts);
    if (hi > lo) out.push([lo, hi]);
  }
  return out;
}

/** How `threads` threads share `items` matrices of `m x n`. */
export function splitWork(items: number, m: number, n: number, threads: number): Share[] {
  if (threads <= 1) return [{ b0: 0, b1: items, i0: 0, i1: m, j0: 0, j1: n }];
  if (items >= threads) return ranges(items, threads).map(([b0, b1]) => ({ b0, b1, i0: 0, i1: m, j0: 0, j1: n }));
  const panels = Math.ceil(n / PANEL);
  if (panels >= 2 * threads) {
    // columns: each thread packs only its own panels of b
    return ranges(panels, threads).map(([p0, p1]) => ({ b0: 0, b1: items, i0: 0, i1: m, j0: p0 * PANEL, j1: Math.min(n, p1 * PANEL) }));
  }
  const tiles = Math.ceil(m / TILE_ROWS);
  return ranges(tiles, threads).map(([t0, t1]) => ({ b0: 0, b1: items, i0: t0 * TILE_ROWS, i1: Math.min(m, t1 * TILE_ROWS), j0: 0, j1: n }));
}

const align = (bytes: number) => Math.ceil(bytes / 64) * 64;

function elements(x: Operand, what: string, need: number): void {
  if (typeof x === 'number') {
    if (!Number.isInteger(x) || x <= 0 || x % 4 !== 0) throw new Error(`wasm kernels: ${what} is not a float32 offset (${x})`);
  } else if (x.length < need) {
    throw new Error(`wasm kernels: ${what} has ${x.length} elements, fewer than its shape's ${need}`);
  }
}

export class WasmKernelPool {
  readonly threads: number;
  private readonly space: Space;
  private readonly kernels: KernelExports;
  private readonly workers: Worker[] = [];
  /** The words of CTL. */
  private readonly control: Int32Array;
  private generation = 0;
  private closed = false;

  /** `heap`: run on the wasm backend's shared heap (operands may then be byte offsets in it). */
  constructor(threads: number, heap?: SharedHeap) {
    if (!Number.isInteger(threads) || threads < 1) throw new Error(`wasm kernels: thread count must be a positive integer, got ${threads}`);
    this.threads = threads;
    this.space = heap ? new HeapSpace(heap) : new OwnSpace();
    const module = kernelsModule();
    const memory = this.space.memory;
    this.kernels = new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as KernelExports;
    this.control = new Int32Array(new SharedArrayBuffer(4 * 5));
    this.control[CTL.next] = CLOSED;
    for (let w = 1; w < threads; w++) {
      const worker = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: { module, memory, control: this.control.buffer, jobs: this.space.jobs, jobBytes: JOB_BYTES, spin: SPIN },
      });
      worker.unref();
      this.workers.push(worker);
    }
  }

  /** Pieces to cut a call into: 1 (this thread alone) when it is small. */
  private pieces(large: boolean): number {
    return large && this.threads > 1 ? PIECES_PER_THREAD * this.threads : 1;
  }

  /** The memory the kernels run on (byte-offset operands point into it). */
  get memory(): WebAssembly.Memory {
    return this.space.memory;
  }

  /** Computes `p.out = op(p.a) op(p.b)`. */
  product(p: Product): void {
    this.open();
    const { m, k, n, batchA, batchB } = p;
    const batch = Math.max(batchA, batchB);
    const sizes = { a: m * k, b: k * n, c: m * n };
    if (p.a instanceof Float32Array && p.a.length < batchA * sizes.a || p.b instanceof Float32Array && p.b.length < batchB * sizes.b || p.out instanceof Float32Array && p.out.length < batch * sizes.c) {
      throw new Error(`wasm product: operands smaller than their shapes (${batchA}x${m}x${k}, ${batchB}x${k}x${n})`);
    }
    elements(p.a, 'a', batchA * sizes.a);
    elements(p.b, 'b', batchB * sizes.b);
    elements(p.out, 'out', batch * sizes.c);
    if (batch * sizes.c === 0) return;
    const pieces = this.pieces(m * n * k * batch >= THREADED_MIN_MACS);

    // copied operands: a's and b's matrices (all, when one is shared by the batch), c's, a chunk of the batch at a time
    const copyA = typeof p.a !== 'number';
    const copyB = typeof p.b !== 'number';
    const copyC = typeof p.out !== 'number';
    const perItem = 4 * ((copyC ? sizes.c : 0) + (copyA && batchA > 1 ? sizes.a : 0) + (copyB && batchB > 1 ? sizes.b : 0));
    const shared = 4 * ((copyA && batchA === 1 ? sizes.a : 0) + (copyB && batchB === 1 ? sizes.b : 0));
    const chunk = perItem === 0 ? batch : Math.max(1, Math.min(batch, Math.floor((CHUNK_BYTES - shared) / perItem)));
    const aBytes = copyA ? align(4 * sizes.a * (batchA > 1 ? chunk : 1)) : 0;
    const bBytes = copyB ? align(4 * sizes.b * (batchB > 1 ? chunk : 1)) : 0;
    const cBytes = copyC ? align(4 * sizes.c * chunk) : 0;
    // each piece packs its own columns of b into its own buffer (the batch's last chunk may be split otherwise)
    const shares = splitWork(Math.min(chunk, batch), m, n, pieces);
    const lastShares = batch % chunk ? splitWork(batch % chunk, m, n, pieces) : shares;
    const width = (list: Share[], t: number) => (list[t] ? list[t]!.j1 - list[t]!.j0 : 0);
    const packBytes = Array.from({ length: Math.max(shares.length, lastShares.length) }, (_, t) =>
      align(4 * this.kernels.pack_floats(Math.max(width(shares, t), width(lastShares, t)))),
    );
    const packAt: number[] = [];
    let packTotal = 0;
    for (const b of packBytes) {
      packAt.push(packTotal);
      packTotal += b;
    }
    const scratchBytes = align(4 * this.kernels.scratch_floats());
    const at = this.space.block(aBytes + bBytes + cBytes + packTotal + packBytes.length * scratchBytes);
    const copies = { a: at, b: at + aBytes, c: at + aBytes + bBytes };
    const perPiece = copies.c + cBytes;
    const heap = new Float32Array(this.space.memory.buffer);

    if (p.k === 0) {
      if (copyC) (p.out as Float32Array).fill(0, 0, batch * sizes.c);
      else heap.fill(0, (p.out as number) / 4, (p.out as number) / 4 + batch * sizes.c);
      return;
    }
    if (copyA && batchA === 1) heap.set((p.a as Float32Array).subarray(0, sizes.a), copies.a / 4);
    if (copyB && batchB === 1) heap.set((p.b as Float32Array).subarray(0, sizes.b), copies.b / 4);
    for (let c0 = 0; c0 < batch; c0 += chunk) {
      const items = Math.min(chunk, batch - c0);
      const place = (x: Operand, copied: number, perMatrix: number, batched: boolean) => {
        if (typeof x === 'number') return x + (batched ? 4 * c0 * perMatrix : 0);
        if (batched) heap.set(x.subarray(c0 * perMatrix, (c0 + items) * perMatrix), copied / 4);
        return copied;
      };
      const a = place(p.a, copies.a, sizes.a, batchA > 1);
      const b = place(p.b, copies.b, sizes.b, batchB > 1);
      const c = typeof p.out === 'number' ? p.out + 4 * c0 * sizes.c : copies.c;
      const ras = p.transposeA ? 1 : k;
      const cas = p.transposeA ? m : 1;
      const rsb = p.transposeB ? 1 : n;
      const csb = p.transposeB ? k : 1;
      const split = items === Math.min(chunk, batch) ? shares : lastShares;
      this.run(
        split.map((s, t) => [
          JOB.gemm, a, batchA > 1 ? sizes.a : 0, ras, cas, b, batchB > 1 ? sizes.b : 0, rsb, csb, k, c, sizes.c, n,
          s.i0, s.i1, s.j0, s.j1, s.b0, s.b1, perPiece + packAt[t]!, perPiece + packTotal + t * scratchBytes,
        ]),
      );
      if (copyC) (p.out as Float32Array).set(heap.subarray(c / 4, c / 4 + items * sizes.c), c0 * sizes.c);
    }
  }

  /** An elementwise kernel over `count` elements: `out = gelu(x)` or `out = gelu'(x) dy`. */
  elementwise(kind: ElementwiseKind, inputs: Operand[], out: Operand, count: number): void {
    const want = kind === 'gelu' ? 1 : 2;
    if (inputs.length !== want) throw new Error(`wasm ${kind}: expected ${want} input(s), got ${inputs.length}`);
    this.overElements(count, inputs.map((x) => [x, count]), out, (ins, o) => (v0, v1) => {
      const job = new Array<number>(JOB_FIELDS).fill(0);
      [job[0], job[1], job[5], job[10], job[13], job[14]] = [JOB[kind], ins[0]!, ins[1] ?? 0, o, v0, v1];
      return job;
    });
  }

  /**
   * `out = a op b` over `count` elements seen as rows of `n`, each side a full
   * tensor, a row of `n` (repeated for every row), a value per row, or one value.
   */
  binary(op: BinaryOp, a: Operand, aSide: Side, b: Operand, bSide: Side, out: Operand, count: number, n: number): void {
    if (!(n > 0) || count % n !== 0) throw new Error(`wasm ${op}: ${count} elements are not rows of ${n}`);
    const size = (side: Side) => (side === 'full' ? count : side === 'row' ? n : side === 'column' ? count / n : 1);
    this.overElements(count, [[a, size(aSide)], [b, size(bSide)]], out, (ins, o) => (i0, i1) => {
      const job = new Array<number>(JOB_FIELDS).fill(0);
      [job[0], job[1], job[3], job[5], job[7], job[9], job[10], job[12], job[13], job[14]] = [
        JOB.binary, ins[0]!, SIDE[aSide], ins[1]!, SIDE[bSide], OP[op], o, n, i0, i1,
      ];
      return job;
    });
  }

  /** `out[j]` = the sum over the `rows` rows of `x[r, j]` (`x` `[rows, n]`), in row order; columns over the threads. */
  columnSums(x: Operand, out: Operand, rows: number, n: number): void {
    this.withPlaced([[x, rows * n]], [[out, n]], ([xo], [o]) => {
      this.run(
        ranges(Math.ceil(n / 4), this.pieces(rows * n >= THREADED_MIN_ELEMENTS)).map(([v0, v1]) => {
          const job = new Array<number>(JOB_FIELDS).fill(0);
          [job[0], job[1], job[9], job[10], job[12], job[13], job[14]] = [JOB.colSum, xo!, rows, o!, n, 4 * v0, Math.min(n, 4 * v1)];
          return job;
        }),
      );
    });
  }

  /**
   * `out` = `x` (4-byte elements of `shape`, rank 1-6) with its axes permuted:
   * output axis d is input axis `perm[d]`.
   */
  transpose(x: Operand, out: Operand, shape: number[], perm: number[]): void {
    const rank = shape.length;
    if (rank < 1 || rank > 6 || perm.length !== rank || [...perm].sort((a, b) => a - b).some((a, i) => a !== i)) {
      throw new Error(`wasm transpose: perm [${perm}] is not a permutation of the axes of [${shape}] (rank 1-6)`);
    }
    const count = shape.reduce((a, b) => a * b, 1);
    const inStride = new Array<number>(rank);
    for (let d = rank - 1, st = 1; d >= 0; d--) {
      inStride[d] = st;
      st *= shape[d]!;
    }
    const os = perm.map((a) => shape[a]!);
    const st = perm.map((a) => inStride[a]!);
    this.withPlaced([[x, count]], [[out, count]], ([xo], [o]) => {
      if (count === 0) return;
      const pad = (v: number[]) => [...v, ...new Array<number>(6 - rank).fill(1)];
      this.run(
        ranges(Math.ceil(count / 4), this.pieces(count >= THREADED_MIN_ELEMENTS)).map(([v0, v1]) => {
          const job = [JOB.permute, xo!, rank, ...pad(os), ...pad(st), o!, 4 * v0, Math.min(count, 4 * v1)];
          return [...job, ...new Array<number>(JOB_FIELDS - job.length).fill(0)];
        }),
      );
    });
  }

  /**
   * Layer norm over rows of `n` (`rows` of them): `y = (x - mean) rstd w + b`
   * (w, b optional), with each row's mean and rstd written too.
   */
  layerNorm(x: Operand, w: Operand | undefined, b: Operand | undefined, y: Operand, mean: Operand, rstd: Operand, rows: number, n: number, eps: number): void {
    const count = rows * n;
    const [xs, ws, bs] = [[x, count], ...[w, b].map((v) => (v === undefined ? undefined : [v, n]))] as Array<[Operand, number] | undefined>;
    this.withPlaced([xs, ws, bs], [[y, count], [mean, rows], [rstd, rows]], ([xo, wo, bo], [yo, mo, ro]) => {
      const eps32 = new Int32Array(new Float32Array([eps]).buffer)[0]!;
      this.run(ranges(rows, this.pieces(count >= THREADED_MIN_ELEMENTS)).map(([r0, r1]) => normJob(JOB.norm, { x: xo!, w: wo ?? 0, b: bo ?? 0, mean: mo!, rstd: ro!, dy: 0, out: yo!, dw: 0, db: 0, n, eps: eps32, r0, r1 })));
    });
  }

  /**
   * Layer norm's gradient from the forward pass's x, mean and rstd: dx, and
   * when given, dw = sum over rows of dy xhat and db = sum over rows of dy
   * (each piece of the call sums its rows; the pieces' sums are added in order).
   */
  layerNormGrad(dy: Operand, x: Operand, mean: Operand, rstd: Operand, w: Operand | undefined, dx: Operand, dw: Operand | undefined, db: Operand | undefined, rows: number, n: number): void {
    const count = rows * n;
    const shares = ranges(rows, this.pieces(count >= THREADED_MIN_ELEMENTS));
    const partials = shares.length * align(4 * n);
    this.withPlaced(
      [[dy, count], [x, count], [mean, rows], [rstd, rows], w === undefined ? undefined : [w, n]],
      [[dx, count], dw === undefined ? undefined : [dw, n], db === undefined ? undefined : [db, n]],
      ([dyo, xo, mo, ro, wo], [dxo, dwo, dbo], scratch) => {
        const heap = new Float32Array(this.space.memory.buffer);
        const part = (which: number, t: number) => scratch + which * partials + t * align(4 * n);
        if (dwo || dbo) heap.fill(0, scratch / 4, (scratch + 2 * partials) / 4);
        this.run(
          shares.map(([r0, r1], t) =>
            normJob(JOB.normGrad, { x: xo!, w: wo ?? 0, b: 0, mean: mo!, rstd: ro!, dy: dyo!, out: dxo!, dw: dwo ? part(0, t) : 0, db: dbo ? part(1, t) : 0, n, eps: 0, r0, r1 }),
          ),
        );
        // the pieces' partial sums, added in order
        for (const [which, target] of [[0, dwo], [1, dbo]] as Array<[number, number | undefined]>) {
          if (!target) continue;
          const sum = heap.subarray(target / 4, target / 4 + n);
          sum.set(heap.subarray(part(which, 0) / 4, part(which, 0) / 4 + n));
          for (let t = 1; t < shares.length; t++) {
            const p = part(which, t) / 4;
            for (let j = 0; j < n; j++) sum[j] = sum[j]! + heap[p + j]!;
          }
        }
      },
      2 * partials,
    );
  }

  /**
   * Runs an elementwise job over `count` output elements, split over the
   * threads in whole vectors of 4.
   */
  private overElements(count: number, inputs: Array<[Operand, number]>, out: Operand, jobFor: (ins: number[], out: number) => (i0: number, i1: number) => number[]): void {
    this.withPlaced(inputs, [[out, count]], (ins, [o]) => {
      if (count === 0) return;
      const job = jobFor(ins as number[], o!);
      this.run(ranges(Math.ceil(count / 4), this.pieces(count >= THREADED_MIN_ELEMENTS)).map(([v0, v1]) => job(4 * v0, Math.min(count, 4 * v1))));
    });
  }

  /**
   * Calls `body` with the byte offsets of inputs and outputs (each with its
   * element count; undefined stays undefined) in the memory: arrays copied in
   * (inputs) or out afterwards (outputs), offsets as they are; `scratch`
   * bytes of working space after them.
   */
  private withPlaced(
    inputs: Array<[Operand, number] | undefined>,
    outputs: Array<[Operand, number] | undefined>,
    body: (ins: Array<number | undefined>, outs: Array<number | undefined>, scratch: number) => void,
    scratchBytes = 0,
  ): void {
    this.open();
    inputs.forEach((v, i) => v && elements(v[0], `input ${i}`, v[1]));
    outputs.forEach((v, i) => v && elements(v[0], `output ${i}`, v[1]));
    const all = [...inputs, ...outputs];
    const copied = all.reduce((sum, v) => sum + (v && typeof v[0] !== 'number' ? align(4 * v[1]) : 0), 0);
    let next = copied + scratchBytes ? this.space.block(copied + scratchBytes) : 0;
    const heap = new Float32Array(this.space.memory.buffer);
    const place = (v: [Operand, number] | undefined, copyIn: boolean) => {
      if (!v) return undefined;
      const [x, size] = v;
      if (typeof x === 'number') return x;
      const where = next;
      next += align(4 * size);
      if (copyIn) heap.set(x.subarray(0, size), where / 4);
      return where;
    };
    const ins = inputs.map((v) => place(v, true));
    const outs = outputs.map((v) => place(v, false));
    body(ins, outs, next);
    const after = new Float32Array(this.space.memory.buffer);
    outputs.forEach((v, i) => {
      if (v && typeof v[0] !== 'number') v[0].set(after.subarray(outs[i]! / 4, outs[i]! / 4 + v[1]));
    });
  }

  private open(): void {
    if (this.closed) throw new Error('wasm kernels pool: used after close()');
  }

  /**
   * Runs job records (the pieces of one call): with one, here; else every
   * thread — this one and the workers woken for it — takes the next piece
   * not yet taken until none is left, and this thread waits for the pieces
   * the others took. A worker that wakes late finds little or nothing left:
   * the call never waits for a sleeping thread.
   */
  private run(jobs: number[][]): void {
    if (jobs.length > MAX_PIECES) throw new Error(`wasm kernels: ${jobs.length} pieces, over ${MAX_PIECES}`);
    const words = new Int32Array(this.space.memory.buffer, this.space.jobs, (jobs.length * JOB_BYTES) / 4);
    jobs.forEach((fields, t) => {
      if (fields.length !== JOB_FIELDS) throw new Error('wasm kernels: job record size');
      words.set(fields, (t * JOB_BYTES) / 4);
    });
    if (jobs.length === 1 || this.threads === 1) {
      for (let t = 0; t < jobs.length; t++) this.kernels.run_job(this.space.jobs + t * JOB_BYTES);
      return;
    }
    const ctl = this.control;
    const count = jobs.length;
    Atomics.store(ctl, CTL.count, count);
    Atomics.store(ctl, CTL.done, 0);
    Atomics.store(ctl, CTL.failed, 0);
    Atomics.store(ctl, CTL.next, 0);
    this.generation = this.generation >= 0x3fffffff ? 1 : this.generation + 1;
    Atomics.store(ctl, CTL.generation, this.generation);
    Atomics.notify(ctl, CTL.generation);
    for (;;) {
      const t = Atomics.add(ctl, CTL.next, 1);
      if (t >= count) break;
      this.kernels.run_job(this.space.jobs + t * JOB_BYTES);
      Atomics.add(ctl, CTL.done, 1);
    }
    let spins = 0;
    let slept = 0;
    for (;;) {
      const done = Atomics.load(ctl, CTL.done);
      if (done >= count) break;
      if (++spins <= SPIN) continue;
      if (Atomics.wait(ctl, CTL.done, done, 1000) === 'timed-out' && ++slept >= WORKER_TIMEOUT_S) {
        throw new Error(`wasm kernels: a worker did not finish its piece in ${WORKER_TIMEOUT_S} s`);
      }
    }
    Atomics.store(ctl, CTL.next, CLOSED);
    if (Atomics.load(ctl, CTL.failed)) throw new Error('wasm kernels: a worker failed (its message is on stderr)');
  }

  /** Stops the workers and gives the working space back. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    Atomics.store(this.control, CTL.generation, -1);
    Atomics.notify(this.control, CTL.generation);
    await Promise.all(
      this.workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            w.once('exit', () => resolve());
            w.ref();
          }),
      ),
    );
    this.space.release();
  }
}
