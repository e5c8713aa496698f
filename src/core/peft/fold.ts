// Folding an update into a weight so that unfolding gives the weight back
// bit for bit: float32 `(W + d) - d` is usually, not always, `W`, so the
// rounding error is kept as a correction (or, if even that is not exact, the
// original weight is kept).
import * as tf from '@tensorflow/tfjs';
import type { Parameter } from '../nn/parameter.js';

function allEqual(a: tf.Tensor, b: tf.Tensor): boolean {
  return tf.tidy(() => tf.all(tf.equal(a, b)).dataSync()[0] === 1);
}

/** What `merge` added to a weight, kept so that `unmerge` takes exactly that out. */
export class FoldedDelta {
  private constructor(
    private readonly delta: tf.Tensor,
    private readonly correction?: tf.Tensor,
    private readonly original?: tf.Tensor,
  ) {}

  /** Sets `weight := weight + delta` (takes ownership of `delta`). */
  static fold(weight: Parameter, delta: tf.Tensor): FoldedDelta {
    const w = weight.variable;
    const merged = tf.add(w, delta);
    const back = tf.sub(merged, delta);
    let correction: tf.Tensor | undefined;
    let original: tf.Tensor | undefined;
    if (!allEqual(back, w)) {
      correction = tf.sub(w, back);
      const again = tf.add(back, correction);
      if (!allEqual(again, w)) {
        correction.dispose();
        correction = undefined;
        original = tf.clone(w);
      }
      again.dispose();
    }
    back.dispose();
    weight.assign(merged);
    merged.dispose();
    return new FoldedDelta(delta, correction, original);
  }

  /** Takes the folded update back out of `weight` and releases what was kept. */
  unfold(weight: Parameter): void {
    tf.tidy(() => {
      if (this.original) {
        weight.assign(this.original);
        return;
      }
      const w = tf.sub(weight.variable, this.delta);
      weight.assign(this.correction ? tf.add(w, this.correction) : w);
    });
    this.dispose();
  }

  dispose(): void {
    this.delta.dispose();
    this.correction?.dispose();
    this.original?.dispose();
  }
}
