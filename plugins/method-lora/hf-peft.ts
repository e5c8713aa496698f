// LoRA in Hugging Face PEFT's format (peft_type LORA), both ways:
//   adapter_config.json        r, lora_alpha, lora_dropout, use_rslora, bias,
//                              target_modules (the adapted modules' paths),
//                              rank_pattern / alpha_pattern for grouped layers
//   adapter_model.safetensors  <path>.lora_A.weight [r, in], .lora_B.weight [out, r]
// Grouped LoRA (q and v of a fused qkv: lora_A [r*k, in], lora_B
// [(out/G)*k, r]) has no PEFT form; it is written as a plain LoRA of rank r*k
// on qkv whose lora_B [out, r*k] is block-structured (group g's rows hold the
// j-th enabled group's block in columns j*r..j*r+r, zeros elsewhere), with
// rank_pattern r*k and alpha_pattern alpha*k (alpha*sqrt(k) with rsLoRA), so
// B A * scaling is exactly the grouped update. Reading finds the groups again
// from that zero structure, also for k = 1 where the rank equals r: a layer
// with output groups is grouped when exactly rank/r' of its groups have
// non-zero lora_B rows (fewer than all) and those rows keep to their blocks.
import {
  PeftError,
  hfTensor,
  patternKey,
  patternValue,
  siteTargets,
  toFloat32,
  type HfPeftAdapter,
  type HfPeftCodec,
  type HfPeftSites,
  type LinearSite,
  type Module,
  type TensorToWrite,
} from '../../src/index.js';
import type { LoraConfig } from './config.js';
import { GroupedLoraLinear, isLoraLayer, type AnyLoraLayer } from './layer.js';

const OWNER = "method 'lora'";

/** Grouped LoRA's B `[(out/G)*k, r]` as a plain LoRA B `[out, r*k]`, block by block. */
export function groupedToFullB(b: Float32Array, enabled: readonly boolean[], groupWidth: number, r: number): Float32Array {
  const k = enabled.filter(Boolean).length;
  const out = new Float32Array(enabled.length * groupWidth * r * k);
  let j = 0;
  enabled.forEach((on, g) => {
    if (!on) return;
    for (let row = 0; row < groupWidth; row++) {
      for (let c = 0; c < r; c++) out[(g * groupWidth + row) * r * k + j * r + c] = b[(j * groupWidth + row) * r + c]!;
    }
    j++;
  });
  return out;
}

/** Where `full` breaks the block structure of `enabled` (row, column), or undefined when it keeps it. */
function blockViolation(full: Float32Array, enabled: readonly boolean[], groupWidth: number, r: number): [number, number] | undefined {
  const k = enabled.filter(Boolean).length;
  let j = 0;
  const slot = enabled.map((on) => (on ? j++ : -1));
  for (let g = 0; g < enabled.length; g++) {
    for (let row = 0; row < groupWidth; row++) {
      for (let col = 0; col < r * k; col++) {
        const inBlock = slot[g]! >= 0 && Math.floor(col / r) === slot[g];
        if (!inBlock && full[(g * groupWidth + row) * r * k + col] !== 0) return [g * groupWidth + row, col];
      }
    }
  }
  return undefined;
}

/** The inverse of `groupedToFullB`; a PeftError when `full` is not block-structured that way. */
export function fullToGroupedB(full: Float32Array, enabled: readonly boolean[], groupWidth: number, r: number, what: string): Float32Array {
  const bad = blockViolation(full, enabled, groupWidth, r);
  if (bad) {
    throw new PeftError(`${what}: lora_B is not block-structured for groups [${enabled.map((e) => (e ? 1 : 0))}] (non-zero at row ${bad[0]}, column ${bad[1]}); load it into a model that adapts the whole layer`);
  }
  const k = enabled.filter(Boolean).length;
  const out = new Float32Array(groupWidth * k * r);
  let j = 0;
  enabled.forEach((on, g) => {
    if (!on) return;
    for (let row = 0; row < groupWidth; row++) {
      for (let c = 0; c < r; c++) out[(j * groupWidth + row) * r + c] = full[(g * groupWidth + row) * r * k + j * r + c]!;
    }
    j++;
  });
  return out;
}

/**
 * The output groups a PEFT lora_B `[out, rank]` adapts, read from its zero
 * structure: the groups with a non-zero row, when there are fewer than all,
 * they divide the rank evenly and each keeps to its block. Otherwise
 * undefined (a whole-layer LoRA), with the reason when only the blocks failed.
 */
export function detectGroups(b: Float32Array, groups: number, out: number, rank: number): { enabled?: boolean[]; why?: string } {
  const gw = out / groups;
  const enabled = Array.from({ length: groups }, (_, g) => b.subarray(g * gw * rank, (g + 1) * gw * rank).some((v) => v !== 0));
  const k = enabled.filter(Boolean).length;
  if (k === 0 || k === groups) return {};
  if (rank % k !== 0) return { why: `${k} of its ${groups} output groups are non-zero, which does not divide rank ${rank}` };
  const bad = blockViolation(b, enabled, gw, rank / k);
  if (bad) return { why: `its non-zero groups [${enabled.map(Number)}] are not block-structured (non-zero at row ${bad[0]}, column ${bad[1]})` };
  return { enabled };
}

