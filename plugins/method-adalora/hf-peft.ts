// AdaLoRA in Hugging Face PEFT's format (peft_type ADALORA), both ways:
//   adapter_config.json        init_r, target_r, tinit, tfinal, deltaT,
//                              total_step, beta1, beta2, orth_reg_weight,
//                              lora_alpha, lora_dropout, target_modules and
//                              rank_pattern ({<path>.lora_E: init_r booleans})
//   adapter_model.safetensors  <path>.lora_A [r, in], .lora_E [r, 1],
//                              .lora_B [out, r], pruned to the rank pattern
// `ranknum` is not saved: PEFT rebuilds it as init_r (and keeps it through
// pruning), as peftjs does. peftjs's names differ from PEFT's for the
// schedule: init_warmup = tinit, final_warmup = tfinal, mask_interval = deltaT.
import { PeftError, hfTensor, siteTargets, type HfPeftCodec, type LinearSite, type TensorToWrite, type tf } from '../../src/index.js';
import type { AdaloraConfig } from './config.js';
import { AdaloraInjector, type RankPattern } from './injector.js';
import { svdLayers } from './layer.js';

const OWNER = "method 'adalora'";

/** PEFT's AdaLoraConfig key → peftjs's adalora key. */
const KEYS: [hf: string, peftjs: keyof AdaloraConfig][] = [
  ['init_r', 'init_r'],
  ['target_r', 'target_r'],
  ['tinit', 'init_warmup'],
  ['tfinal', 'final_warmup'],
  ['deltaT', 'mask_interval'],
  ['total_step', 'total_step'],
  ['beta1', 'beta1'],
  ['beta2', 'beta2'],
  ['orth_reg_weight', 'orth_reg_weight'],
];

function injectorOf(method: unknown): AdaloraInjector {
  if (!(method instanceof AdaloraInjector)) throw new PeftError(`${OWNER}: the model's method is not an adalora injector`);
  return method;
}

export const adaloraHfPeft: HfPeftCodec<AdaloraConfig> = {
  peftTypes: ['ADALORA'],

  async exportAdapter({ model, method }, config) {
    const injector = injectorOf(method);
    const layers = svdLayers(model);
    // the injector prunes A, E, B to its rank pattern (as in its own adapter files)
    const live = new Map<string, tf.Tensor>();
    for (const [path, l] of layers) for (const n of ['lora_A', 'lora_E', 'lora_B']) live.set(`${path}.${n}`, l.param(n).variable);
    const pruned = injector.exportAdapterTensors(model, live);
    const tensors = new Map<string, TensorToWrite>();
    try {
      for (const [key, t] of pruned) tensors.set(key, await hfTensor(t));
    } finally {
      for (const [k, t] of pruned) if (live.get(k) !== t) t.dispose();
    }
    const rp = injector.adapterState(model).rank_pattern as RankPattern | null;
    const paths = layers.map(([p]) => p);
    return {
      adaptedPaths: paths,
      tensors,
      config: {
        r: 8, // PEFT warns when AdaLoRA's unused `r` is not its default
        // PEFT scales pruned layers by lora_alpha, or by their kept rank when lora_alpha is 0; peftjs's alpha 0 means init_r
        lora_alpha: config.alpha > 0 ? config.alpha : config.init_r,
        lora_dropout: config.dropout,
        target_modules: paths,
        exclude_modules: null,
        layers_to_transform: null,
        layers_pattern: null,
        bias: 'none',
        use_rslora: false,
        fan_in_fan_out: false,
        init_lora_weights: true,
        use_dora: false,
        ...Object.fromEntries(KEYS.map(([hf, own]) => [hf, config[own]])),
        rank_pattern: rp ? Object.fromEntries(Object.entries(rp).map(([path, keep]) => [`${path}.lora_E`, keep])) : null,
      },
    };
  },

  methodConfig(adapter, sites) {
    if (adapter.config.fan_in_fan_out === true) adapter.fail("fan_in_fan_out adapters are not supported (the backbones' linears store weight [out, in])");
    const linear = sites.selected.filter((s): s is LinearSite => s.kind === 'linear');
    for (const p of adapter.modulesWith('lora_E')) {
      if (!linear.some((s) => s.path === p)) adapter.fail(`'${p}' has AdaLoRA tensors but is not a linear injection site selected by 'target_modules'`);
    }
    if (linear.length === 0) adapter.fail(`'target_modules' selects no linear injection site of this backbone (${JSON.stringify(adapter.config.target_modules)})`);
    const config: Record<string, unknown> = {
      alpha: adapter.number('lora_alpha', 8),
      dropout: adapter.number('lora_dropout', 0),
      targets: siteTargets(linear.map((site) => ({ site })), sites.all, adapter.configPath),
    };
    for (const [hf, own] of KEYS) if (adapter.config[hf] !== undefined && adapter.config[hf] !== null) config[own] = adapter.number(hf);
    return config;
  },

  loadAdapter(adapter, { model, method }) {
    const injector = injectorOf(method);
    const rp = adapter.config.rank_pattern;
    if (rp !== undefined && rp !== null) {
      if (typeof rp !== 'object' || Array.isArray(rp)) adapter.fail("'rank_pattern' must be an object of '<module>.lora_E' keys to boolean lists");
      // PEFT keys it by the lora_E parameter's name (adapter name removed in files it saved)
      const pattern: RankPattern = {};
      for (const [key, keep] of Object.entries(rp as Record<string, unknown>)) {
        if (!Array.isArray(keep) || !keep.every((k) => typeof k === 'boolean')) adapter.fail(`'rank_pattern' entry ${JSON.stringify(key.slice(0, 120))} must be a list of true/false (the ranks kept), got ${JSON.stringify(keep)?.slice(0, 80)}`);
        pattern[key.replace(/\.default$/, '').replace(/\.lora_E$/, '').replace(/^base_model\.model\./, '')] = keep as boolean[];
      }
      try {
        injector.loadAdapterState(model, { rank_pattern: pattern });
      } catch (err) {
        if (err instanceof PeftError) adapter.fail(err.message);
        throw err;
      }
    }
    const layers = svdLayers(model);
    if (layers.length === 0) adapter.fail('the model has no AdaLoRA layers to load an ADALORA adapter into');
    for (const [path, l] of layers) {
      for (const n of ['lora_A', 'lora_E', 'lora_B']) {
        const p = l.param(n);
        adapter.stage(p, adapter.float32(`${path}.${n}`, p.shape, `AdaLoRA ${n} of '${path}'`), `${path}.${n}`);
      }
      // older files may hold ranknum; it must then be the model's
      if (adapter.tensors.has(`${path}.ranknum`)) {
        const p = l.param('ranknum');
        adapter.stage(p, adapter.float32(`${path}.ranknum`, p.shape, `ranknum of '${path}'`), `${path}.ranknum`);
      }
    }
  },
};
