// DoRA in Hugging Face PEFT's format, both ways. PEFT has no DoRA peft_type:
// a DoRA adapter is a LORA adapter with `use_dora: true` and one more tensor
// per module, the magnitude vector:
//   adapter_config.json        peft_type LORA, use_dora true, r, lora_alpha,
//                              lora_dropout, target_modules (the adapted
//                              modules' paths), use_rslora false, bias none
//   adapter_model.safetensors  <path>.lora_A.weight [r, in]
//                              <path>.lora_B.weight [out, r]
//                              <path>.lora_magnitude_vector [out]
// In a PEFT model the magnitude is `<path>.lora_magnitude_vector.default.weight`
// (a DoraLinearLayer's `weight`); PEFT saves it without the adapter name and
// without `.weight` (LoraModel's `_get_adapter_state_dict`), and adds `.weight`
// back when loading. This codec reads LORA configs with `use_dora: true` and
// declines the others; the built-in LoRA codec declines exactly these.
//
// Written only against peftjs's public API, received from the host.

/**
 * The DoRA method's Hugging Face PEFT codec.
 * @param {typeof import('peftjs')} peftjs
 * @param {Function} DoraLinear the layer class (for `instanceof`)
 * @returns {import('peftjs').HfPeftCodec}
 */
export function createDoraHfPeft(peftjs, DoraLinear) {
  const { PeftError, hfTensor, patternValue, siteTargets } = peftjs;
  const OWNER = "method 'dora'";

  /** @param {import('peftjs').Module} model */
  const doraLayers = (model) => [...model.namedModules()].filter(([, m]) => m instanceof DoraLinear);

  /** PEFT's init_lora_weights values whose adapters are relative to changed base weights. */
  const BASE_CHANGING_INIT = ['pissa', 'olora', 'corda', 'loftq', 'lora_ga'];

  /** Refuses, by key, what a PEFT DoRA adapter may say that this method cannot represent. */
  const checkSupported = (adapter) => {
    const c = adapter.config;
    if (c.fan_in_fan_out === true) adapter.fail("fan_in_fan_out adapters are not supported (the backbones' linears store weight [out, in])");
    if (c.use_rslora === true) adapter.fail("'use_rslora': true has no form in method 'dora' (its scaling is lora_alpha / r)");
    if (c.lora_bias === true) adapter.fail("'lora_bias' (a trained bias on lora_B) has no form in method 'dora'");
    if ((c.bias ?? 'none') !== 'none') adapter.fail(`'bias' ${JSON.stringify(c.bias)}: method 'dora' trains no biases (bias 'none')`);
    const init = String(c.init_lora_weights ?? true).toLowerCase();
    const changing = BASE_CHANGING_INIT.find((p) => init.startsWith(p));
    if (changing) adapter.fail(`'init_lora_weights' ${JSON.stringify(c.init_lora_weights)}: this adapter is relative to base weights ${changing} changed; convert it in PEFT first`);
    for (const key of ['target_parameters', 'layer_replication', 'trainable_token_indices']) {
      const v = c[key];
      if (v !== undefined && v !== null && !(Array.isArray(v) && v.length === 0)) adapter.fail(`'${key}' has no form in method 'dora'`);
    }
  };

  return {
    peftTypes: ['LORA'],

    declines(config) {
      return config.use_dora === true ? undefined : "it is a plain LoRA adapter (use_dora is not true); method 'lora' reads those";
    },

    async exportAdapter({ model }, config) {
      const tensors = new Map();
      const paths = [];
      for (const [path, l] of doraLayers(model)) {
        if (l.merged) throw new PeftError(`${OWNER}: '${path}' is merged into its weight; export the adapter of an unmerged model`);
        tensors.set(`${path}.lora_A.weight`, await hfTensor(l.param('lora_A').variable));
        tensors.set(`${path}.lora_B.weight`, await hfTensor(l.param('lora_B').variable));
        tensors.set(`${path}.lora_magnitude_vector`, await hfTensor(l.param('lora_magnitude_vector').variable));
        paths.push(path);
      }
      return {
        adaptedPaths: paths,
        tensors,
        config: {
          r: config.r,
          lora_alpha: config.alpha,
          lora_dropout: config.dropout,
          use_rslora: false,
          use_dora: true,
          bias: 'none',
          target_modules: paths,
          exclude_modules: null,
          layers_to_transform: null,
          layers_pattern: null,
          fan_in_fan_out: false,
          init_lora_weights: true,
          rank_pattern: {},
          alpha_pattern: {},
        },
      };
    },

    methodConfig(adapter, sites) {
      checkSupported(adapter);
      const linear = sites.selected.filter((s) => s.kind === 'linear');
      for (const suffix of ['lora_A.weight', 'lora_magnitude_vector']) {
        for (const p of adapter.modulesWith(suffix)) {
          if (!linear.some((s) => s.path === p)) adapter.fail(`'${p}' has a ${suffix.split('.')[0]} tensor but is not a linear injection site selected by 'target_modules'`);
        }
      }
      if (linear.length === 0) adapter.fail(`'target_modules' selects no linear injection site of this backbone (${JSON.stringify(adapter.config.target_modules)})`);
      const r = adapter.number('r', 8);
      for (const site of linear) {
        const a = adapter.tensor(`${site.path}.lora_A.weight`, `lora_A of '${site.path}'`);
        adapter.tensor(`${site.path}.lora_magnitude_vector`, `DoRA magnitude of '${site.path}'`);
        // method 'dora' has one rank: per-module ranks (rank_pattern) cannot be represented
        if (a.shape[0] !== r) adapter.fail(`'${site.path}' has rank ${a.shape[0]} (lora_A [${a.shape}]) but r is ${r}; method 'dora' has one rank for every module`);
      }
      return {
        r,
        alpha: adapter.number('lora_alpha', 8),
        dropout: adapter.number('lora_dropout', 0),
        targets: siteTargets(
          linear.map((site) => ({ site })),
          sites.all,
          adapter.configPath,
        ),
      };
    },

    loadAdapter(adapter, { model }) {
      checkSupported(adapter);
      const layers = doraLayers(model);
      if (layers.length === 0) adapter.fail('the model has no DoRA layers to load a DoRA adapter into');
      const alpha = adapter.number('lora_alpha', 8);
      for (const [path, l] of layers) {
        const aParam = l.param('lora_A');
        const bParam = l.param('lora_B');
        const mParam = l.param('lora_magnitude_vector');
        const a = adapter.float32(`${path}.lora_A.weight`, aParam.shape, `lora_A of '${path}'`);
        let b = adapter.float32(`${path}.lora_B.weight`, bParam.shape, `lora_B of '${path}'`);
        const m = adapter.float32(`${path}.lora_magnitude_vector`, mParam.shape, `DoRA magnitude of '${path}'`);
        // PEFT's scaling of this module (alpha_pattern may change it) against the layer's: s B is what DoRA uses, so the ratio goes into B
        const moduleAlpha = patternValue(adapter.config.alpha_pattern, path, `${adapter.configPath}: 'alpha_pattern'`) ?? alpha;
        if (typeof moduleAlpha !== 'number') adapter.fail(`'alpha_pattern' gives '${path}' a non-number`);
        const ratio = moduleAlpha / aParam.shape[0] / l.scaling;
        if (Math.abs(ratio - 1) > 1e-12) b = b.map((v) => v * ratio);
        adapter.stage(aParam, a, `${path}.lora_A.weight`);
        adapter.stage(bParam, b, `${path}.lora_B.weight`);
        adapter.stage(mParam, m, `${path}.lora_magnitude_vector`);
      }
    },
  };
}
