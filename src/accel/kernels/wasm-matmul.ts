// `PeftMatMul`: a matrix product for the wasm backend that always reaches the
// backend's fast path (XNNPACK's fully-connected operator, ~10-20x the
// backend's generic loops). That path only runs for one `[m, k] x [k, n]`
// product without transpose flags, so this kernel
//
// - transposes explicitly (one C++ Transpose of the whole operand) instead of
//   passing transpose flags, and keeps the transposes of operands the caller
//   marks as constant (`cacheA`/`cacheB`: frozen weights) keyed by their data,
//   so a frozen weight is transposed — and packed by XNNPACK — once;
// - runs a batch as one fast 2-D product per matrix, in place: each matrix of
//   the operands and the output is registered under a temporary C++ id that
//   points into the batch's memory (no slicing, no copies);
// - computes `(op(b)^T op(a)^T)^T` instead when that transposes less (a small
//   result of two large operands, e.g. the gradient of a low-rank factor);
// - adds an optional bias (`[n]`) after the product, as tf.add would.
//
// Inputs `a [..., m, k]`, `b [..., k, n]` (before transposition) with equal
// leading axes, or one side's leading axes all 1 (see `productLead`). The
// gradient is registered for every backend but the kernel only for wasm: core
// `matMul` uses plain `tf.matMul` elsewhere.
//
// The backend's own BatchMatMul (tf.matMul and its gradient) is replaced by
// the same fast product too (`makeBatchMatMulKernel`), keeping the transposes
// of frozen 2-D weights, so models that call tf.matMul directly speed up.
//
// Where the threaded wasm kernels run (src/accel/wasm-threads), every such
// product goes to them instead of XNNPACK: transposed operands are read in
// place there, so none of the above transposes or flips happen.
import * as tf from '@tensorflow/tfjs';
import { operandOf, wasmKernelPool } from '../wasm-threads/index.js';
import { aliasTensor, asWasm, dataOf, idOf, releaseAlias, shapeBytes, wasmFunctions, weightsId, type WasmBackend } from './wasm-util.js';

export const PEFT_MATMUL = 'PeftMatMul';

export interface PeftMatMulAttrs {
  transposeA: boolean;
  transposeB: boolean;
  /** `a` is constant between calls (a frozen weight): keep its transpose. */
  cacheA: boolean;
  cacheB: boolean;
}

interface CacheEntry {
  /** The operand's shape (one buffer may be seen under several shapes). */
  shape: string;
  transposed: tf.TensorInfo;
}

/** Transposes of constant operands, keyed by the operand's data (freed once that data is gone). */
const transposeCache = new Map<object, CacheEntry[]>();
let sweepAt = 64;
let cacheOwner: WasmBackend | undefined;

function sweep(backend: WasmBackend): void {
  for (const [key, entries] of transposeCache) {
    if (!backend.dataIdMap.has(key)) {
      for (const e of entries) backend.disposeData(e.transposed.dataId);
      transposeCache.delete(key);
    }
  }
  sweepAt = Math.max(64, 2 * transposeCache.size);
}

/** Frees every cached transpose (tests; a backend switch). */
export function clearTransposeCache(): void {
  const b = cacheOwner;
  if (b) {
    for (const entries of transposeCache.values()) {
      for (const e of entries) if (b.dataIdMap.has(e.transposed.dataId)) b.disposeData(e.transposed.dataId);
    }
  }
  transposeCache.clear();
  sweepAt = 64;
}

/** Number of cached transposes (tests). */
export function transposeCacheSize(): number {
  let n = 0;
  for (const entries of transposeCache.values()) n += entries.length;
  return n;
}

/** The operand with its last two axes swapped; `temp` when the caller must free it. */
function transposed(backend: WasmBackend, x: tf.TensorInfo, cache: boolean): { info: tf.TensorInfo; temp: boolean } {
  if (!cache) return { info: transposeAny(backend, x), temp: true };
  if (cacheOwner !== backend) {
    transposeCache.clear();
    cacheOwner = backend;
  }
  const shape = x.shape.join(',');
  const entries = transposeCache.get(x.dataId);
  const hit = entries?.find((e) => e.shape === shape);
  if (hit) return { info: hit.transposed, temp: false };
  if (!entries && transposeCache.size >= sweepAt) sweep(backend);
  const t = transposeAny(backend, x);
  // a transpose that moves no data (a row or column vector) shares the buffer: nothing to keep
  if (t.dataId === x.dataId) return { info: t, temp: true };
  const entry = { shape, transposed: t };
  if (entries) entries.push(entry);
  else transposeCache.set(x.dataId, [entry]);
  return { info: t, temp: false };
}

