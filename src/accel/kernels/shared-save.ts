// Saving a tensor for the backward pass without a kernel call. TensorFlow.js's
// engine keeps every tensor a kernel saves for its gradient as a clone: one
// `Identity` kernel run through the whole engine machinery (kernel lookup,
// profiling hooks, output tracking) plus a tape node for the clone itself, so
// that a higher-order gradient could flow through it. A w1 training step saved
// 400-900 tensors that way (~5-10 µs of JavaScript each), the largest count of
// any kernel. Here, while a first-order gradient records (gradient depth 1),
// the clone is a second tensor on the same data (the backend's reference count
// goes up, as the wasm Identity and the cpu backend's do anyway) and no tape
// node: a tensor saved at depth 1 is only read by that gradient's own backward
// pass, which nothing differentiates. Nested (higher-order) recording keeps the
// engine's clone.
import * as tf from '@tensorflow/tfjs';

interface BackendLike {
  incRef?(dataId: object): void;
}

interface EngineLike {
  state: { gradientDepth: number; tensorInfo: { get(dataId: object): { backend: BackendLike } | undefined } };
  clone(x: tf.Tensor): tf.Tensor;
  makeTensorFromDataId(dataId: object, shape: number[], dtype: tf.DataType, backend?: BackendLike): tf.Tensor;
}

const ORIGINAL = Symbol('peftjs.originalClone');

type Patched = EngineLike & { [ORIGINAL]?: (x: tf.Tensor) => tf.Tensor };

/** Installs the shared save on the engine (idempotent). Returns whether it is installed. */
export function installSharedSave(): boolean {
  const engine = tf.engine() as unknown as Patched;
  if (engine[ORIGINAL]) return true;
  if (typeof engine.clone !== 'function' || typeof engine.makeTensorFromDataId !== 'function' || !engine.state?.tensorInfo) return false;
  const original = engine.clone.bind(engine);
  engine[ORIGINAL] = original;
  engine.clone = (x: tf.Tensor): tf.Tensor => {
    const backend = engine.state.gradientDepth <= 1 && x.dtype !== 'string' ? engine.state.tensorInfo.get(x.dataId)?.backend : undefined;
    if (!backend || typeof backend.incRef !== 'function') return original(x);
    backend.incRef(x.dataId);
    return engine.makeTensorFromDataId(x.dataId, x.shape, x.dtype, backend);
  };
  return true;
}

/** Puts the engine's own clone back (tests). */
export function uninstallSharedSave(): void {
  const engine = tf.engine() as unknown as Patched;
  if (!engine[ORIGINAL]) return;
  delete (engine as { clone?: unknown }).clone; // the prototype's again
  delete engine[ORIGINAL];
}
