// Access to the tfjs wasm backend's tensor storage from JavaScript kernels, as
// tfjs-backend-wasm's own JS kernels do it: a tensor's bytes live in the wasm
// heap at `dataIdMap.get(dataId).memoryOffset`; C++ kernels find tensors by a
// numeric id registered with `tfjs.registerTensor(id, size, offset)`.
//
// `aliasTensor` registers a C++ id for a sub-range of an existing tensor (one
// matrix of a batch) so that the backend's fast 2-D matrix product can run on
// it in place; `releaseAlias` unregisters it without freeing the memory.
import type * as tf from '@tensorflow/tfjs';

export interface WasmTensorData {
  id: number;
  memoryOffset: number;
  shape: number[];
  dtype: tf.DataType;
  refCount: number;
}

export interface WasmModule {
  HEAPU8: Uint8Array;
  HEAPF32: Float32Array;
  HEAP32: Int32Array;
  cwrap(name: string, ret: string | null, args: string[]): (...args: unknown[]) => unknown;
  tfjs: {
    registerTensor(id: number, size: number, memoryOffset: number): void;
    disposeData(id: number): void;
  };
}

/** The parts of tfjs-backend-wasm's `BackendWasm` that the kernels here use. */
export interface WasmBackend {
  wasm: WasmModule;
  dataIdNextNumber: number;
  dataIdMap: { get(dataId: object): WasmTensorData | undefined; has(dataId: object): boolean };
  makeOutput(shape: number[], dtype: tf.DataType, memoryOffset?: number): tf.TensorInfo;
  disposeData(dataId: object, force?: boolean): boolean;
  incRef(dataId: object): void;
  readSync(dataId: object): tf.backend_util.BackendValues;
}

export function asWasm(backend: unknown): WasmBackend {
  return backend as WasmBackend;
}

export function dataOf(backend: WasmBackend, t: tf.TensorInfo): WasmTensorData {
  const d = backend.dataIdMap.get(t.dataId);
  if (!d) throw new Error('wasm kernel: tensor data not found (disposed?)');
  return d;
}

/** The C++ id of a tensor. */
export function idOf(backend: WasmBackend, t: tf.TensorInfo): number {
  return dataOf(backend, t).id;
}

/** Byte offset of a tensor in the wasm heap. */
export function offsetOf(backend: WasmBackend, t: tf.TensorInfo): number {
  return dataOf(backend, t).memoryOffset;
}

/** A Float32Array view of a float32 tensor (valid until the heap grows: take views after allocating). */
export function f32View(backend: WasmBackend, t: tf.TensorInfo): Float32Array {
  const size = t.shape.reduce((a, b) => a * b, 1);
  return new Float32Array(backend.wasm.HEAPU8.buffer, offsetOf(backend, t), size);
}

/** Registers a C++ id for `size` float32 elements at `byteOffset` (inside an existing tensor). */
export function aliasTensor(backend: WasmBackend, byteOffset: number, size: number): number {
  const id = backend.dataIdNextNumber++;
  backend.wasm.tfjs.registerTensor(id, size, byteOffset);
  return id;
}

/** Unregisters an alias (and any cached operator built on it); the memory stays with its owner. */
export function releaseAlias(backend: WasmBackend, id: number): void {
  backend.wasm.tfjs.disposeData(id);
}

/** Shape as the byte array the C++ kernels take. */
export function shapeBytes(shape: number[]): Uint8Array {
  return new Uint8Array(new Int32Array(shape).buffer);
}

type MatMulFn = (
  aId: number,
  aShape: Uint8Array,
  aRank: number,
  bId: number,
  bShape: Uint8Array,
  bRank: number,
  transposeA: boolean,
  transposeB: boolean,
  outId: number,
) => void;

export interface WasmFunctions {
  batchMatMul: MatMulFn;
}

const fnCache = new WeakMap<WasmModule, WasmFunctions>();

/** The backend's C++ entry points (wrapped once per wasm module). */
export function wasmFunctions(backend: WasmBackend): WasmFunctions {
  let fns = fnCache.get(backend.wasm);
  if (!fns) {
    const w = backend.wasm;
    fns = {
      batchMatMul: w.cwrap('BatchMatMul', null, ['number', 'array', 'number', 'number', 'array', 'number', 'number', 'number', 'number']) as MatMulFn,
    };
    fnCache.set(backend.wasm, fns);
  }
  return fns;
}

/**
 * The backend caches one XNNPACK operator (with the packed right-hand matrix)
 * per right-hand tensor id, keyed by the id alone. Data shared between tensors
 * of different shapes (reshape, identity, a transpose that moves no data) can
 * reach a product as `[k, n]` once and `[k', n']` later: the cached operator
 * would then be wrong. This records the `[k, n]` each buffer was first used as
 * and hands out a fresh temporary id for any other shape.
 */
const weightShapes = new WeakMap<object, string>();

export function weightsId(backend: WasmBackend, t: tf.TensorInfo, k: number, n: number): { id: number; temp: boolean } {
  const shape = `${k},${n}`;
  const seen = weightShapes.get(t.dataId);
  if (seen === undefined) weightShapes.set(t.dataId, shape);
  if (seen === undefined || seen === shape) return { id: idOf(backend, t), temp: false };
  return { id: aliasTensor(backend, offsetOf(backend, t), k * n), temp: true };
}