function transposeAny(backend: WasmBackend, x: tf.TensorInfo): tf.TensorInfo {
  const r = x.shape.length;
  const perm = [...Array(r).keys()];
  [perm[r - 2], perm[r - 1]] = [r - 1, r - 2];
  return tf.getKernel('Transpose', 'wasm').kernelFunc({ inputs: { x }, backend: backend as never, attrs: { perm } }) as tf.TensorInfo;
}

/**
 * The leading (batch) axes of the product of operands of these shapes, when
 * the fast product covers them: equal leading axes, or one side's all 1.
 */
export function productLead(aShape: number[], bShape: number[]): number[] | undefined {
  if (aShape.length < 2 || bShape.length < 2) return undefined;
  const la = aShape.slice(0, -2);
  const lb = bShape.slice(0, -2);
  const batchA = la.reduce((x, y) => x * y, 1);
  const batchB = lb.reduce((x, y) => x * y, 1);
  if (batchB === 1 && la.length >= lb.length) return la;
  if (batchA === 1 && lb.length >= la.length) return lb;
  if (la.length === lb.length && la.every((d, i) => d === lb[i])) return la;
  return undefined;
}

/**
 * The product, then the bias added by the backend's Add kernel: the bias joins
 * after the product's sum, as in `tf.add(matMul(a, b), bias)`, to the bit
 * (XNNPACK's fused bias starts its sums from the bias instead).
 */
function productThenBias(
  backend: WasmBackend,
  a: tf.TensorInfo,
  b: tf.TensorInfo,
  transposeA: boolean,
  transposeB: boolean,
  cacheA: boolean,
  cacheB: boolean,
  bias: tf.TensorInfo,
  mayFlip: boolean,
): tf.TensorInfo | undefined {
  const n = transposeB ? b.shape[b.shape.length - 2]! : b.shape[b.shape.length - 1]!;
  if (bias.shape.length !== 1 || bias.shape[0] !== n || bias.dtype !== 'float32') return undefined;
  const add = tf.getKernel('Add', 'wasm');
  if (!add) return undefined;
  const y = fastProduct(backend, a, b, transposeA, transposeB, cacheA, cacheB, undefined, mayFlip);
  if (!y) return undefined;
  const out = add.kernelFunc({ inputs: { a: y, b: bias }, backend: backend as never, attrs: {} }) as tf.TensorInfo;
  backend.disposeData(y.dataId);
  return out;
}

/**
 * `op(a) op(b) (+ bias)` for `a [...la, ., .]`, `b [...lb, ., .]` whose leading
 * axes are equal, or one side's are all 1 (shared by every matrix of the
 * other). Undefined when the operands are outside that (the caller falls back).
 */
