// Parity kinds `lora.Linear` and `lora.MergedLinear` (fixtures README): the
// layer is built from the fixture's config, loaded from `param/`, run on
// `input/x`; outputs, the merged weight and grads of L = sum(y * upstream).
import {
  Linear,
  PeftError,
  runLayerFixture,
  tf,
  type Fixture,
  type ParityKind,
} from '../../src/index.js';
import { GroupedLoraLinear, LoraLinear, baseParamsOf } from './layer.js';

/** A config value that must be a positive integer (or zero when allowed). */
export function configInt(fixture: Fixture, key: string, min = 1): number {
  const v = fixture.config[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
    throw new PeftError(`${fixture.name}: config '${key}' must be an integer >= ${min}, got ${JSON.stringify(v)}`);
  }
  return v;
}

export function configNumber(fixture: Fixture, key: string, fallback?: number): number {
  const v = fixture.config[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new PeftError(`${fixture.name}: config '${key}' must be a number, got ${JSON.stringify(v)}`);
  return v;
}

export function configBool(fixture: Fixture, key: string, fallback: boolean): boolean {
  const v = fixture.config[key] ?? fallback;
  if (typeof v !== 'boolean') throw new PeftError(`${fixture.name}: config '${key}' must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

/** A base linear with PyTorch's layout, or `[in, out]` when `fanInFanOut`. */
function baseLinear(inF: number, outF: number, bias: boolean, fanInFanOut: boolean): Linear {
  const base = new Linear(inF, outF, bias);
  if (fanInFanOut) base.registerParameter('weight', tf.zeros([inF, outF]));
  return base;
}

export const loraLinearParity: ParityKind = {
  kind: 'lora.Linear',
  summary: "loralib's Linear: y = x W^T + b + x A^T B^T * alpha / r, merged weight, grads",
  run(fixture) {
    const inF = configInt(fixture, 'in_features');
    const outF = configInt(fixture, 'out_features');
    const r = configInt(fixture, 'r');
    const alpha = configNumber(fixture, 'lora_alpha', 1);
    const fanInFanOut = configBool(fixture, 'fan_in_fan_out', false);
    const base = baseLinear(inF, outF, configBool(fixture, 'bias', true), fanInFanOut);
    const layer = new LoraLinear(baseParamsOf(base), { r, scaling: alpha / r, fanInFanOut });
    return runLayerFixture(layer, fixture, { extra: (tensors) => {
      layer.merge();
      tensors.set('output/merged_weight', tf.clone(layer.param('weight').variable));
      layer.unmerge();
    } });
  },
};

export const loraMergedLinearParity: ParityKind = {
  kind: 'lora.MergedLinear',
  summary: "loralib's MergedLinear: grouped LoRA on the enabled groups of a fused projection",
  run(fixture) {
    const inF = configInt(fixture, 'in_features');
    const outF = configInt(fixture, 'out_features');
    const r = configInt(fixture, 'r');
    const alpha = configNumber(fixture, 'lora_alpha', 1);
    const enabled = fixture.config.enable_lora;
    if (!Array.isArray(enabled) || enabled.length === 0 || !enabled.every((e) => typeof e === 'boolean')) {
      throw new PeftError(`${fixture.name}: config 'enable_lora' must be a non-empty list of booleans`);
    }
    const fanInFanOut = configBool(fixture, 'fan_in_fan_out', false);
    const base = baseLinear(inF, outF, configBool(fixture, 'bias', true), fanInFanOut);
    const layer = new GroupedLoraLinear(baseParamsOf(base), { r, scaling: alpha / r, fanInFanOut, enabled });
    return runLayerFixture(layer, fixture, { extra: (tensors) => {
      if (!fixture.has('output/merged_weight')) return;
      layer.merge();
      tensors.set('output/merged_weight', tf.clone(layer.param('weight').variable));
      layer.unmerge();
    } });
  },
};
