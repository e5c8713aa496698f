// DoRA (Liu et al. 2024, "DoRA: Weight-Decomposed Low-Rank Adaptation"): the
// weight of each adapted linear is split into a magnitude and a direction,
//   W' = m * (W0 + s B A) / ||W0 + s B A||      (per output row)
// with the norm over the input dimension of each row (`dim=1` of [out, in]),
// m a trainable vector [out] initialised to W0's row norms, s = alpha / r,
// A [r, in] Kaiming-uniform and B [out, r] zero, so W' = W0 at init.
//
// The forward pass is Hugging Face PEFT's (`tuners/lora/dora.py`), so an
// adapter trained here behaves the same under PEFT and back:
//   y = base(x) + (m/n - 1) * (x W0^T) + (m/n) * s * (x A^T B^T)
// where n = ||W0 + s B A|| is a constant to the gradient ("weight_norm.detach()",
// section 4.3 of the paper). With dropout (training only) both DoRA terms see
// the dropped input, as in PEFT.
//
// Merging writes m/n * (W0 + s B A) into the weight (PEFT's merge); DoRA's
// merge is not an addition, so W0 itself is kept while merged and unmerging
// restores it bit for bit.
//
// Written only against peftjs's public API, received from the host.
import { createDoraHfPeft } from './hf-peft.js';
import { createDoraLaws } from './laws.js';

/**
 * Builds the DoRA method on a peftjs API object.
 * @param {typeof import('peftjs')} peftjs
 */
