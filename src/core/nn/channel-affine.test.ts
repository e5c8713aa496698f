// channelAffine's native kernel (PeftChannelAffine) against its composite form
// (a Multiply, then an Add, differentiated by autodiff; every other kernel the
// same): the value and the gradients of x, scale and shift, to the bit, on cpu
// and wasm.
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ensureWasmBackend, onBackend } from '../../../test/support/kernels.js';
import { RUNS, built, expectSameBits, whyNotBuilt } from '../../../test/support/native.js';
import { PEFT_CHANNEL_AFFINE } from '../../accel/native/fused-names.js';
import { fusedKernelActive, registerNativeKernels } from '../../accel/native/index.js';
import { channelAffine, channelAffineComposite } from './channel-affine.js';

if (!built) console.log(`native channelAffine tests skipped: ${whyNotBuilt}`);
const wasmOk = await ensureWasmBackend();

const affineCase = fc.record({
  lead: fc.array(fc.integer({ min: 1, max: 5 }), { maxLength: 3 }),
  c: fc.integer({ min: 1, max: 19 }),
  // batch norm's scales and shifts span magnitudes: products and sums that round
  magnitude: fc.constantFrom(1, 1e-3, 1e3),
  seed: fc.integer({ min: 0, max: 1e6 }),
});
type AffineCase = typeof affineCase extends fc.Arbitrary<infer T> ? T : never;

/** The value and the gradients of sum(y * dy) for x, scale and shift, as Float32Arrays. */
function valueAndGrads(k: AffineCase, op: typeof channelAffine): Float32Array[] {
  return tf.tidy(() => {
    const shape = [...k.lead, k.c];
    const x = tf.randomUniform(shape, -3, 3, 'float32', k.seed);
    const scale = tf.randomUniform([k.c], -k.magnitude, k.magnitude, 'float32', k.seed + 1);
    const shift = tf.randomUniform([k.c], -k.magnitude, k.magnitude, 'float32', k.seed + 2);
    const dy = tf.randomUniform(shape, -1, 1, 'float32', k.seed + 3);
    const f = (a: tf.Tensor, s: tf.Tensor, t: tf.Tensor) => tf.sum(tf.mul(op(a, s, t), dy));
    const grads = tf.grads(f)([x, scale, shift]);
    return [op(x, scale, shift), ...grads].map((t) => t.dataSync() as Float32Array);
  });
}

describe.skipIf(!built)('channelAffine on the native kernel', () => {
  for (const backend of ['cpu', 'wasm']) {
    it.skipIf(backend === 'wasm' && !wasmOk)(`equals a Multiply then an Add to the bit, value and gradients, on ${backend}`, async () => {
      await onBackend(backend, () => {
        registerNativeKernels(backend);
        expect(fusedKernelActive(PEFT_CHANNEL_AFFINE)).toBe(true);
        fc.assert(
          fc.property(affineCase, (k) => {
            const got = valueAndGrads(k, channelAffine);
            const want = valueAndGrads(k, channelAffineComposite);
            expectSameBits(got, want, `${backend} ${JSON.stringify(k)}`, ['y', 'dx', 'dscale', 'dshift']);
          }),
          { numRuns: RUNS },
        );
      });
    });
  }

  it('names the culprit when scale or shift is not a vector over the last axis', () => {
    const x = tf.zeros([2, 3, 4]);
    expect(() => channelAffine(x, tf.ones([3]), tf.zeros([4]))).toThrow(/scale 3 and shift 4 must be vectors over x's last axis \(x 2,3,4\)/);
    expect(() => channelAffine(x, tf.ones([4]), tf.zeros([1, 4]))).toThrow(/must be vectors/);
    tf.dispose(x);
  });
});
