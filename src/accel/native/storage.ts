// Where a backend keeps a float32 tensor's data, as (array, element offset)
// pairs the addon reads and writes in place:
//
// - wasm: the whole heap (`HEAPF32`) and the tensor's `memoryOffset / 4`. The
//   heap may grow (and be replaced) when a tensor is allocated, so views are
//   taken after every output of a kernel is allocated.
// - cpu: the tensor's own Float32Array (`backend.data.get(dataId).values`),
//   offset 0; outputs are new Float32Arrays handed to the backend.
import * as tf from '@tensorflow/tfjs';

export interface View {
  array: Float32Array;
  offset: number;
}

export interface Storage {
  /** Whether the tensor's data can be passed to the addon as it is. */
  usable(t: tf.TensorInfo): boolean;
  /** A new float32 tensor (contents unspecified). */
  alloc(shape: number[]): tf.TensorInfo;
  /** The tensor's data (call after the kernel's allocations). */
  view(t: tf.TensorInfo): View;
}

interface WasmBackendLike {
  wasm: { HEAPF32: Float32Array };
  dataIdMap: { get(dataId: object): { memoryOffset: number } | undefined };
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
}

interface CpuBackendLike {
  data: { get(dataId: object): { values?: unknown } | undefined };
  makeTensorInfo(shape: number[], dtype: tf.DataType, values?: Float32Array): tf.TensorInfo;
}

const MAX_INT32 = 2 ** 31 - 1;

export function wasmStorage(backend: unknown): Storage {
  const b = backend as WasmBackendLike;
  return {
    usable: (t) => t.dtype === 'float32' && b.dataIdMap.get(t.dataId) !== undefined,
    alloc: (shape) => b.makeOutput(shape, 'float32'),
    view: (t) => {
      const d = b.dataIdMap.get(t.dataId);
      if (!d) throw new Error('native kernel: tensor data not found (disposed?)');
      if (d.memoryOffset % 4 !== 0) throw new Error('native kernel: misaligned tensor in the wasm heap');
      return { array: b.wasm.HEAPF32, offset: d.memoryOffset / 4 };
    },
  };
}

export function cpuStorage(backend: unknown): Storage {
  const b = backend as CpuBackendLike;
  const values = (t: tf.TensorInfo) => b.data.get(t.dataId)?.values;
  return {
    usable: (t) => {
      const v = values(t);
      return t.dtype === 'float32' && v instanceof Float32Array && v.length <= MAX_INT32;
    },
    alloc: (shape) => b.makeTensorInfo(shape, 'float32', new Float32Array(shape.reduce((x, y) => x * y, 1))),
    view: (t) => ({ array: values(t) as Float32Array, offset: 0 }),
  };
}

export function storageFor(backendName: string, backend: unknown): Storage {
  return backendName === 'wasm' ? wasmStorage(backend) : cpuStorage(backend);
}
