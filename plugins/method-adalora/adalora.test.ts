import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import {
  Linear,
  PeftError,
  Registry,
  ToyBackbone,
  compose,
  gradsByName,
  loadAdapter,
  methodLaws,
  readAdapterConfig,
  readSafetensors,
  runFixture,
  saveAdapter,
  tf,
  trainStep,
  Subject,
  LawTally,
} from '../../src/index.js';
import { addRow, matmul, randomMat, scaleMat, seededValues, transpose, addMat, type Mat } from '../../test/support/reference-math.js';
import { writeFixture } from '../../test/support/fixture-writer.js';
import { AdaloraInjector, SVDLinear, adaloraMethod, register } from './index.js';
import { adaloraLaws } from './laws.js';
import { FIXTURES } from '../../test/support/fixtures.js';


const registry = new Registry();
register(registry);
const tmp = mkdtempSync(join(tmpdir(), 'peftjs-adalora-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const arr = (m: Mat) => ({ shape: [m.rows, m.cols], data: m.data });

/** An adalora.SVDLinear fixture with float64 reference outputs and grads. */
function svdFixture(name: string, o: { inF: number; outF: number; r: number; alpha: number; bias: boolean; seed: number }) {
  const next = seededValues(o.seed);
  const [b, t] = [2, 3];
  const n = b * t;
  const W = randomMat(o.outF, o.inF, next);
  const bias = randomMat(1, o.outF, next);
  const A = randomMat(o.r, o.inF, next);
  const E = randomMat(o.r, 1, next);
  const B = randomMat(o.outF, o.r, next);
  const x = randomMat(n, o.inF, next);
  const U = randomMat(n, o.outF, next);
  const c = (o.alpha > 0 ? o.alpha : o.r) / Math.fround(o.r + 1e-5);
  const AE: Mat = { rows: o.r, cols: o.inF, data: A.data.map((v, i) => v * E.data[Math.floor(i / o.inF)]!) };
  const h = matmul(x, transpose(AE));
  let y = addMat(matmul(x, transpose(W)), scaleMat(matmul(h, transpose(B)), c));
  if (o.bias) y = addRow(y, bias.data);
  const dAE = scaleMat(matmul(transpose(matmul(U, B)), x), c);
  const dA: Mat = { rows: o.r, cols: o.inF, data: dAE.data.map((v, i) => v * E.data[Math.floor(i / o.inF)]!) };
  const dE: Mat = { rows: o.r, cols: 1, data: new Float64Array(o.r) };
  dAE.data.forEach((v, i) => (dE.data[Math.floor(i / o.inF)] += v * A.data[i]!));
  const tensors: Record<string, { shape: number[]; data: ArrayLike<number> }> = {
    'param/weight': arr(W),
    'param/lora_A': arr(A),
    'param/lora_E': arr(E),
    'param/lora_B': arr(B),
    'param/ranknum': { shape: [1], data: [o.r] },
    'input/x': { shape: [b, t, o.inF], data: x.data },
    'input/upstream': { shape: [b, t, o.outF], data: U.data },
    'output/y': { shape: [b, t, o.outF], data: y.data },
    'grad/lora_A': arr(dA),
    'grad/lora_E': arr(dE),
    'grad/lora_B': arr(scaleMat(matmul(transpose(U), h), c)),
  };
  if (o.bias) tensors['param/bias'] = { shape: [o.outF], data: bias.data };
  return writeFixture(tmp, name, { kind: 'adalora.SVDLinear', config: { in_features: o.inF, out_features: o.outF, r: o.r, lora_alpha: o.alpha, bias: o.bias } }, tensors);
}

interface AllocatorSpec {
  layers: Record<string, { in_features: number; out_features: number }>;
  init_r: number;
  target_rank: number;
  init_warmup: number;
  final_warmup: number;
  mask_interval: number;
  total_step: number;
  beta1: number;
  beta2: number;
  orth_reg_weight: number;
}

/** An adalora.RankAllocator trajectory from an independent float64 reference of the README protocol. */
function allocatorFixture(name: string, cfg: AllocatorSpec, seed: number) {
  const next = seededValues(seed);
  const names = Object.keys(cfg.layers);
  const n = names.length;
  const total = cfg.init_r * n;
  const target = cfg.target_rank * n;
  const r = cfg.init_r;
  const ema = new Map<string, Float64Array>();
  const unc = new Map<string, Float64Array>();
  const tensors: Record<string, { shape: number[]; data: ArrayLike<number> }> = {};
  const steps: { step: number; budget: number; threshold: number | null; orth_regu: number }[] = [];
  const T = cfg.total_step;
  for (let t = 1; t <= T; t++) {
    const vals = new Map<string, { p: Mat; g: Mat }>();
    for (const ln of names) {
      const { in_features: inF, out_features: outF } = cfg.layers[ln]!;
      for (const [k, rows, cols] of [['lora_A', r, inF], ['lora_E', r, 1], ['lora_B', outF, r]] as const) {
        const key = `layers.${ln}.${k}`;
        const p = randomMat(rows, cols, next, -0.5, 0.5);
        const g = randomMat(rows, cols, next, -0.5, 0.5);
        vals.set(key, { p, g });
        tensors[`step/${t}/param/${key}`] = arr(p);
        tensors[`step/${t}/grad/${key}`] = arr(g);
      }
    }
    // orth_regu on the stored parameters
    let reg = 0;
    for (const ln of names) {
      const A = vals.get(`layers.${ln}.lora_A`)!.p;
      const B = vals.get(`layers.${ln}.lora_B`)!.p;
      for (const m of [matmul(A, transpose(A)), matmul(transpose(B), B)]) {
        let s = 0;
        m.data.forEach((v, i) => {
          const d = v - (Math.floor(i / m.cols) === i % m.cols ? 1 : 0);
          s += d * d;
        });
        reg += Math.sqrt(s);
      }
    }
    if (t < T - cfg.final_warmup) {
      for (const [key, { p, g }] of vals) {
        const e = ema.get(key) ?? new Float64Array(p.data.length);
        const u = unc.get(key) ?? new Float64Array(p.data.length);
        p.data.forEach((pv, i) => {
          const ipt = Math.abs(pv * g.data[i]!);
          e[i] = cfg.beta1 * e[i]! + (1 - cfg.beta1) * ipt;
          u[i] = cfg.beta2 * u[i]! + (1 - cfg.beta2) * Math.abs(ipt - e[i]!);
        });
        ema.set(key, e);
        unc.set(key, u);
      }
    }
    let budget: number;
    let mask: boolean;
    if (t <= cfg.init_warmup) [budget, mask] = [total, false];
    else if (t > T - cfg.final_warmup) [budget, mask] = [target, true];
    else {
      const coeff = 1 - (t - cfg.init_warmup) / (T - cfg.final_warmup - cfg.init_warmup);
      [budget, mask] = [Math.trunc(target + (total - target) * coeff ** 3), t % cfg.mask_interval === 0];
    }
    let threshold: number | null = null;
    const E = new Map(names.map((ln) => [ln, Float64Array.from(vals.get(`layers.${ln}.lora_E`)!.p.data)]));
    if (mask && total - budget > 0) {
      const score = (key: string, i: number) => (ema.get(key)?.[i] ?? 0) * (unc.get(key)?.[i] ?? 0);
      const per = new Map<string, number[]>();
      for (const ln of names) {
        const { in_features: inF, out_features: outF } = cfg.layers[ln]!;
        per.set(
          ln,
          Array.from({ length: r }, (_, i) => {
            let a = 0;
            for (let j = 0; j < inF; j++) a += score(`layers.${ln}.lora_A`, i * inF + j);
            let b = 0;
            for (let k = 0; k < outF; k++) b += score(`layers.${ln}.lora_B`, k * r + i);
            return score(`layers.${ln}.lora_E`, i) + (a / inF + b / outF);
          }),
        );
      }
      const sorted = [...per.values()].flat().sort((a, b) => a - b);
      threshold = sorted[total - budget - 1]!;
      for (const ln of names) per.get(ln)!.forEach((s, i) => s <= threshold! && (E.get(ln)![i] = 0));
    }
    for (const ln of names) tensors[`step/${t}/expect/layers.${ln}.lora_E`] = { shape: [r, 1], data: E.get(ln)! };
    steps.push({ step: t, budget, threshold, orth_regu: (cfg.orth_reg_weight * reg) / (2 * n) });
  }
  return writeFixture(tmp, name, { kind: 'adalora.RankAllocator', config: cfg as unknown as Record<string, unknown>, atol: 1e-5, rtol: 1e-4, steps }, tensors);
}

describe('adalora parity', () => {
  for (const name of ['svd_linear', 'adalora_allocator']) {
    it(`matches ${name}`, async () => {
      const r = await runFixture(join(FIXTURES, `${name}.json`), registry);
      console.log(`${name}: max abs error ${r.maxAbs.toExponential(2)} over ${r.checks.length} checks`);
      expect(r.checks.filter((c) => !c.ok)).toEqual([]);
      expect(r.ok).toBe(true);
    });
  }

  const svd = [
    { inF: 9, outF: 5, r: 3, alpha: 0, bias: false, seed: 1 },
    { inF: 4, outF: 12, r: 1, alpha: 2, bias: true, seed: 2 },
    { inF: 6, outF: 6, r: 8, alpha: 1, bias: true, seed: 3 },
  ];
  for (const [i, o] of svd.entries()) {
    it(`adalora.SVDLinear in general: ${o.inF}->${o.outF}, r ${o.r}, alpha ${o.alpha}`, async () => {
      const r = await runFixture(svdFixture(`svd_${i}`, o), registry);
      expect(r.checks.filter((c) => !c.ok)).toEqual([]);
      expect(r.ok).toBe(true);
    });
  }

  const schedules: [AllocatorSpec, number][] = [
    [
      {
        layers: { a: { in_features: 6, out_features: 10 }, b: { in_features: 10, out_features: 4 }, c: { in_features: 5, out_features: 5 } },
        init_r: 3, target_rank: 1, init_warmup: 1, final_warmup: 2, mask_interval: 3, total_step: 12,
        beta1: 0.7, beta2: 0.9, orth_reg_weight: 0.3,
      },
      21,
    ],
    [
      { layers: { q: { in_features: 8, out_features: 24 }, p: { in_features: 8, out_features: 8 } }, init_r: 5, target_rank: 2, init_warmup: 0, final_warmup: 0, mask_interval: 1, total_step: 7, beta1: 0.85, beta2: 0.85, orth_reg_weight: 0.1 },
      22,
    ],
    [
      { layers: { only: { in_features: 7, out_features: 3 } }, init_r: 4, target_rank: 0, init_warmup: 2, final_warmup: 3, mask_interval: 2, total_step: 9, beta1: 0.5, beta2: 0.6, orth_reg_weight: 1 },
      23,
    ],
  ];
  for (const [i, [cfg, seed]] of schedules.entries()) {
    it(`adalora.RankAllocator in general: schedule ${i} (r ${cfg.init_r} -> ${cfg.target_rank}, T ${cfg.total_step})`, async () => {
      const r = await runFixture(allocatorFixture(`alloc_${i}`, cfg, seed), registry);
      expect(r.checks.filter((c) => !c.ok)).toEqual([]);
      expect(r.ok).toBe(true);
    });
  }
});

describe('SVDLinear', () => {
  it('prunes to rank 0 and then equals its base exactly, with grads and merge', () => {
    const base = new Linear(5, 4);
    const plain = tf.randomUniform([3, 5], -1, 1, 'float32', 4);
    const y0 = base.forward(plain);
    const layer = new SVDLinear({ weight: base.param('weight'), bias: base.param('bias') }, { r: 3, alpha: 1 });
    layer.param('lora_E').assign(tf.tensor2d([[1], [2], [3]]));
    layer.prune([true, false, true]);
    expect(layer.param('lora_A').shape).toEqual([2, 5]);
    expect(Array.from(layer.param('lora_E').variable.dataSync())).toEqual([1, 3]);
    expect(layer.param('lora_B').shape).toEqual([4, 2]);
    layer.prune([false, false]);
    expect(layer.rank).toBe(0);
    const y1 = layer.forward(plain);
    expect(Array.from(y1.dataSync())).toEqual(Array.from(y0.dataSync()));
    const { value, grads } = gradsByName(layer, () => tf.sum(layer.forward(plain)));
    expect(grads.get('grad/lora_A')!.shape).toEqual([0, 5]);
    value.dispose();
    for (const g of grads.values()) g.dispose();
    const w = Array.from(layer.param('weight').variable.dataSync());
    layer.merge();
    layer.unmerge();
    expect(Array.from(layer.param('weight').variable.dataSync())).toEqual(w);
    for (const t of [plain, y0, y1]) t.dispose();
    layer.dispose();
  });
});

describe('adalora method', () => {
  const config = { init_r: 3, target_r: 1, alpha: 1, targets: ['attn.qkv', 'attn.proj', 'mlp.fc1', 'mlp.fc2'], init_warmup: 1, final_warmup: 2, mask_interval: 1, total_step: 6 };

  it('injects SVDLinear with the reference names and shapes', () => {
    const toy = new ToyBackbone({ depth: 1, dim: 4, hidden: 6, seed: 1 });
    const peft = compose(toy, registry.createMethod('adalora', { init_r: 2, target_r: 1, alpha: 1, targets: ['attn.qkv', 'attn.proj', 'mlp.fc1', 'mlp.fc2'] }), { trainDecoder: false });
    const qkv = toy.model.getModule('blocks.0.attn.qkv');
    expect(qkv).toBeInstanceOf(SVDLinear);
    expect(qkv.param('lora_A').shape).toEqual([2, 4]);
    expect(qkv.param('lora_E').shape).toEqual([2, 1]);
    expect(qkv.param('lora_B').shape).toEqual([12, 2]);
    expect(Array.from(qkv.param('ranknum').variable.dataSync())).toEqual([2]);
    expect(qkv.param('ranknum').buffer).toBe(true);
    expect(peft.methodKeys).toContain('blocks.0.attn.qkv.ranknum');
    expect(peft.report().methodParameters).toBe(2 * (4 + 12 + 1) + 2 * (4 + 4 + 1) + 2 * (4 + 6 + 1) + 2 * (6 + 4 + 1));
    toy.dispose();
  });

  it('runs the allocator on the global step during training: masking happens', () => {
    const s = Subject.create(adaloraMethod, { seed: 3, depth: 1, dim: 6, hidden: 6, batch: 1, tokens: 3 }, config, new LawTally());
    s.compose(new LawTally());
    const upstream = tf.randomUniform([1, 3, 6], -1, 1, 'float32', 5);
    for (let step = 1; step <= 6; step++) trainStep(s, upstream, step, 0.5);
    const kept = s.model.namedParameters().filter(([k]) => k.endsWith('lora_E')).reduce((n, [, p]) => n + p.variable.dataSync().filter((v) => v !== 0).length, 0);
    expect(kept).toBeLessThanOrEqual(4 * 1); // budget target_r * n = 4
    const inj = s.method as AdaloraInjector;
    expect(inj.lastAllocation?.step).toBe(6);
    expect(inj.budgetAt(6)).toBe(4);
    upstream.dispose();
    s.dispose();
  });

  it('saves the rank pattern and pruned tensors; loading rebuilds the shapes (rank 0 allowed)', async () => {
    const s = Subject.create(adaloraMethod, { seed: 4, depth: 1, dim: 6, hidden: 6, batch: 1, tokens: 3 }, { ...config, target_r: 0 }, new LawTally());
    const peft = s.compose(new LawTally());
    // give E non-zero values, then prune every triplet in the final phase
    for (const [k, p] of s.model.namedParameters()) if (k.endsWith('lora_E')) p.assign(tf.onesLike(p.variable));
    const upstream = tf.randomUniform([1, 3, 6], -1, 1, 'float32', 5);
    for (let step = 1; step <= 6; step++) trainStep(s, upstream, step, 0.01);
    upstream.dispose();
    const dir = join(tmp, 'pruned');
    await saveAdapter(dir, peft);
    const cfg = readAdapterConfig(dir);
    const pattern = cfg.state.rank_pattern as Record<string, boolean[]>;
    expect(Object.keys(pattern).sort()).toEqual(['blocks.0.attn.proj', 'blocks.0.attn.qkv', 'blocks.0.mlp.fc1', 'blocks.0.mlp.fc2']);
    expect(Object.values(pattern).every((p) => p.length === 3 && p.every((b) => !b))).toBe(true);
    const file = readSafetensors(join(dir, 'adapter_model.safetensors'));
    expect(file.tensors.get('blocks.0.attn.qkv.lora_A')!.shape).toEqual([0, 6]);
    expect(file.tensors.get('blocks.0.attn.qkv.lora_B')!.shape).toEqual([18, 0]);
    expect(JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')).method).toBe('adalora');
    const y = s.forward();
    const s2 = Subject.create(adaloraMethod, s.shape, { ...config, target_r: 0 }, new LawTally());
    const peft2 = s2.compose(new LawTally());
    loadAdapter(dir, peft2);
    expect((s2.model.getModule('blocks.0.mlp.fc1') as SVDLinear).rank).toBe(0);
    const y2 = s2.forward();
    expect(Array.from(y2.dataSync())).toEqual(Array.from(y.dataSync()));
    // saving the loaded (pruned) model again round-trips too
    await saveAdapter(join(tmp, 'pruned2'), peft2);
    expect(readAdapterConfig(join(tmp, 'pruned2')).state.rank_pattern).toEqual(pattern);
    for (const t of [y, y2]) t.dispose();
    s.dispose();
    s2.dispose();
  });

  const bad: [Record<string, unknown>, RegExp][] = [
    [{ init_r: 4, target_r: 8 }, /invalid config 'target_r': must be <= init_r \(4\)/],
    [{ init_warmup: 10, final_warmup: 20, total_step: 30 }, /invalid config 'total_step': must be > init_warmup \+ final_warmup/],
    [{ beta1: 1 }, /invalid config 'beta1': must be in \(0, 1\)/],
    [{ beta2: 0 }, /invalid config 'beta2': must be in \(0, 1\)/],
    [{ orth_reg_weight: -0.1 }, /invalid config 'orth_reg_weight'/],
    [{ init_r: 0 }, /invalid config 'init_r'/],
    [{ mask_interval: 0 }, /invalid config 'mask_interval'/],
    [{ targets: ['attn.qkv[q,v]'] }, /invalid config 'targets': 'attn.qkv\[q,v\]': AdaLoRA adapts whole layers/],
    [{ target_rank: 2 }, /unknown key\(s\) target_rank/],
  ];
  for (const [c, re] of bad) {
    it(`rejects ${JSON.stringify(c)}`, () => {
      expect(() => registry.createMethod('adalora', c)).toThrow(PeftError);
      expect(() => registry.createMethod('adalora', c)).toThrow(re);
    });
  }

  it('is reachable as sam_adalora and accepts the backbone engineers\' config', () => {
    expect(registry.method('sam_adalora').id).toBe('adalora');
    const m = registry.createMethod('adalora', { init_r: 4, target_r: 2, alpha: 1, targets: ['attn.qkv', 'attn.proj', 'mlp.fc1', 'mlp.fc2'] });
    expect(m.config.init_r).toBe(4);
  });
});

describe('adalora laws', () => {
  const configs = fc
    .record({
      init_r: fc.integer({ min: 1, max: 4 }),
      alpha: fc.constantFrom(0, 1, 4),
      orth_reg_weight: fc.constantFrom(0, 0.1),
      init_warmup: fc.integer({ min: 0, max: 2 }),
      final_warmup: fc.integer({ min: 0, max: 2 }),
      mask_interval: fc.integer({ min: 1, max: 2 }),
      targets: fc.constantFrom(['attn.qkv', 'attn.proj', 'mlp.fc1', 'mlp.fc2'], ['mlp.*'], ['attn.proj']),
    })
    .map((c) => ({ ...c, target_r: Math.floor(c.init_r / 2), total_step: c.init_warmup + c.final_warmup + 1 }));
  for (const law of [...methodLaws(adaloraMethod, { configs }), ...adaloraLaws(adaloraMethod)]) {
    it(law.name, async () => {
      const r = await law.run({ numRuns: 8, seed: 13 });
      expect(r.error ?? '').toBe('');
      expect(r.ok).toBe(true);
    });
  }
});