export function fastProduct(
  backend: WasmBackend,
  a: tf.TensorInfo,
  b: tf.TensorInfo,
  transposeA: boolean,
  transposeB: boolean,
  cacheA: boolean,
  cacheB: boolean,
  bias?: tf.TensorInfo,
  mayFlip = true,
): tf.TensorInfo | undefined {
  const ra = a.shape.length;
  const rb = b.shape.length;
  if (ra < 2 || rb < 2 || a.dtype !== 'float32' || b.dtype !== 'float32') return undefined;
  if (bias) return productThenBias(backend, a, b, transposeA, transposeB, cacheA, cacheB, bias, mayFlip);
  const lead = productLead(a.shape, b.shape);
  if (!lead) return undefined;
  const batchA = a.shape.slice(0, -2).reduce((x, y) => x * y, 1);
  const batchB = b.shape.slice(0, -2).reduce((x, y) => x * y, 1);
  const [ar, ac] = a.shape.slice(-2) as [number, number];
  const [br, bc] = b.shape.slice(-2) as [number, number];
  const m = transposeA ? ac : ar;
  const k = transposeA ? ar : ac;
  const n = transposeB ? br : bc;
  if (k !== (transposeB ? bc : br)) throw new Error(`matMul: inner sizes differ (${a.shape} x ${b.shape}, transposeA=${transposeA}, transposeB=${transposeB})`);
  const batch = Math.max(batchA, batchB);
  const pool = wasmKernelPool();
  if (pool) {
    // the threaded product reads transposed operands in place
    const out = backend.makeOutput([...lead, m, n], 'float32');
    pool.product({ a: operandOf(pool, backend, a), b: operandOf(pool, backend, b), out: operandOf(pool, backend, out), batchA, batchB, m, k, n, transposeA, transposeB });
    return out;
  }
  if (mayFlip && batch * m * n * k > 0) {
    // op(a) op(b) = (op(b)^T op(a)^T)^T: when that transposes fewer elements
    // (a small result of two large operands, as dL/dW of a low-rank layer), take it
    const cost = (t: boolean, size: number, cached: boolean) => (t && !cached ? size : 0);
    const direct = cost(transposeA, batchA * k * m, cacheA) + cost(transposeB, batchB * k * n, cacheB);
    const flipped = cost(!transposeB, batchB * k * n, cacheB) + cost(!transposeA, batchA * k * m, cacheA) + batch * m * n;
    if (flipped < direct) {
      const t = fastProduct(backend, b, a, !transposeB, !transposeA, cacheB, cacheA, undefined, false)!;
      const out = transposeAny(backend, t);
      backend.disposeData(t.dataId);
      return out;
    }
  }
  const out = backend.makeOutput([...lead, m, n], 'float32');
  if (m * n * batch === 0) return out;
  if (k === 0) {
    new Float32Array(backend.wasm.HEAPU8.buffer, dataOf(backend, out).memoryOffset, batch * m * n).fill(0);
    return out;
  }

  const A = transposeA ? transposed(backend, a, cacheA) : { info: a, temp: false };
  const B = transposeB ? transposed(backend, b, cacheB) : { info: b, temp: false };
  const fns = wasmFunctions(backend);
  const run = (rows: number, aId: number, bId: number, outId: number) => {
    const aShape = shapeBytes([1, rows, k]);
    const bShape = shapeBytes([1, k, n]);
    fns.batchMatMul(aId, aShape, 3, bId, bShape, 3, false, false, outId);
  };
  // the right-hand matrix, when one for the whole batch (its packed form is cached by id)
  const wB = batchB === 1 ? weightsId(backend, B.info, k, n) : undefined;
  try {
    if (batch === 1 || (batchB === 1 && !transposeA)) {
      // one product: a's matrices stacked row-wise share b
      run(batch * m, idOf(backend, A.info), wB!.id, idOf(backend, out));
    } else {
      const ao = dataOf(backend, A.info).memoryOffset;
      const bo = dataOf(backend, B.info).memoryOffset;
      const oo = dataOf(backend, out).memoryOffset;
      const sharedA = batchA === 1 ? idOf(backend, A.info) : 0;
      const sharedB = wB ? wB.id : 0;
      for (let i = 0; i < batch; i++) {
        const ai = sharedA || aliasTensor(backend, ao + 4 * i * m * k, m * k);
        const bi = sharedB || aliasTensor(backend, bo + 4 * i * k * n, k * n);
        const oi = aliasTensor(backend, oo + 4 * i * m * n, m * n);
        try {
          run(m, ai, bi, oi);
        } finally {
          if (!sharedA) releaseAlias(backend, ai);
          if (!sharedB) releaseAlias(backend, bi);
          releaseAlias(backend, oi);
        }
      }
    }
  } finally {
    if (wB?.temp) releaseAlias(backend, wB.id);
    if (A.temp) backend.disposeData(A.info.dataId);
    if (B.temp) backend.disposeData(B.info.dataId);
  }
  return out;
}

function peftMatMul({ inputs, backend: anyBackend, attrs }: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }) {
  const backend = asWasm(anyBackend);
  const { transposeA, transposeB, cacheA, cacheB } = attrs as unknown as PeftMatMulAttrs;
  const out = fastProduct(backend, inputs.a!, inputs.b!, transposeA, transposeB, cacheA, cacheB, inputs.bias);
  if (!out) throw new Error(`${PEFT_MATMUL}: unsupported operands ${inputs.a!.shape} x ${inputs.b!.shape}`);
  return out;
}

