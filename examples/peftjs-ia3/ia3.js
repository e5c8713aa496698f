// IA3 (Liu et al. 2022, "Few-Shot Parameter-Efficient Fine-Tuning is Better
// and Cheaper than In-Context Learning"): learned vectors that rescale
//   - the keys and values of attention: the k and v output groups of the
//     fused qkv projection, y = (x W^T + b) * l   (l only on k and v);
//   - the MLP's hidden activations: the input of the second MLP linear,
//     y = (x * l) W^T + b   ("feedforward" targets).
// Every l starts at one, so the adapted model equals its base. Merging folds
// l into the weights (rows of W and b for output scaling, columns of W for
// input scaling); unmerging restores the saved originals bit for bit.
//
// Written only against peftjs's public API, received from the host.
import { createIa3HfPeft } from './hf-peft.js';

/**
 * Builds the IA3 method on a peftjs API object.
 * @param {typeof import('peftjs')} peftjs
 */
export function createIa3(peftjs) {
  const { Module, PeftError, tf, z, linear, parseTarget, selectLinearSites } = peftjs;
  const OWNER = "method 'ia3'";

  const ia3Schema = z.strictObject({
    targets: z
      .array(z.string().min(1))
      .min(1)
      .default(['attn.qkv[k,v]', 'mlp.fc2'])
      .describe("Sites to rescale: roles ('mlp.fc2'), roles with output groups ('attn.qkv[k,v]'), globs or /regex/ over paths"),
    feedforward: z
      .array(z.string().min(1))
      .default(['mlp.fc2'])
      .describe('Targets whose input (the MLP hidden activations) is rescaled instead of their output; each must also be a target'),
  });

  /** A linear whose output groups (or input features) are scaled by a learned vector `ia3_l`. */
  class Ia3Linear extends Module {
    /**
     * @param {{ weight: import('peftjs').Parameter, bias?: import('peftjs').Parameter }} base
     * @param {{ feedforward: boolean, enabled?: boolean[] }} options
     */
    constructor(base, options) {
      super();
      const [out, inF] = base.weight.shape;
      this.outFeatures = out;
      this.inFeatures = inF;
      this.feedforward = options.feedforward;
      this.enabled = options.enabled;
      if (this.enabled && out % this.enabled.length !== 0) {
        throw new PeftError(`${OWNER}: ${out} outputs are not divisible into ${this.enabled.length} groups`);
      }
      this.groupWidth = this.enabled ? out / this.enabled.length : out;
      /** @type {{ weight: import('peftjs').tf.Tensor, bias?: import('peftjs').tf.Tensor } | undefined} */
      this.saved = undefined;
      this.adoptParameter('weight', base.weight);
      if (base.bias) this.adoptParameter('bias', base.bias);
      this.registerParameter('ia3_l', tf.ones([Ia3Linear.size(out, inF, options)]));
    }

    /** The number of learned scales: in (feedforward), out, or the enabled groups' width. */
    static size(out, inF, options) {
      if (options.feedforward) return inF;
      if (!options.enabled) return out;
      return (out / options.enabled.length) * options.enabled.filter(Boolean).length;
    }

    get merged() {
      return this.saved !== undefined;
    }

    /** The full scale vector (length in or out): ones for disabled groups. */
    scale() {
      return tf.tidy(() => {
        const l = this.param('ia3_l').variable;
        if (this.feedforward || !this.enabled) return l;
        let j = 0;
        const parts = this.enabled.map((on) => (on ? tf.slice(l, [this.groupWidth * j++], [this.groupWidth]) : tf.ones([this.groupWidth])));
        return parts.length === 1 ? parts[0] : tf.concat(parts, 0);
      });
    }

    forward(x) {
      return tf.tidy(() => {
        const lead = x.shape.slice(0, -1);
        let x2 = tf.reshape(x, [-1, this.inFeatures]);
        const bias = this.hasParam('bias') ? this.param('bias').variable : undefined;
        if (this.feedforward && !this.merged) x2 = tf.mul(x2, this.scale());
        let y = linear(x2, this.param('weight').variable, bias);
        if (!this.feedforward && !this.merged) y = tf.mul(y, this.scale());
        return tf.reshape(y, [...lead, this.outFeatures]);
      });
    }

    /** Folds the scales into weight (and bias); the originals are kept for `unmerge`. */
    merge() {
      if (this.merged) return;
      const w = this.param('weight');
      const b = this.hasParam('bias') ? this.param('bias') : undefined;
      this.saved = { weight: tf.clone(w.variable), bias: b ? tf.clone(b.variable) : undefined };
      tf.tidy(() => {
        const s = this.scale();
        if (this.feedforward) {
          w.assign(tf.mul(w.variable, tf.reshape(s, [1, -1])));
        } else {
          w.assign(tf.mul(w.variable, tf.reshape(s, [-1, 1])));
          if (b) b.assign(tf.mul(b.variable, s));
        }
      });
    }

    /** Restores the weights saved by `merge`, bit for bit. */
    unmerge() {
      if (!this.saved) return;
      this.param('weight').assign(this.saved.weight);
      if (this.saved.bias) this.param('bias').assign(this.saved.bias);
      this.dropSaved();
    }

    dropSaved() {
      if (!this.saved) return;
      this.saved.weight.dispose();
      this.saved.bias?.dispose();
      this.saved = undefined;
    }

    dispose() {
      this.dropSaved();
      super.dispose();
    }
  }

  /** The IA3 LayerInjector. */
  class Ia3Injector {
    /** @param {{ targets: string[], feedforward: string[] }} config */
    constructor(config) {
      this.id = 'ia3';
      this.config = config;
      for (const f of config.feedforward) {
        if (!config.targets.includes(f)) throw new PeftError(`${OWNER}: feedforward target '${f}' is not one of targets (${config.targets.join(', ')})`);
      }
    }

    /** Whether `site` scales its input (a feedforward target names it). */
    isFeedforward(site) {
      return this.config.feedforward.some((t) => parseTarget(t).test(site));
    }

    /** The enabled output groups of `site`, or undefined for the whole layer. */
    groupsOf(site) {
      const hits = this.config.targets.filter((t) => parseTarget(t).test(site));
      return hits.length ? selectLinearSites([site], hits, OWNER)[0].groups : undefined;
    }

    select(sites) {
      const chosen = selectLinearSites(sites, this.config.targets, OWNER);
      for (const { site, groups } of chosen) {
        if (groups && this.isFeedforward(site)) throw new PeftError(`${OWNER}: '${site.path}' is a feedforward target with output groups; scale its input or its groups, not both`);
      }
      return chosen.map((c) => c.site);
    }

    inject(model, site) {
      if (site.kind !== 'linear') throw new PeftError(`${OWNER} adapts linear layers; '${site.path}' is a ${site.kind} site`);
      const layer = model.getModule(site.path);
      if (!layer.hasParam('weight') || layer.param('weight').shape.length !== 2) throw new PeftError(`${OWNER}: '${site.path}' is not a linear layer`);
      const base = { weight: layer.param('weight'), bias: layer.hasParam('bias') ? layer.param('bias') : undefined };
      const feedforward = this.isFeedforward(site);
      model.setModule(site.path, new Ia3Linear(base, { feedforward, enabled: feedforward ? undefined : this.groupsOf(site) }));
    }

    parameterCount(site) {
      if (site.kind !== 'linear') return 0;
      const feedforward = this.isFeedforward(site);
      return Ia3Linear.size(site.out, site.in, { feedforward, enabled: feedforward ? undefined : this.groupsOf(site) });
    }

    merge(model) {
      for (const [, m] of model.namedModules()) if (m instanceof Ia3Linear) m.merge();
    }

    unmerge(model) {
      for (const [, m] of model.namedModules()) if (m instanceof Ia3Linear) m.unmerge();
    }
  }

  /** @type {import('peftjs').MethodDefinition} */
  const ia3Method = {
    id: 'ia3',
    summary: 'IA3: learned per-channel scaling of attention keys and values and of the MLP hidden activations (example plugin)',
    schema: ia3Schema,
    create: (config) => new Ia3Injector(config),
    display: { name: 'IA3' },
    // `peft train --method ia3 --targets "attn.qkv[v],mlp.fc2"` sets the `targets` key
    flagKeys: { targets: 'targets' },
    // PEFT's IA3 format: `peft export --format hf-peft`, and `peft train --adapter` from PEFT's files
    hfPeft: createIa3HfPeft(peftjs, Ia3Linear),
  };

  return { ia3Method, ia3Schema, Ia3Linear, Ia3Injector };
}
