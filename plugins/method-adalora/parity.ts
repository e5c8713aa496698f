// Parity kinds `adalora.SVDLinear` and `adalora.RankAllocator` (fixtures
// README). The allocator kind follows the README's protocol: for t = 1..T,
// set every parameter and its gradient as stored for step t, run the
// allocator's update for t, and report every lora_E as `step/<t>/expect/<key>`;
// per step it also reports `budget`, `threshold` and `orth_regu` (on the
// stored parameters, before the update) as scalars.
import { Linear, Module, PeftError, runLayerFixture, tf, type Fixture, type ParityKind, type ScalarCheck } from '../../src/index.js';
import { SVDLinear } from './layer.js';
import { RankAllocator, type SvdTriplets } from './rank-allocator.js';
import { orthogonalRegulariser } from './regulariser.js';

function int(fixture: Fixture, key: string, min: number, from: Record<string, unknown> = fixture.config, where = ''): number {
  const v = from[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
    throw new PeftError(`${fixture.name}: config '${where}${key}' must be an integer >= ${min}, got ${JSON.stringify(v)}`);
  }
  return v;
}

function num(fixture: Fixture, key: string, fallback?: number): number {
  const v = fixture.config[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new PeftError(`${fixture.name}: config '${key}' must be a number, got ${JSON.stringify(v)}`);
  return v;
}

function svdLinear(inF: number, outF: number, r: number, alpha: number, bias: boolean): SVDLinear {
  const base = new Linear(inF, outF, bias);
  return new SVDLinear({ weight: base.param('weight'), bias: bias ? base.param('bias') : undefined }, { r, alpha });
}

export const svdLinearParity: ParityKind = {
  kind: 'adalora.SVDLinear',
  summary: "AdaLoRA's SVDLinear: y = x W^T + b + x (A*E)^T B^T * s / (ranknum + 1e-5), grads",
  run(fixture) {
    const inF = int(fixture, 'in_features', 1);
    const outF = int(fixture, 'out_features', 1);
    const r = int(fixture, 'r', 0);
    const bias = fixture.config.bias ?? true;
    if (typeof bias !== 'boolean') throw new PeftError(`${fixture.name}: config 'bias' must be true or false`);
    // the reference creates no A, E, B at rank 0
    return runLayerFixture(svdLinear(inF, outF, r, num(fixture, 'lora_alpha', 1), bias), fixture, { strict: r > 0 });
  },
};

class Group extends Module {}

interface StepRecord {
  step: number;
  budget?: number;
  threshold?: number | null;
  orth_regu?: number;
}

export const rankAllocatorParity: ParityKind = {
  kind: 'adalora.RankAllocator',
  summary: "AdaLoRA's RankAllocator trajectory: budget schedule, importance EMAs, global masking of E; orth_regu per step",
  run(fixture) {
    const c = fixture.config;
    const layersCfg = c.layers;
    if (typeof layersCfg !== 'object' || layersCfg === null || Object.keys(layersCfg).length === 0) {
      throw new PeftError(`${fixture.name}: config 'layers' must map layer names to {in_features, out_features}`);
    }
    const r = int(fixture, 'init_r', 1);
    const target = int(fixture, 'target_rank', 0);
    const schedule = {
      init_warmup: int(fixture, 'init_warmup', 0),
      final_warmup: int(fixture, 'final_warmup', 0),
      mask_interval: int(fixture, 'mask_interval', 1),
      total_step: int(fixture, 'total_step', 1),
      beta1: num(fixture, 'beta1', 0.85),
      beta2: num(fixture, 'beta2', 0.85),
    };
    const orthWeight = num(fixture, 'orth_reg_weight', 0.1);
    const root = new Group();
    const holder = root.registerModule('layers', new Group());
    const names = Object.keys(layersCfg);
    for (const name of names) {
      const spec = (layersCfg as Record<string, Record<string, unknown>>)[name]!;
      const inF = int(fixture, 'in_features', 1, spec, `layers.${name}.`);
      const outF = int(fixture, 'out_features', 1, spec, `layers.${name}.`);
      holder.registerModule(name, svdLinear(inF, outF, r, num(fixture, 'lora_alpha', 1), false));
    }
    const layers: SvdTriplets[] = names.map((name) => {
      const l = holder.child(name) as SVDLinear;
      return { name: `layers.${name}`, A: l.param('lora_A'), E: l.param('lora_E'), B: l.param('lora_B') };
    });
    const allocator = new RankAllocator(schedule, r * names.length, target * names.length);
    const tensors = new Map<string, tf.Tensor>();
    const scalars: ScalarCheck[] = [];
    const expected = new Map<number, StepRecord>();
    for (const s of (fixture.json.steps as StepRecord[] | undefined) ?? []) expected.set(s.step, s);
    try {
      for (let t = 1; t <= schedule.total_step; t++) {
        const params = fixture.group(`step/${t}/param/`);
        const grads = fixture.group(`step/${t}/grad/`);
        try {
          if (params.size === 0) throw new PeftError(`${fixture.name}: no tensors under 'step/${t}/param/'`);
          // A, E, B as stored for this step (the base weights play no part)
          const report = root.loadStateDict(params, { source: `${fixture.name} step ${t}`, strict: false });
          const bad = [...report.unexpected, ...report.mismatched.map((m) => m.key)];
          if (bad.length) throw new PeftError(`${fixture.name}: step/${t}/param/${bad[0]} does not fit the layers in config 'layers'`);
          for (const l of layers) {
            for (const key of [`${l.name}.lora_A`, `${l.name}.lora_E`, `${l.name}.lora_B`]) {
              if (!params.has(key)) throw new PeftError(`${fixture.name}: no tensor 'step/${t}/param/${key}'`);
            }
          }
          const regu = orthogonalRegulariser(
            layers.map((l) => ({ A: l.A.variable, B: l.B.variable })),
            orthWeight,
          );
          const orth = regu.dataSync()[0]!;
          regu.dispose();
          const result = allocator.update(t, layers, (key) => grads.get(key));
          for (const l of layers) tensors.set(`step/${t}/expect/${l.name}.lora_E`, tf.clone(l.E.variable));
          const exp = expected.get(t);
          if (exp) {
            if (exp.budget !== undefined) scalars.push({ name: `step/${t}/budget`, actual: result.budget, expected: exp.budget });
            if (exp.threshold !== undefined) scalars.push({ name: `step/${t}/threshold`, actual: result.threshold, expected: exp.threshold });
            if (exp.orth_regu !== undefined) scalars.push({ name: `step/${t}/orth_regu`, actual: orth, expected: exp.orth_regu });
          }
        } finally {
          for (const x of [...params.values(), ...grads.values()]) x.dispose();
        }
      }
    } finally {
      allocator.dispose();
      root.dispose();
    }
    return { tensors, scalars };
  },
};
