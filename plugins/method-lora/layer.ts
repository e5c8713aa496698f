// LoRA layers (Microsoft loralib's semantics). Each replaces a linear layer
// at its site and takes over the base layer's `weight` and `bias` under the
// same names, so the state dict keeps the official keys:
//   LoraLinear:        y = x W^T + b + (dropout(x) A^T B^T) * scaling
//                      lora_A [r, in], lora_B [out, r]
//   GroupedLoraLinear: a fused projection whose output is G equal groups
//                      (q, k, v); only enabled groups get an update.
//                      lora_A [r*k, in], lora_B [(out/G)*k, r] for k enabled
//                      groups; the j-th blocks belong to the j-th enabled group.
// A is kaiming-uniform and B zero at init, so the layer equals its base.
import { Module, PeftError, kaimingUniform, linear, lowRankLinear, tf, type LinearLike, type Parameter, FoldedDelta } from '../../src/index.js';

/** The weight (and bias) a LoRA layer takes over from the layer it replaces. */
export interface BaseLinearParams {
  weight: Parameter;
  bias?: Parameter;
}

/** The `weight` and `bias` of a linear-like module; a PeftError if it has no 2-D weight. */
export function baseParamsOf(layer: Module, path = 'layer'): BaseLinearParams {
  if (!layer.hasParam('weight') || layer.param('weight').shape.length !== 2) {
    throw new PeftError(`'${path}' is not a linear layer (no 2-D 'weight')`);
  }
  return { weight: layer.param('weight'), bias: layer.hasParam('bias') ? layer.param('bias') : undefined };
}

export interface LoraLayerOptions {
  r: number;
  /** Multiplies the low-rank product (alpha / r, or alpha / sqrt r). */
  scaling: number;
  dropout?: number;
  /** The base weight is stored `[in, out]` (GPT-2 `Conv1D` style) and used as `x W`. */
  fanInFanOut?: boolean;
}

/** What LoRA and grouped LoRA share: the adopted base, dropout, merge and unmerge. */
abstract class LowRankLinear extends Module implements LinearLike {
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly r: number;
  readonly scaling: number;
  readonly dropout: number;
  readonly fanInFanOut: boolean;
  private folded?: FoldedDelta;

  constructor(base: BaseLinearParams, options: LoraLayerOptions) {
    super();
    const [a, b] = base.weight.shape as [number, number];
    this.fanInFanOut = options.fanInFanOut ?? false;
    [this.outFeatures, this.inFeatures] = this.fanInFanOut ? [b, a] : [a, b];
    if (!Number.isInteger(options.r) || options.r < 1) throw new PeftError(`LoRA rank must be a positive integer, got ${options.r}`);
    this.r = options.r;
    this.scaling = options.scaling;
    this.dropout = options.dropout ?? 0;
    this.adoptParameter('weight', base.weight);
    if (base.bias) this.adoptParameter('bias', base.bias);
  }

  get merged(): boolean {
    return this.folded !== undefined;
  }

  /** Which output groups have an update (`[true]`: the whole layer). */
  protected abstract groups(): boolean[];

  /**
   * The low-rank branch on flattened input `[N, in]` → `[N, out]`, scaled. Used with dropout (and
   * fanInFanOut); otherwise `forward` runs the same arithmetic as core `lowRankLinear`.
   */
  protected abstract update(x: tf.Tensor2D): tf.Tensor2D;

  /** The scaled update as a `[out, in]` matrix (what `merge` adds to the weight). */
  abstract deltaWeight(): tf.Tensor2D;

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const lead = x.shape.slice(0, -1);
      const x2 = tf.reshape(x, [-1, this.inFeatures]) as tf.Tensor2D;
      const w = this.param('weight').variable;
      const bias = this.hasParam('bias') ? this.param('bias').variable : undefined;
      const dropout = this.training && this.dropout > 0;
      if (!this.merged && !dropout && !this.fanInFanOut) {
        // the whole layer in one kernel each way where the native kernels are on (core lowRankLinear)
        const a = this.param('lora_A').variable as tf.Tensor2D;
        const b = this.param('lora_B').variable as tf.Tensor2D;
        const y = lowRankLinear(x2, w as tf.Tensor2D, bias as tf.Tensor1D | undefined, a, b, this.scaling, this.groups());
        return tf.reshape(y, [...lead, this.outFeatures]);
      }
      let y = this.fanInFanOut ? tf.matMul(x2, w) : linear(x2, w);
      if (bias) y = tf.add(y, bias);
      if (!this.merged) {
        const xd = dropout ? (tf.dropout(x2, this.dropout) as tf.Tensor2D) : x2;
        y = tf.add(y, this.update(xd));
      }
      return tf.reshape(y, [...lead, this.outFeatures]);
    });
  }

  /** Folds the update into `weight`; the branch is then skipped. No-op when merged. */
  merge(): void {
    if (this.merged) return;
    const delta = tf.tidy(() => (this.fanInFanOut ? tf.transpose(this.deltaWeight()) : this.deltaWeight()));
    this.folded = FoldedDelta.fold(this.param('weight'), delta);
  }

  /** Takes the folded update out of `weight` again (bit-exact when the weight was not changed meanwhile). */
  unmerge(): void {
    if (!this.folded) return;
    this.folded.unfold(this.param('weight'));
    this.folded = undefined;
  }

  override dispose(): void {
    this.folded?.dispose();
    this.folded = undefined;
    super.dispose();
  }
}

