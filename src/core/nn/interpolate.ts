// PyTorch's F.interpolate (align_corners=False) for 'linear' and 'bicubic',
// written as interpolation matrices so that a resize is a matrix product:
// exact, differentiable, and on the fast matmul path.
import * as tf from '@tensorflow/tfjs';

export type InterpolationMode = 'linear' | 'bicubic';

const A = -0.75; // PyTorch's bicubic coefficient

function cubic1(x: number): number {
  return ((A + 2) * x - (A + 3)) * x * x + 1;
}

function cubic2(x: number): number {
  return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
}

/**
 * The `[outSize, inSize]` matrix M with `resized = M · input` along one axis,
 * as PyTorch computes it for `size=outSize` (scale = in / out).
 */
export function interpolationMatrix(inSize: number, outSize: number, mode: InterpolationMode): Float32Array {
  const m = new Float32Array(outSize * inSize);
  const scale = inSize / outSize;
  for (let o = 0; o < outSize; o++) {
    const real = scale * (o + 0.5) - 0.5;
    if (mode === 'linear') {
      const src = Math.max(real, 0);
      const i0 = Math.floor(src);
      const i1 = i0 < inSize - 1 ? i0 + 1 : i0;
      const l1 = src - i0;
      m[o * inSize + i0]! += 1 - l1;
      m[o * inSize + i1]! += l1;
    } else {
      const i = Math.floor(real);
      const t = real - i;
      const w = [cubic2(t + 1), cubic1(t), cubic1(1 - t), cubic2(2 - t)];
      for (let k = 0; k < 4; k++) {
        const idx = Math.min(Math.max(i - 1 + k, 0), inSize - 1);
        m[o * inSize + idx]! += w[k]!;
      }
    }
  }
  return m;
}

/** Resizes `x [L, ...]` along its first axis to `outSize` rows. */
export function resizeFirstAxis(x: tf.Tensor, outSize: number, mode: InterpolationMode): tf.Tensor {
  const inSize = x.shape[0]!;
  if (inSize === outSize) return x.clone();
  return tf.tidy(() => {
    const rest = x.shape.slice(1);
    const m = tf.tensor2d(interpolationMatrix(inSize, outSize, mode), [outSize, inSize]);
    const y = tf.matMul(m, tf.reshape(x, [inSize, -1]));
    return tf.reshape(y, [outSize, ...rest]);
  });
}

/** Resizes a channels-last grid `x [H, W, C]` to `[outH, outW, C]` (separable, as PyTorch). */
export function resizeGrid(x: tf.Tensor3D, outH: number, outW: number, mode: InterpolationMode): tf.Tensor3D {
  const [h, w, c] = x.shape;
  if (h === outH && w === outW) return x.clone();
  return tf.tidy(() => {
    const rows = resizeFirstAxis(x, outH, mode); // [outH, W, C]
    const cols = resizeFirstAxis(tf.transpose(rows, [1, 0, 2]), outW, mode); // [outW, outH, C]
    return tf.transpose(cols, [1, 0, 2]) as tf.Tensor3D;
  });
}