/** Whether `dataId` holds a frozen (non-trainable) variable's value. */
function frozenVariableData(dataId: object): boolean {
  const vars = tf.engine().registeredVariables as Record<string, tf.Variable>;
  for (const name in vars) {
    const v = vars[name]!;
    if (v.dataId === dataId) return !v.trainable;
  }
  return false;
}

/**
 * The backend's own BatchMatMul (what tf.matMul and its gradient run),
 * replaced by the fast product; the transposes of frozen 2-D weights are kept.
 * Broadcasts it does not cover go to the original kernel.
 */
export function makeBatchMatMulKernel(original: tf.KernelFunc | undefined): tf.KernelConfig {
  const kernelFunc = (args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }) => {
    const backend = asWasm(args.backend);
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const { transposeA, transposeB } = args.attrs as { transposeA: boolean; transposeB: boolean };
    const cacheA = transposeA && a.shape.length === 2 && frozenVariableData(a.dataId);
    const cacheB = transposeB && b.shape.length === 2 && frozenVariableData(b.dataId);
    const out = fastProduct(backend, a, b, transposeA, transposeB, cacheA, cacheB);
    if (out) return out;
    if (!original) throw new Error(`BatchMatMul (wasm): unsupported operands ${a.shape} x ${b.shape}`);
    return original(args as never);
  };
  return { kernelName: 'BatchMatMul', backendName: 'wasm', kernelFunc: kernelFunc as unknown as tf.KernelFunc };
}

/** Runs the kernel (wasm only): `op(a) op(b) (+ bias)`. */
export function runPeftMatMul(a: tf.Tensor, b: tf.Tensor, attrs: PeftMatMulAttrs, bias?: tf.Tensor): tf.Tensor {
  const inputs: Record<string, tf.Tensor> = bias ? { a, b, bias } : { a, b };
  return tf.engine().runKernel(PEFT_MATMUL, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
}

/** Sums `t` over the axes along which `shape` was broadcast to `t`'s shape. */
function reduceTo(t: tf.Tensor, shape: number[]): tf.Tensor {
  if (t.shape.length === shape.length && t.shape.every((d, i) => d === shape[i])) return t;
  const axes = tf.backend_util.getReductionAxes(shape, t.shape);
  return tf.reshape(axes.length ? tf.sum(t, axes) : t, shape);
}

function gradient(dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: tf.NamedAttrMap) {
  const g = dy as tf.Tensor;
  const [a, b] = saved as [tf.Tensor, tf.Tensor];
  const { transposeA: tA, transposeB: tB, cacheA, cacheB } = attrs as unknown as PeftMatMulAttrs;
  const mm = (x: tf.Tensor, y: tf.Tensor, transposeA: boolean, transposeB: boolean, cx: boolean, cy: boolean) =>
    runPeftMatMul(x, y, { transposeA, transposeB, cacheA: cx, cacheB: cy });
  const fold = (x: tf.Tensor) => tf.reshape(x, [-1, x.shape[x.rank - 1]!]);
  return {
    // d op(a) = dy op(b)^T ; d op(b) = op(a)^T dy ; summed over broadcast matrices
    a: () => reduceTo(tA ? mm(b, g, tB, true, cacheB, false) : mm(g, b, false, !tB, false, cacheB), a.shape),
    b: () => {
      if (b.rank === 2 && a.rank > 2 && !tA) {
        // every row of a met the same b: one product over all rows
        const a2 = fold(a);
        const g2 = fold(g);
        return tB ? mm(g2, a2, true, false, false, cacheA) : mm(a2, g2, true, false, cacheA, false);
      }
      return reduceTo(tB ? mm(g, a, true, tA, false, cacheA) : mm(a, g, !tA, false, cacheA, false), b.shape);
    },
    bias: () => tf.sum(g, g.shape.slice(0, -1).map((_, i) => i)),
  };
}

export const peftMatMulKernel: tf.KernelConfig = {
  kernelName: PEFT_MATMUL,
  backendName: 'wasm',
  kernelFunc: peftMatMul as unknown as tf.KernelFunc,
};

export const peftMatMulGradient: tf.GradConfig = {
  kernelName: PEFT_MATMUL,
  inputsToSave: ['a', 'b'],
  gradFunc: gradient,
};