export function createDora(peftjs) {
  const { Module, PeftError, tf, z, linear, kaimingUniform, parseTarget, selectLinearSites } = peftjs;
  const OWNER = "method 'dora'";

  const doraSchema = z.strictObject({
    r: z.number().int().min(1).default(4).describe('Rank of the low-rank direction update (rows of lora_A, columns of lora_B)'),
    alpha: z.number().positive().default(4).describe('Scaling numerator: the direction update is B A * alpha / r'),
    dropout: z.number().min(0).lt(1).default(0).describe('Dropout probability on the input of the DoRA terms (training only)'),
    targets: z
      .array(z.string().min(1))
      .min(1)
      .default(['attn.qkv'])
      .describe("Linear sites to adapt whole: roles ('attn.proj'), globs ('mlp.*') or /regex/ over paths; output groups ('attn.qkv[q,v]') are refused"),
  });

  /** Row norms of a `[out, in]` matrix: `[out]`. */
  const rowNorms = (w) => tf.sqrt(tf.sum(tf.square(w), 1));

  /** A linear layer adapted by DoRA; takes over the base layer's `weight` and `bias`. */
  class DoraLinear extends Module {
    /**
     * @param {string} path the site (for messages)
     * @param {{ weight: import('peftjs').Parameter, bias?: import('peftjs').Parameter }} base
     * @param {{ r: number, scaling: number, dropout: number }} options
     */
    constructor(path, base, options) {
      super();
      const [out, inF] = base.weight.shape;
      this.outFeatures = out;
      this.inFeatures = inF;
      this.r = options.r;
      this.scaling = options.scaling;
      this.dropout = options.dropout;
      /** W0 while merged (DoRA's merge is not additive: the original is what unmerge restores). */
      this.original = undefined;
      this.adoptParameter('weight', base.weight);
      if (base.bias) this.adoptParameter('bias', base.bias);
      this.registerParameter('lora_A', kaimingUniform([this.r, inF], inF));
      this.registerParameter('lora_B', tf.zeros([out, this.r]));
      // the same computation as the forward pass's norm, so m / n is exactly 1 at init
      const m = tf.tidy(() => this.directionNorm(this.param('lora_A').variable, this.param('lora_B').variable));
      const zero = [...m.dataSync()].flatMap((v, i) => (v === 0 ? [i] : []));
      if (zero.length) {
        m.dispose();
        throw new PeftError(`${OWNER}: '${path}' has an all-zero weight row (${zero.slice(0, 3).join(', ')}): its direction is undefined`);
      }
      this.registerParameter('lora_magnitude_vector', m);
    }

    get merged() {
      return this.original !== undefined;
    }

    /** ||W + s B A|| per output row, `[out]`. */
    directionNorm(a, b) {
      return rowNorms(tf.add(this.param('weight').variable, tf.mul(tf.matMul(b, a), this.scaling)));
    }

    /** The norm as a constant to the gradient (PEFT's `weight_norm.detach()`): A and B get no gradient through it. */
    detachedNorm() {
      const f = tf.customGrad((a, b) => ({
        value: this.directionNorm(a, b),
        gradFunc: () => [tf.zerosLike(a), tf.zerosLike(b)],
      }));
      return f(this.param('lora_A').variable, this.param('lora_B').variable);
    }

    forward(x) {
      return tf.tidy(() => {
        const lead = x.shape.slice(0, -1);
        const x2 = tf.reshape(x, [-1, this.inFeatures]);
        const w = this.param('weight').variable;
        const base = linear(x2, w);
        let y = this.hasParam('bias') ? tf.add(base, this.param('bias').variable) : base;
        if (!this.merged) {
          const a = this.param('lora_A').variable;
          const b = this.param('lora_B').variable;
          const scale = tf.div(this.param('lora_magnitude_vector').variable, this.detachedNorm());
          const dropped = this.training && this.dropout > 0;
          const xd = dropped ? tf.dropout(x2, this.dropout) : x2;
          const baseD = dropped ? linear(xd, w) : base;
          const lora = tf.matMul(tf.matMul(xd, a, false, true), b, false, true);
          y = tf.add(y, tf.add(tf.mul(tf.sub(scale, 1), baseD), tf.mul(tf.mul(scale, lora), this.scaling)));
        }
        return tf.reshape(y, [...lead, this.outFeatures]);
      });
    }

    /** The merged weight m/n * (W0 + s B A) `[out, in]`, as PEFT's merge computes it. */
    mergedWeight() {
      return tf.tidy(() => {
        const delta = tf.mul(tf.matMul(this.param('lora_B').variable, this.param('lora_A').variable), this.scaling);
        const combined = tf.add(this.param('weight').variable, delta);
        const factor = tf.div(this.param('lora_magnitude_vector').variable, rowNorms(combined));
        return tf.mul(tf.reshape(factor, [-1, 1]), combined);
      });
    }

    /** Writes the merged weight; W0 is kept for `unmerge`. No-op when merged. */
    merge() {
      if (this.merged) return;
      const w = this.param('weight');
      const merged = this.mergedWeight();
      this.original = tf.clone(w.variable);
      w.assign(merged);
      merged.dispose();
    }

    /** Restores W0 bit for bit. */
    unmerge() {
      if (!this.original) return;
      this.param('weight').assign(this.original);
      this.original.dispose();
      this.original = undefined;
    }

    dispose() {
      this.original?.dispose();
      this.original = undefined;
      super.dispose();
    }
  }

  /** The DoRA LayerInjector. */
  class DoraInjector {
    /** @param {{ r: number, alpha: number, dropout: number, targets: string[] }} config */
    constructor(config) {
      this.id = 'dora';
      this.config = config;
      this.scaling = config.alpha / config.r;
      for (const t of config.targets) {
        // DoRA normalises whole weight rows of a layer, and PEFT has no grouped form
        if (parseTarget(t).groups) throw new PeftError(`${OWNER}: target '${t}' selects output groups; DoRA adapts whole linears (use '${t.replace(/\[.*\]$/, '')}')`);
      }
    }

    select(sites) {
      return selectLinearSites(sites, this.config.targets, OWNER).map((c) => c.site);
    }

    inject(model, site) {
      if (site.kind !== 'linear') throw new PeftError(`${OWNER} adapts linear layers; '${site.path}' is a ${site.kind} site`);
      const layer = model.getModule(site.path);
      if (!layer.hasParam('weight') || layer.param('weight').shape.length !== 2) throw new PeftError(`${OWNER}: '${site.path}' is not a linear layer (no 2-D 'weight')`);
      const [out, inF] = layer.param('weight').shape;
      if (out !== site.out || inF !== site.in) throw new PeftError(`${OWNER}: '${site.path}' is declared ${site.in}->${site.out} but its weight is [${out}, ${inF}]`);
      const base = { weight: layer.param('weight'), bias: layer.hasParam('bias') ? layer.param('bias') : undefined };
      model.setModule(site.path, new DoraLinear(site.path, base, { r: this.config.r, scaling: this.scaling, dropout: this.config.dropout }));
    }

    /** lora_A [r, in] + lora_B [out, r] + lora_magnitude_vector [out]. */
    parameterCount(site) {
      return site.kind === 'linear' ? this.config.r * (site.in + site.out) + site.out : 0;
    }

    merge(model) {
      for (const [, m] of model.namedModules()) if (m instanceof DoraLinear) m.merge();
    }

    unmerge(model) {
      for (const [, m] of model.namedModules()) if (m instanceof DoraLinear) m.unmerge();
    }
  }

  /** @type {import('peftjs').MethodDefinition} */
  const doraMethod = {
    id: 'dora',
    summary: 'DoRA: weight-decomposed LoRA, W = m * (W0 + s B A) / ||W0 + s B A|| per output row (example plugin)',
    schema: doraSchema,
    create: (config) => new DoraInjector(config),
    display: { name: 'DoRA' },
    flagKeys: { rank: 'r', alpha: 'alpha', targets: 'targets' },
    // PEFT's LoRA format with use_dora: `peft export --format hf-peft`, and `--adapter` with PEFT's folders
    hfPeft: createDoraHfPeft(peftjs, DoraLinear),
    // run by `peft verify dora` after the core laws
    laws: createDoraLaws(peftjs, DoraLinear),
  };

  return { doraMethod, doraSchema, DoraLinear, DoraInjector };
}
