// AdaLoRA's SVD-form linear. Replaces a linear at its site and takes over its
// `weight` and `bias`:
//   y = x W^T + b + (dropout(x) (A*E)^T B^T) * s / (ranknum + 1e-5)
//   lora_A [r, in], lora_E [r, 1] (scales row i of A: the "singular values"),
//   lora_B [out, r], ranknum [1] a buffer holding the initial r,
//   s = alpha if alpha > 0 else r.
// E is zero at init (A, B ~ N(0, 0.02)), so the layer equals its base. Rank
// allocation zeroes entries of E; `prune` drops rows (rank 0 is allowed).
import { Module, PeftError, linear, lowRankLinear, lowRankLinearIsNative, normal, tf, type LinearLike, type Parameter, FoldedDelta } from '../../src/index.js';

export interface SvdLinearOptions {
  r: number;
  alpha: number;
  dropout?: number;
}

export class SVDLinear extends Module implements LinearLike {
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** The rank the layer was created with (the `r` of the scaling). */
  readonly initialRank: number;
  readonly alpha: number;
  readonly dropout: number;
  private folded?: FoldedDelta;

  constructor(base: { weight: Parameter; bias?: Parameter }, options: SvdLinearOptions) {
    super();
    const [out, inF] = base.weight.shape as [number, number];
    if (!Number.isInteger(options.r) || options.r < 0) throw new PeftError(`AdaLoRA rank must be an integer >= 0, got ${options.r}`);
    this.inFeatures = inF;
    this.outFeatures = out;
    this.initialRank = options.r;
    this.alpha = options.alpha;
    this.dropout = options.dropout ?? 0;
    this.adoptParameter('weight', base.weight);
    if (base.bias) this.adoptParameter('bias', base.bias);
    const r = options.r;
    this.registerParameter('lora_A', normal([r, inF], 0.02));
    this.registerParameter('lora_E', tf.zeros([r, 1]));
    this.registerParameter('lora_B', normal([out, r], 0.02));
    this.registerBuffer('ranknum', tf.tensor1d([r]));
  }

  /** The current number of triplets (rows of E). */
  get rank(): number {
    return this.param('lora_E').shape[0]!;
  }

  get scaling(): number {
    return this.alpha > 0 ? this.alpha : this.initialRank;
  }

  get merged(): boolean {
    return this.folded !== undefined;
  }

  /** `[N, in]` → the scaled SVD branch `[N, out]`. */
  private update(x: tf.Tensor2D): tf.Tensor2D {
    const a = this.param('lora_A').variable;
    const e = this.param('lora_E').variable;
    const b = this.param('lora_B').variable;
    const h = tf.matMul(tf.matMul(x, tf.mul(a, e), false, true), b, false, true);
    return tf.div(tf.mul(h, this.scaling), tf.add(this.param('ranknum').variable, 1e-5));
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const lead = x.shape.slice(0, -1);
      const x2 = tf.reshape(x, [-1, this.inFeatures]) as tf.Tensor2D;
      const bias = this.hasParam('bias') ? this.param('bias').variable : undefined;
      const dropout = this.training && this.dropout > 0;
      if (!this.merged && this.rank > 0 && !dropout && lowRankLinearIsNative()) {
        // the layer in one kernel each way (core lowRankLinear), E as its scale per rank (A*E is never
        // formed, nor its gradient: the kernel gives A's and E's); the scale s / (ranknum + 1e-5) as one
        // factor (a sync read of a one-element buffer, cheap on the CPU backends where the kernels run)
        const a = this.param('lora_A').variable;
        const e = this.param('lora_E').variable;
        const b = this.param('lora_B').variable as tf.Tensor2D;
        const scale = this.scaling / (this.param('ranknum').variable.dataSync()[0]! + 1e-5);
        const w = this.param('weight').variable as tf.Tensor2D;
        const y = lowRankLinear(x2, w, bias as tf.Tensor1D | undefined, a as tf.Tensor2D, b, scale, [true], e);
        return tf.reshape(y, [...lead, this.outFeatures]);
      }
      let y = linear(x2, this.param('weight').variable, bias);
      if (!this.merged && this.rank > 0) {
        const xd = dropout ? (tf.dropout(x2, this.dropout) as tf.Tensor2D) : x2;
        y = tf.add(y, this.update(xd));
      }
      return tf.reshape(y, [...lead, this.outFeatures]);
    });
  }

  /** The scaled update `B (A*E) s / (ranknum + 1e-5)`, `[out, in]`. */
  deltaWeight(): tf.Tensor2D {
    return tf.tidy(() => {
      if (this.rank === 0) return tf.zeros([this.outFeatures, this.inFeatures]) as tf.Tensor2D;
      const ae = tf.mul(this.param('lora_A').variable, this.param('lora_E').variable);
      const d = tf.mul(tf.matMul(this.param('lora_B').variable, ae), this.scaling);
      return tf.div(d, tf.add(this.param('ranknum').variable, 1e-5)) as tf.Tensor2D;
    });
  }

  merge(): void {
    if (this.merged) return;
    this.folded = FoldedDelta.fold(this.param('weight'), this.deltaWeight());
  }

  unmerge(): void {
    if (!this.folded) return;
    this.folded.unfold(this.param('weight'));
    this.folded = undefined;
  }

  /**
   * Keeps only the triplets `keep[i]` (rows of A and E, columns of B); the
   * others are dropped. `keep.length` must equal the current rank.
   */
  prune(keep: boolean[]): void {
    if (keep.length !== this.rank) throw new PeftError(`SVDLinear: a keep mask of ${keep.length} for rank ${this.rank}`);
    if (keep.every(Boolean)) return;
    const idx = keep.flatMap((k, i) => (k ? [i] : []));
    const trainable = (name: string) => this.param(name).trainable;
    const rows = (name: string, axis: number) =>
      tf.tidy(() => {
        const v = this.param(name).variable;
        return tf.gather(v, tf.tensor1d(idx, 'int32'), axis);
      });
    const a = rows('lora_A', 0);
    const e = rows('lora_E', 0);
    const b = rows('lora_B', 1);
    const flags = [trainable('lora_A'), trainable('lora_E'), trainable('lora_B')];
    this.registerParameter('lora_A', a, { trainable: flags[0] });
    this.registerParameter('lora_E', e, { trainable: flags[1] });
    this.registerParameter('lora_B', b, { trainable: flags[2] });
  }

  override dispose(): void {
    this.folded?.dispose();
    this.folded = undefined;
    super.dispose();
  }
}

/** Every SVDLinear below `model`, with its dotted path. */
export function svdLayers(model: Module): [string, SVDLinear][] {
  const out: [string, SVDLinear][] = [];
  for (const [path, m] of model.namedModules()) if (m instanceof SVDLinear) out.push([path, m]);
  return out;
}
