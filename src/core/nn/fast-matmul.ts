// `matMul`: tf.matMul's semantics, fast on the wasm backend.
//
// The wasm backend multiplies fast (XNNPACK, tens of GFLOP/s) only a 2-D (or
// batch-1) product without transpose flags; a batched or transposed product
// falls back to loops ~10x slower, and tf.matMul's own gradient uses transpose
// flags. On wasm this routes products to the `PeftMatMul` kernel
// (`src/core/kernels/wasm-matmul.ts`): explicit transposes (cached for frozen
// weights), batches as one fast 2-D product per matrix, and a gradient made of
// the same fast products. On every other backend it is tf.matMul itself.
import * as tf from '@tensorflow/tfjs';
import { productLead, pruneTape, runPeftMatMul, wasmKernelsActive } from '../../accel/kernels/index.js';

/** A frozen weight: constant between calls, so its transpose can be kept. */
function isConstant(t: tf.Tensor): boolean {
  return t instanceof tf.Variable && !t.trainable;
}

/** Whether `matMul`/`linear` take the fast path on the active backend. */
export function fastMatMulActive(): boolean {
  return wasmKernelsActive();
}

/**
 * `op(a) · op(b)` (+ `bias` over the last axis), op = transpose of the last two
 * axes when its flag is set, as tf.matMul. Fast on wasm for operands with
 * equal leading axes or one side's all 1 (a weight shared by a batch); other
 * broadcasts fall back to tf.matMul.
 */
export function matMul(a: tf.Tensor, b: tf.Tensor, transposeA = false, transposeB = false, bias?: tf.Tensor): tf.Tensor {
  pruneTape();
  const fast = fastMatMulActive() && a.dtype === 'float32' && b.dtype === 'float32' && productLead(a.shape, b.shape) !== undefined;
  if (!fast) return plain(a, b, transposeA, transposeB, bias);
  const attrs = { transposeA, transposeB, cacheA: isConstant(a), cacheB: isConstant(b) };
  const n = transposeB ? b.shape[b.rank - 2]! : b.shape[b.rank - 1]!;
  const fused = bias && bias.rank === 1 && bias.dtype === 'float32' && bias.shape[0] === n;
  if (!bias || fused) return runPeftMatMul(a, b, attrs, bias);
  return tf.tidy(() => tf.add(runPeftMatMul(a, b, attrs), bias));
}

function plain(a: tf.Tensor, b: tf.Tensor, transposeA: boolean, transposeB: boolean, bias?: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    if (a.rank >= 2 && b.rank >= 2 && !tf.util.arraysEqual(a.shape.slice(0, -2), b.shape.slice(0, -2))) {
      // tf.matMul's gradient does not sum over broadcast leading axes: broadcast explicitly
      const lead = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
      a = tf.broadcastTo(a, [...lead, ...a.shape.slice(-2)]);
      b = tf.broadcastTo(b, [...lead, ...b.shape.slice(-2)]);
    }
    const y = tf.matMul(a, b, transposeA, transposeB);
    return bias ? tf.add(y, bias) : y;
  });
}

