// SAM's decomposed relative-position bias (segment-anything
// `modeling/image_encoder.py`: `get_rel_pos`, `add_decomposed_rel_pos`),
// written without gather and without einsum so that it runs, forward and
// backward, on every TensorFlow.js backend (wasm has neither Einsum nor the
// UnsortedSegmentSum that gather's gradient needs):
//
// - the lookup `table[q - k + K - 1]` (after the table is resized to 2K - 1
//   rows) is one constant matrix product: `P [q*k, L] · table [L, C]`, where P
//   composes the linear resize (PyTorch `F.interpolate(mode="linear")`) with
//   the one-hot row selection;
// - the two einsums (adding the bias to the logits) are part of core
//   `packedAttention`, which takes the looked-up tables.
import { interpolationMatrix, tf } from '../../src/index.js';

const lookupCache = new Map<string, Float32Array>();

/**
 * The `[qSize * kSize, tableLen]` matrix P with `P · table = get_rel_pos(qSize,
 * kSize, table)` flattened over (q, k): row (i, j) holds the interpolation
 * weights of relative position `i*max(k/q,1) - j*max(q/k,1) + (k-1)*max(q/k,1)`
 * in the table resized to `2*max(q,k) - 1` rows.
 */
export function relPosLookupMatrix(qSize: number, kSize: number, tableLen: number): Float32Array {
  const key = `${qSize},${kSize},${tableLen}`;
  const cached = lookupCache.get(key);
  if (cached) return cached;
  const maxRel = 2 * Math.max(qSize, kSize) - 1;
  const resize = tableLen === maxRel ? undefined : interpolationMatrix(tableLen, maxRel, 'linear');
  const qScale = Math.max(kSize / qSize, 1);
  const kScale = Math.max(qSize / kSize, 1);
  const m = new Float32Array(qSize * kSize * tableLen);
  for (let i = 0; i < qSize; i++) {
    for (let j = 0; j < kSize; j++) {
      // PyTorch's `.long()` truncates; the coordinate is never negative.
      const rel = Math.trunc(i * qScale - j * kScale + (kSize - 1) * kScale);
      const row = (i * kSize + j) * tableLen;
      if (resize) m.set(resize.subarray(rel * tableLen, (rel + 1) * tableLen), row);
      else m[row + rel] = 1;
    }
  }
  lookupCache.set(key, m);
  return m;
}

/** `get_rel_pos`: the table `[L, C]` looked up for every (query, key) pair → `[qSize, kSize, C]`. */
export function relPosTable(table: tf.Tensor, qSize: number, kSize: number): tf.Tensor3D {
  return tf.tidy(() => {
    const [len, c] = table.shape as [number, number];
    const p = tf.tensor2d(relPosLookupMatrix(qSize, kSize, len), [qSize * kSize, len]);
    return tf.reshape(tf.matMul(p, table), [qSize, kSize, c]) as tf.Tensor3D;
  });
}
