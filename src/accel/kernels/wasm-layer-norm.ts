// Layer norm and its gradient (the fused kernels `PeftLayerNorm`,
// `PeftLayerNormGrad` that core `layerNorm` runs when they are registered) for
// the wasm backend, on the threaded wasm kernels (src/accel/wasm-threads): one
// pass over the rows each way instead of tfjs's chain of Mean, Sub, Square,
// Rsqrt, Mul, Add and Sum on one thread. The contract is the native kernels'
// (src/accel/native/fused-names.ts): forward `{x, weight?, bias?}`, attrs
// `{eps}` → [y, mean `[rows]`, rstd `[rows]`]; gradient `{dy, x, mean, rstd,
// weight?}`, attrs `{biasGrad}` → [dx, dweight (with a weight), dbias].
// Registered only where that pool runs; the native addon's replace them when
// it is active.
import * as tf from '@tensorflow/tfjs';
import { PEFT_LAYER_NORM, PEFT_LAYER_NORM_GRAD } from '../native/fused-names.js';
import { operandOf, type PoolSource } from '../wasm-threads/index.js';
import { asWasm } from './wasm-util.js';

type Args = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };

function rowsCols(name: string, x: tf.TensorInfo): [number, number] {
  if (x.dtype !== 'float32') throw new Error(`${name}: x must be float32, got ${x.dtype}`);
  const n = x.shape.length ? x.shape[x.shape.length - 1]! : 1;
  const size = x.shape.reduce((a, b) => a * b, 1);
  return [n === 0 ? 0 : size / n, n];
}

function vectorOver(name: string, what: string, t: tf.TensorInfo | undefined, n: number): void {
  if (t && (t.dtype !== 'float32' || t.shape.length !== 1 || t.shape[0] !== n)) throw new Error(`${name}: ${what} must be float32 [${n}], got ${t.dtype} [${t.shape}]`);
}

function same(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function makeWasmLayerNormKernels(poolOf: PoolSource): tf.KernelConfig[] {
  const forward = ({ inputs, backend: bk, attrs }: Args) => {
    const backend = asWasm(bk);
    const pool = poolOf();
    const { x, weight, bias } = inputs as { x: tf.TensorInfo; weight?: tf.TensorInfo; bias?: tf.TensorInfo };
    const eps = Number((attrs as { eps?: number } | undefined)?.eps ?? 1e-5);
    const [rows, n] = rowsCols(PEFT_LAYER_NORM, x);
    vectorOver(PEFT_LAYER_NORM, 'weight', weight, n);
    vectorOver(PEFT_LAYER_NORM, 'bias', bias, n);
    const y = backend.makeOutput(x.shape, 'float32');
    const mean = backend.makeOutput([rows], 'float32');
    const rstd = backend.makeOutput([rows], 'float32');
    const op = (t: tf.TensorInfo | undefined) => (t ? operandOf(pool, backend, t) : undefined);
    if (rows * n > 0) pool.layerNorm(op(x)!, op(weight), op(bias), op(y)!, op(mean)!, op(rstd)!, rows, n, eps);
    return [y, mean, rstd];
  };
  const gradient = ({ inputs, backend: bk, attrs }: Args) => {
    const backend = asWasm(bk);
    const pool = poolOf();
    const { dy, x, mean, rstd, weight } = inputs as { dy: tf.TensorInfo; x: tf.TensorInfo; mean: tf.TensorInfo; rstd: tf.TensorInfo; weight?: tf.TensorInfo };
    const biasGrad = Boolean((attrs as { biasGrad?: boolean } | undefined)?.biasGrad);
    const [rows, n] = rowsCols(PEFT_LAYER_NORM_GRAD, x);
    if (!same(dy.shape, x.shape) || !same(mean.shape, [rows]) || !same(rstd.shape, [rows]) || [dy, mean, rstd].some((t) => t.dtype !== 'float32')) {
      throw new Error(`${PEFT_LAYER_NORM_GRAD}: shapes dy ${dy.shape}, x ${x.shape}, mean ${mean.shape}, rstd ${rstd.shape} do not match`);
    }
    vectorOver(PEFT_LAYER_NORM_GRAD, 'weight', weight, n);
    const dx = backend.makeOutput(x.shape, 'float32');
    const dw = weight ? backend.makeOutput([n], 'float32') : undefined;
    const db = biasGrad ? backend.makeOutput([n], 'float32') : undefined;
    const op = (t: tf.TensorInfo | undefined) => (t ? operandOf(pool, backend, t) : undefined);
    if (rows * n > 0) pool.layerNormGrad(op(dy)!, op(x)!, op(mean)!, op(rstd)!, op(weight), op(dx)!, op(dw), op(db), rows, n);
    return [dx, ...(dw ? [dw] : []), ...(db ? [db] : [])];
  };
  return [
    { kernelName: PEFT_LAYER_NORM, backendName: 'wasm', kernelFunc: forward as unknown as tf.KernelFunc },
    { kernelName: PEFT_LAYER_NORM_GRAD, backendName: 'wasm', kernelFunc: gradient as unknown as tf.KernelFunc },
  ];
}
