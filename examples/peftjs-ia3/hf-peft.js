// IA3 in Hugging Face PEFT's format (peft_type IA3), both ways, as PEFT's
// `tuners/ia3` writes it:
//   adapter_config.json        target_modules, feedforward_modules (the
//                              modules whose input is scaled), fan_in_fan_out,
//                              init_ia3_weights
//   adapter_model.safetensors  <path>.ia3_l: [out, 1] for output scaling,
//                              [1, in] for a feedforward module
// PEFT scales a whole output, so an IA3 on some output groups of a fused qkv
// (`attn.qkv[k,v]`) is written as the full vector with exact ones for the other
// groups. Reading gives those groups back: an output group whose scales are all
// exactly 1 is not adapted, unless every group is (an untrained vector, read as
// the whole layer).
//
// Written only against peftjs's public API, received from the host.

/**
 * The IA3 method's Hugging Face PEFT codec.
 * @param {typeof import('peftjs')} peftjs
 * @param {Function} Ia3Linear the layer class (for `instanceof`)
 * @returns {import('peftjs').HfPeftCodec}
 */
export function createIa3HfPeft(peftjs, Ia3Linear) {
  const { PeftError, compileUntrustedPattern, hfTensor, siteTargets, toFloat32 } = peftjs;

  /** @param {import('peftjs').Module} model */
  const ia3Layers = (model) => [...model.namedModules()].filter(([, m]) => m instanceof Ia3Linear);

  /**
   * Whether PEFT treats `path` as a feedforward module (`_check_target_module_feedforward`):
   * a string is a full-match regex, a list matches by plain suffix.
   */
  const isFeedforward = (adapter, path) => {
    const ff = adapter.config.feedforward_modules;
    if (ff === undefined || ff === null) return false;
    // a pattern from a file: the host's linear-time engine, never RegExp (a malformed one names the file and key)
    if (typeof ff === 'string') return compileUntrustedPattern(ff, `${adapter.configPath}: 'feedforward_modules'`).fullMatch(path);
    if (!Array.isArray(ff) || !ff.every((f) => typeof f === 'string')) adapter.fail("'feedforward_modules' must be a list of module names or a regular expression");
    return ff.some((f) => path.endsWith(f));
  };

  const checkSupported = (adapter) => {
    if (adapter.config.fan_in_fan_out === true) adapter.fail("fan_in_fan_out adapters are not supported (the backbones' linears store weight [out, in])");
  };

  return {
    peftTypes: ['IA3'],

    async exportAdapter({ model }) {
      const tensors = new Map();
      const paths = [];
      const feedforward = [];
      for (const [path, l] of ia3Layers(model)) {
        const scale = /** @type {Float32Array} */ (await l.param('ia3_l').variable.data());
        paths.push(path);
        if (l.feedforward) {
          feedforward.push(path);
          tensors.set(`${path}.ia3_l`, await hfTensor(scale, [1, l.inFeatures]));
          continue;
        }
        // the full output vector: ones for the groups this layer does not scale
        const full = new Float32Array(l.outFeatures).fill(1);
        let j = 0;
        (l.enabled ?? [true]).forEach((on, g) => {
          if (!on) return;
          full.set(scale.subarray(j * l.groupWidth, (j + 1) * l.groupWidth), g * l.groupWidth);
          j++;
        });
        tensors.set(`${path}.ia3_l`, await hfTensor(full, [l.outFeatures, 1]));
      }
      return {
        adaptedPaths: paths,
        tensors,
        config: { target_modules: paths, exclude_modules: null, feedforward_modules: feedforward, fan_in_fan_out: false, init_ia3_weights: true },
      };
    },

    methodConfig(adapter, sites) {
      checkSupported(adapter);
      const linear = sites.selected.filter((s) => s.kind === 'linear');
      for (const p of adapter.modulesWith('ia3_l')) {
        if (!linear.some((s) => s.path === p)) adapter.fail(`'${p}' has an ia3_l vector but is not a linear injection site selected by 'target_modules'`);
      }
      if (linear.length === 0) adapter.fail(`'target_modules' selects no linear injection site of this backbone (${JSON.stringify(adapter.config.target_modules)})`);
      const scaled = [];
      const fed = [];
      for (const site of linear) {
        const raw = adapter.tensor(`${site.path}.ia3_l`, `ia3_l of '${site.path}'`);
        const ff = isFeedforward(adapter, site.path);
        const want = ff ? [1, site.in] : [site.out, 1];
        if (raw.shape.join(',') !== want.join(',')) {
          adapter.fail(`'${site.path}': ia3_l has shape [${raw.shape}], but a ${ff ? 'feedforward' : 'non-feedforward'} module by 'feedforward_modules' takes [${want}]`);
        }
        if (ff) {
          fed.push({ site });
          continue;
        }
        let groups;
        if (site.groups && site.groups.length > 1) {
          const v = toFloat32(raw);
          const gw = site.out / site.groups.length;
          const on = site.groups.map((_, g) => v.subarray(g * gw, (g + 1) * gw).some((x) => x !== 1));
          if (on.some(Boolean) && !on.every(Boolean)) groups = on;
        }
        scaled.push({ site, groups });
      }
      const feedforward = fed.length ? siteTargets(fed, sites.all, adapter.configPath) : [];
      const targets = [...(scaled.length ? siteTargets(scaled, sites.all, adapter.configPath) : []), ...feedforward];
      return { targets, feedforward };
    },

    loadAdapter(adapter, { model }) {
      checkSupported(adapter);
      const layers = ia3Layers(model);
      if (layers.length === 0) adapter.fail('the model has no IA3 layers to load an IA3 adapter into');
      for (const [path, l] of layers) {
        const key = `${path}.ia3_l`;
        const param = l.param('ia3_l');
        if (l.feedforward) {
          adapter.stage(param, adapter.float32(key, [1, l.inFeatures], `ia3_l of '${path}'`), key);
          continue;
        }
        const full = adapter.float32(key, [l.outFeatures, 1], `ia3_l of '${path}'`);
        const enabled = l.enabled ?? [true];
        const mine = new Float32Array(param.size);
        let j = 0;
        enabled.forEach((on, g) => {
          const part = full.subarray(g * l.groupWidth, (g + 1) * l.groupWidth);
          if (on) {
            mine.set(part, j * l.groupWidth);
            j++;
          } else if (part.some((x) => x !== 1)) {
            throw new PeftError(`${adapter.weightsPath}: '${key}' scales output group ${g} of '${path}', which this model's ia3 does not adapt; load it into a model that scales the whole layer`);
          }
        });
        adapter.stage(param, mine, key);
      }
    },
  };
}