/** Every LoRA layer of `model`, with its path. */
function loraLayers(model: Module): [string, AnyLoraLayer][] {
  return [...model.namedModules()].filter((e): e is [string, AnyLoraLayer] => isLoraLayer(e[1]));
}

/** PEFT's init_lora_weights values whose adapters are relative to changed base weights. */
const BASE_CHANGING_INIT = ['pissa', 'olora', 'corda', 'loftq', 'lora_ga'];

function checkSupported(adapter: HfPeftAdapter): void {
  const c = adapter.config;
  if (c.fan_in_fan_out === true) adapter.fail("fan_in_fan_out adapters are not supported (the backbones' linears store weight [out, in])");
  if (c.lora_bias === true) adapter.fail("'lora_bias' (a trained bias on lora_B) has no peftjs form");
  const init = String(c.init_lora_weights ?? true).toLowerCase();
  const changing = BASE_CHANGING_INIT.find((p) => init.startsWith(p));
  if (changing) adapter.fail(`'init_lora_weights' ${JSON.stringify(c.init_lora_weights)}: this adapter is relative to base weights ${changing} changed; convert it in PEFT first (save_pretrained(..., path_initial_model_for_weight_conversion=...))`);
  if (Array.isArray(c.target_parameters) && c.target_parameters.length) adapter.fail("'target_parameters' (LoRA on bare parameters) has no peftjs form");
  if (c.layer_replication !== undefined && c.layer_replication !== null) adapter.fail("'layer_replication' has no peftjs form");
  if (c.trainable_token_indices !== undefined && c.trainable_token_indices !== null) adapter.fail("'trainable_token_indices' has no peftjs form");
  // core checked that rank_pattern is an object; LoRA's values are ranks
  for (const [key, v] of Object.entries((c.rank_pattern ?? {}) as Record<string, unknown>)) {
    if (!(Number.isSafeInteger(v) && (v as number) >= 1)) adapter.fail(`'rank_pattern' entry ${JSON.stringify(key.slice(0, 120))} must be a rank (an integer >= 1), got ${JSON.stringify(v)?.slice(0, 80)}`);
  }
}