/** loralib's `Linear`: a rank-r update of the whole layer. */
export class LoraLinear extends LowRankLinear {
  constructor(base: BaseLinearParams, options: LoraLayerOptions) {
    super(base, options);
    this.registerParameter('lora_A', kaimingUniform([this.r, this.inFeatures], this.inFeatures));
    this.registerParameter('lora_B', tf.zeros([this.outFeatures, this.r]));
  }

  protected groups(): boolean[] {
    return [true];
  }

  protected update(x: tf.Tensor2D): tf.Tensor2D {
    const a = this.param('lora_A').variable;
    const b = this.param('lora_B').variable;
    return tf.mul(tf.matMul(tf.matMul(x, a, false, true), b, false, true), this.scaling);
  }

  deltaWeight(): tf.Tensor2D {
    return tf.tidy(() => tf.mul(tf.matMul(this.param('lora_B').variable, this.param('lora_A').variable), this.scaling));
  }
}

/** loralib's `MergedLinear`: rank-r updates of the enabled output groups of a fused projection. */
export class GroupedLoraLinear extends LowRankLinear {
  readonly enabled: boolean[];
  /** Output width of one group. */
  readonly groupWidth: number;

  constructor(base: BaseLinearParams, options: LoraLayerOptions & { enabled: boolean[] }) {
    super(base, options);
    const groups = options.enabled.length;
    const k = options.enabled.filter(Boolean).length;
    if (groups === 0 || k === 0) throw new PeftError('grouped LoRA needs at least one enabled group');
    if (this.outFeatures % groups !== 0) {
      throw new PeftError(`grouped LoRA: out_features ${this.outFeatures} is not divisible into ${groups} groups`);
    }
    this.enabled = [...options.enabled];
    this.groupWidth = this.outFeatures / groups;
    this.registerParameter('lora_A', kaimingUniform([this.r * k, this.inFeatures], this.inFeatures));
    this.registerParameter('lora_B', tf.zeros([this.groupWidth * k, this.r]));
  }

  protected groups(): boolean[] {
    return this.enabled;
  }

  /** For each group: the index j among enabled groups, or -1 when disabled. */
  private slots(): number[] {
    let j = 0;
    return this.enabled.map((on) => (on ? j++ : -1));
  }

  protected update(x: tf.Tensor2D): tf.Tensor2D {
    const a = this.param('lora_A').variable;
    const b = this.param('lora_B').variable;
    const n = x.shape[0];
    const r = this.r;
    const gw = this.groupWidth;
    const h = tf.matMul(x, a, false, true); // [N, r*k]
    const parts = this.slots().map((j) =>
      j < 0
        ? tf.zeros([n, gw])
        : tf.matMul(tf.slice(h, [0, j * r], [n, r]), tf.slice(b, [j * gw, 0], [gw, r]), false, true),
    );
    return tf.mul(parts.length === 1 ? parts[0]! : tf.concat(parts, 1), this.scaling) as tf.Tensor2D;
  }

  deltaWeight(): tf.Tensor2D {
    return tf.tidy(() => {
      const a = this.param('lora_A').variable;
      const b = this.param('lora_B').variable;
      const r = this.r;
      const gw = this.groupWidth;
      const parts = this.slots().map((j) =>
        j < 0
          ? tf.zeros([gw, this.inFeatures])
          : tf.mul(tf.matMul(tf.slice(b, [j * gw, 0], [gw, r]), tf.slice(a, [j * r, 0], [r, this.inFeatures])), this.scaling),
      );
      return (parts.length === 1 ? parts[0]! : tf.concat(parts, 0)) as tf.Tensor2D;
    });
  }
}

export type AnyLoraLayer = LoraLinear | GroupedLoraLinear;

export function isLoraLayer(m: Module): m is AnyLoraLayer {
  return m instanceof LoraLinear || m instanceof GroupedLoraLinear;
}