export const loraHfPeft: HfPeftCodec<LoraConfig> = {
  peftTypes: ['LORA'],

  declines(config) {
    if (config.use_dora === true) return 'it is a DoRA adapter (use_dora: true); a DoRA method plugin reads those';
    return undefined;
  },

  async exportAdapter({ model }, config) {
    const layers = loraLayers(model);
    const tensors = new Map<string, TensorToWrite>();
    const rankPattern: Record<string, number> = {};
    const alphaPattern: Record<string, number> = {};
    for (const [path, l] of layers) {
      if (l.fanInFanOut) throw new PeftError(`${OWNER}: '${path}' stores its weight [in, out] (fan_in_fan_out); PEFT's config cannot say that per layer`);
      tensors.set(`${path}.lora_A.weight`, await hfTensor(l.param('lora_A').variable));
      const b = l.param('lora_B').variable;
      if (!(l instanceof GroupedLoraLinear)) {
        if (l.r !== config.r) throw new PeftError(`${OWNER}: '${path}' has rank ${l.r}, not the config's r ${config.r}`);
        tensors.set(`${path}.lora_B.weight`, await hfTensor(b));
        continue;
      }
      const k = l.enabled.filter(Boolean).length;
      const full = groupedToFullB((await b.data()) as Float32Array, l.enabled, l.groupWidth, l.r);
      tensors.set(`${path}.lora_B.weight`, await hfTensor(full, [l.outFeatures, l.r * k]));
      // every grouped layer gets its pattern, also k = 1 (where it equals r and alpha): it says which layers are grouped
      rankPattern[patternKey(path)] = l.r * k;
      alphaPattern[patternKey(path)] = config.rslora ? config.alpha * Math.sqrt(k) : config.alpha * k;
    }
    const paths = layers.map(([p]) => p);
    return {
      adaptedPaths: paths,
      tensors,
      config: {
        r: config.r,
        lora_alpha: config.alpha,
        lora_dropout: config.dropout,
        use_rslora: config.rslora,
        bias: config.bias,
        target_modules: paths,
        exclude_modules: null,
        layers_to_transform: null,
        layers_pattern: null,
        fan_in_fan_out: false,
        init_lora_weights: true,
        use_dora: false,
        rank_pattern: rankPattern,
        alpha_pattern: alphaPattern,
      },
    };
  },

  methodConfig(adapter: HfPeftAdapter, sites: HfPeftSites) {
    checkSupported(adapter);
    const r = adapter.number('r', 8);
    const bias = adapter.config.bias ?? 'none';
    if (bias !== 'none' && bias !== 'all' && bias !== 'lora_only') adapter.fail("'bias' must be none, all or lora_only");
    const linear = sites.selected.filter((s): s is LinearSite => s.kind === 'linear');
    for (const p of adapter.modulesWith('lora_A.weight')) {
      if (linear.some((s) => s.path === p)) continue;
      const isSite = sites.all.some((s) => s.path === p && s.kind === 'linear');
      adapter.fail(`'${p}' has LoRA tensors but ${isSite ? "'target_modules' (with exclude_modules, layers_to_transform) does not select it" : 'is not a linear injection site of this backbone'}`);
    }
    if (linear.length === 0) adapter.fail(`'target_modules' selects no linear injection site of this backbone (${JSON.stringify(adapter.config.target_modules)})`);
    // per module: its rank, and the output groups its lora_B adapts (undefined: the whole layer)
    const found = linear.map((site) => {
      const a = adapter.tensor(`${site.path}.lora_A.weight`, `lora_A of '${site.path}'`);
      const b = adapter.tensor(`${site.path}.lora_B.weight`, `lora_B of '${site.path}'`);
      const rank = a.shape[0]!;
      if (b.shape.length !== 2 || b.shape[0] !== site.out || b.shape[1] !== rank) {
        adapter.fail(`'${site.path}': lora_B has shape [${b.shape}], expected [${site.out}, ${rank}]`);
      }
      const g = site.groups && site.groups.length > 1 && site.out % site.groups.length === 0 ? detectGroups(toFloat32(b), site.groups.length, site.out, rank) : {};
      const k = g.enabled ? g.enabled.filter(Boolean).length : 1;
      return { site, rank, groups: g.enabled, unit: rank / k, why: g.why };
    });
    // peftjs's lora has one r: every whole layer's rank, every grouped layer's rank per group
    const unit = found.some((f) => f.unit === r) ? r : found[0]!.unit;
    const odd = found.find((f) => f.unit !== unit);
    if (odd) {
      const same = found.find((f) => f.unit === unit)!;
      const from = patternValue(adapter.config.rank_pattern as Record<string, number> | null, odd.site.path, `${adapter.configPath}: 'rank_pattern'`) !== undefined ? ' (rank_pattern)' : '';
      adapter.fail(
        `per-module ranks cannot be represented: '${odd.site.path}' has rank ${odd.rank}${odd.groups ? ` (${odd.rank / odd.unit} groups of ${odd.unit})` : ''}${from} but '${same.site.path}' has ${same.groups ? `${unit} per group` : `rank ${unit}`}; peftjs's lora has one rank r for every layer (a grouped layer: r per group)${odd.why ? `; as grouped LoRA: ${odd.why}` : ''}`,
      );
    }
    const targets = siteTargets(
      found.map((f) => ({ site: f.site, groups: f.groups })),
      sites.all,
      adapter.configPath,
    );
    return { r: unit, alpha: adapter.number('lora_alpha', 8), dropout: adapter.number('lora_dropout', 0), rslora: adapter.boolean('use_rslora', false), bias, targets };
  },

  loadAdapter(adapter, { model }) {
    checkSupported(adapter);
    const layers = loraLayers(model);
    if (layers.length === 0) adapter.fail(`the model has no LoRA layers to load a LORA adapter into`);
    const alpha = adapter.number('lora_alpha', 8);
    const rslora = adapter.boolean('use_rslora', false);
    const alphaPattern = adapter.config.alpha_pattern as Record<string, number> | null | undefined;
    for (const [path, l] of layers) {
      const aParam = l.param('lora_A');
      const bParam = l.param('lora_B');
      const a = adapter.float32(`${path}.lora_A.weight`, aParam.shape, `lora_A of '${path}'`);
      const rank = aParam.shape[0]!;
      let b: Float32Array;
      if (l instanceof GroupedLoraLinear) {
        const full = adapter.float32(`${path}.lora_B.weight`, [l.outFeatures, rank], `lora_B of '${path}'`);
        b = fullToGroupedB(full, l.enabled, l.groupWidth, l.r, `${adapter.weightsPath}: '${path}'`);
      } else {
        b = adapter.float32(`${path}.lora_B.weight`, bParam.shape, `lora_B of '${path}'`);
      }
      // PEFT's scaling of this module (its rank is lora_A's rows) against the layer's: the ratio goes into B
      const moduleAlpha = patternValue(alphaPattern, path, `${adapter.configPath}: 'alpha_pattern'`) ?? alpha;
      if (typeof moduleAlpha !== 'number') adapter.fail(`'alpha_pattern' gives '${path}' a non-number`);
      const ratio = (rslora ? moduleAlpha / Math.sqrt(rank) : moduleAlpha / rank) / l.scaling;
      if (Math.abs(ratio - 1) > 1e-12) b = b.map((v) => v * ratio);
      adapter.stage(aParam, a, `${path}.lora_A.weight`);
      adapter.stage(bParam, b, `${path}.lora_B.weight`);
    }
  },
};
