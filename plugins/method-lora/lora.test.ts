import { mkdtempSync, rmSync } from 'node:fs';
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
  methodLaws,
  runFixture,
  tf,
  FoldedDelta,
} from '../../src/index.js';
import { hcat, matmul, randomMat, scaleMat, seededValues, sliceCols, sliceRows, transpose, vcat, addMat, addRow, zerosMat, type Mat } from '../../test/support/reference-math.js';
import { writeFixture } from '../../test/support/fixture-writer.js';
import { GroupedLoraLinear, LoraLinear, baseParamsOf, loraMethod, register } from './index.js';
import { FIXTURES } from '../../test/support/fixtures.js';


const registry = new Registry();
register(registry);
const tmp = mkdtempSync(join(tmpdir(), 'peftjs-lora-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const arr = (m: Mat) => ({ shape: [m.rows, m.cols], data: m.data });

/** A lora.Linear / lora.MergedLinear fixture with float64 reference outputs and grads. */
function loraFixture(name: string, o: { inF: number; outF: number; r: number; alpha: number; bias: boolean; enable?: boolean[]; seed: number; fanInFanOut?: boolean }) {
  const next = seededValues(o.seed);
  const [b, t] = [2, 3];
  const n = b * t;
  const groups = o.enable ?? [true];
  const k = groups.filter(Boolean).length;
  const gw = o.outF / groups.length;
  const W = randomMat(o.outF, o.inF, next);
  const bias = randomMat(1, o.outF, next);
  const A = randomMat(o.r * k, o.inF, next);
  const B = randomMat(gw * k, o.r, next); // non-zero, unlike the init
  const x = randomMat(n, o.inF, next);
  const U = randomMat(n, o.outF, next);
  const s = o.alpha / o.r;
  let y = matmul(x, transpose(W));
  if (o.bias) y = addRow(y, bias.data);
  const parts: Mat[] = [];
  const dA: Mat[] = [];
  const dB: Mat[] = [];
  const dW: Mat[] = [];
  let j = 0;
  groups.forEach((on, g) => {
    if (!on) {
      parts.push(zerosMat(n, gw));
      dW.push(zerosMat(gw, o.inF));
      return;
    }
    const Aj = sliceRows(A, j * o.r, o.r);
    const Bj = sliceRows(B, j * gw, gw);
    const h = matmul(x, transpose(Aj));
    parts.push(scaleMat(matmul(h, transpose(Bj)), s));
    const Ug = sliceCols(U, g * gw, gw);
    dB.push(scaleMat(matmul(transpose(Ug), h), s));
    dA.push(scaleMat(matmul(transpose(matmul(Ug, Bj)), x), s));
    dW.push(scaleMat(matmul(Bj, Aj), s));
    j++;
  });
  y = addMat(y, hcat(parts));
  const merged = addMat(W, vcat(dW));
  const tensors: Record<string, { shape: number[]; data: ArrayLike<number> }> = {
    'param/weight': arr(o.fanInFanOut ? transpose(W) : W),
    'param/lora_A': arr(A),
    'param/lora_B': arr(B),
    'input/x': { shape: [b, t, o.inF], data: x.data },
    'input/upstream': { shape: [b, t, o.outF], data: U.data },
    'output/y': { shape: [b, t, o.outF], data: y.data },
    'output/merged_weight': arr(o.fanInFanOut ? transpose(merged) : merged),
    'grad/lora_A': arr(vcat(dA)),
    'grad/lora_B': arr(vcat(dB)),
  };
  if (o.bias) tensors['param/bias'] = { shape: [o.outF], data: bias.data };
  const config: Record<string, unknown> = { in_features: o.inF, out_features: o.outF, r: o.r, lora_alpha: o.alpha, bias: o.bias, fan_in_fan_out: o.fanInFanOut ?? false };
  if (o.enable) config.enable_lora = o.enable;
  return writeFixture(tmp, name, { kind: o.enable ? 'lora.MergedLinear' : 'lora.Linear', config }, tensors);
}

describe('lora parity', () => {
  for (const name of ['lora_linear', 'lora_merged_qkv']) {
    it(`matches ${name}`, async () => {
      const r = await runFixture(join(FIXTURES, `${name}.json`), registry);
      console.log(`${name}: max abs error ${r.maxAbs.toExponential(2)}`);
      expect(r.error).toBeUndefined();
      expect(r.checks.filter((c) => !c.ok)).toEqual([]);
      expect(r.ok).toBe(true);
    });
  }

  const linear = [
    { inF: 7, outF: 5, r: 1, alpha: 3, bias: false, seed: 1 },
    { inF: 16, outF: 9, r: 8, alpha: 16, bias: true, seed: 2 },
    { inF: 3, outF: 30, r: 2, alpha: 0.5, bias: true, seed: 3 },
    { inF: 6, outF: 4, r: 2, alpha: 2, bias: true, seed: 8, fanInFanOut: true },
  ];
  for (const [i, o] of linear.entries()) {
    it(`lora.Linear in general: ${o.inF}->${o.outF}, r ${o.r}, alpha ${o.alpha}, bias ${o.bias}${o.fanInFanOut ? ', fan_in_fan_out' : ''}`, async () => {
      const r = await runFixture(loraFixture(`linear_${i}`, o), registry);
      expect(r.checks.filter((c) => !c.ok)).toEqual([]);
      expect(r.ok).toBe(true);
    });
  }

  const grouped = [
    { inF: 8, outF: 12, r: 2, alpha: 1, bias: true, enable: [true, true, false], seed: 4 },
    { inF: 5, outF: 8, r: 3, alpha: 4, bias: false, enable: [false, true, false, true], seed: 5 },
    { inF: 6, outF: 9, r: 1, alpha: 2, bias: true, enable: [true, true, true], seed: 6 },
    { inF: 4, outF: 6, r: 2, alpha: 1, bias: true, enable: [false, true, false], seed: 7 },
  ];
  for (const [i, o] of grouped.entries()) {
    it(`lora.MergedLinear in general: groups [${o.enable}], r ${o.r}`, async () => {
      const r = await runFixture(loraFixture(`grouped_${i}`, o), registry);
      expect(r.checks.filter((c) => !c.ok)).toEqual([]);
      expect(r.ok).toBe(true);
    });
  }
});

describe('lora layers', () => {
  it('equal the base at init (B = 0) and fold/unfold bit-exactly', () => {
    const toy = new ToyBackbone({ depth: 1, dim: 6, hidden: 8, seed: 3 });
    const x = tf.randomUniform([2, 3, 6], -1, 1, 'float32', 9) as tf.Tensor3D;
    const y0 = toy.forward(x);
    const peft = compose(toy, registry.createMethod('lora', { r: 2, alpha: 1, targets: ['attn.qkv[q,v]', 'mlp.fc1', 'mlp.fc2'] }), { trainDecoder: false });
    const y1 = toy.forward(x);
    expect(Array.from(y1.dataSync())).toEqual(Array.from(y0.dataSync()));
    const qkv = toy.model.getModule('blocks.0.attn.qkv');
    expect(qkv).toBeInstanceOf(GroupedLoraLinear);
    expect(toy.model.getModule('blocks.0.mlp.fc1')).toBeInstanceOf(LoraLinear);
    expect(toy.model.getModule('blocks.0.attn.proj')).not.toBeInstanceOf(LoraLinear);
    const shapes = Object.fromEntries(toy.model.namedParameters().filter(([k]) => k.includes('lora_')).map(([k, p]) => [k, p.shape]));
    expect(shapes).toEqual({
      'blocks.0.attn.qkv.lora_A': [4, 6],
      'blocks.0.attn.qkv.lora_B': [12, 2],
      'blocks.0.mlp.fc1.lora_A': [2, 6],
      'blocks.0.mlp.fc1.lora_B': [8, 2],
      'blocks.0.mlp.fc2.lora_A': [2, 8],
      'blocks.0.mlp.fc2.lora_B': [6, 2],
    });
    expect(peft.trainable().map(([k]) => k).sort()).toEqual(Object.keys(shapes).sort());
    // the base weights are adopted under their own names, frozen
    expect(toy.model.namedParameters().find(([k]) => k === 'blocks.0.attn.qkv.weight')![1].trainable).toBe(false);
    expect(peft.report().methodParameters).toBe(4 * 6 + 12 * 2 + 2 * 14 + 2 * 14);
    for (const t of [x, y0, y1]) t.dispose();
    toy.dispose();
  });

  it('grouped LoRA leaves disabled groups (k of q,k,v) untouched', () => {
    const toy = new ToyBackbone({ depth: 1, dim: 4, hidden: 4, seed: 5 });
    compose(toy, registry.createMethod('lora', { r: 2, targets: ['attn.qkv[q,v]'] }), { trainDecoder: false });
    const layer = toy.model.getModule('blocks.0.attn.qkv') as GroupedLoraLinear;
    layer.param('lora_B').assign(tf.randomUniform([8, 2], -1, 1, 'float32', 2));
    const d = layer.deltaWeight();
    const rows = d.arraySync() as number[][];
    expect(rows.slice(4, 8).flat().every((v) => v === 0)).toBe(true);
    expect(rows.slice(0, 4).flat().some((v) => v !== 0)).toBe(true);
    expect(rows.slice(8, 12).flat().some((v) => v !== 0)).toBe(true);
    d.dispose();
    toy.dispose();
  });

  it('rsLoRA scales by alpha / sqrt(r)', () => {
    const a = registry.createMethod('lora', { r: 4, alpha: 8, rslora: true }) as unknown as { scaling: number };
    const b = registry.createMethod('lora', { r: 4, alpha: 8 }) as unknown as { scaling: number };
    expect(a.scaling).toBe(4);
    expect(b.scaling).toBe(2);
  });

  it('dropout acts on the branch only in training', () => {
    const toy = new ToyBackbone({ depth: 1, dim: 4, hidden: 4, seed: 5 });
    compose(toy, registry.createMethod('lora', { r: 2, dropout: 0.5, targets: ['mlp.fc1'] }), { trainDecoder: false });
    const layer = toy.model.getModule('blocks.0.mlp.fc1') as LoraLinear;
    layer.param('lora_B').assign(tf.ones([4, 2]));
    const x = tf.ones([3, 4]);
    const e1 = layer.forward(x);
    const e2 = layer.forward(x);
    expect(Array.from(e1.dataSync())).toEqual(Array.from(e2.dataSync()));
    toy.model.train();
    const t1 = layer.forward(x);
    expect(Array.from(t1.dataSync())).not.toEqual(Array.from(e1.dataSync()));
    for (const t of [x, e1, e2, t1]) t.dispose();
    toy.dispose();
  });

  it('bias modes: none, all, lora_only', () => {
    const trainableBiases = (bias: string) => {
      const toy = new ToyBackbone({ depth: 2, dim: 4, hidden: 4, seed: 1 });
      const peft = compose(toy, registry.createMethod('lora', { r: 1, bias, targets: ['mlp.fc1'] }), { trainDecoder: false });
      const names = peft.trainable().map(([k]) => k).filter((k) => k.endsWith('bias'));
      toy.dispose();
      return names;
    };
    expect(trainableBiases('none')).toEqual([]);
    expect(trainableBiases('lora_only')).toEqual(['blocks.0.mlp.fc1.bias', 'blocks.1.mlp.fc1.bias']);
    expect(trainableBiases('all')).toHaveLength(2 * 6); // norm1, qkv, proj, norm2, fc1, fc2 per block
  });

  it('fold/unfold restores weights bit for bit even when (W + d) - d != W', () => {
    const m = new LoraLinear(baseParamsOf(new Linear(4, 4, false)), { r: 1, scaling: 1 });
    const w = m.param('weight');
    const hard = tf.tensor2d([[1e-8, 1, 3e7, -2.5e-3], [0.1, 0.2, 0.3, 1e-30], [5, -5, 1e-3, 7], [1, 1, 1, 1]]);
    w.assign(hard);
    const before = Array.from(w.variable.dataSync());
    const delta = tf.tensor2d([[1, 1e-8, 0.7, 3.3], [1e7, 0.3, -0.1, 1], [1e-9, 5e6, 2, 3], [0, 0, 0, 0]]);
    const folded = FoldedDelta.fold(w, delta);
    expect(Array.from(w.variable.dataSync())).not.toEqual(before);
    folded.unfold(w);
    expect(Array.from(w.variable.dataSync())).toEqual(before);
    hard.dispose();
    m.dispose();
  });
});

describe('lora config', () => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ r: 0 }, /invalid config 'r'/],
    [{ r: 2.5 }, /invalid config 'r'/],
    [{ alpha: 0 }, /invalid config 'alpha'/],
    [{ dropout: 1 }, /invalid config 'dropout'/],
    [{ bias: 'some' }, /invalid config 'bias'/],
    [{ targets: [] }, /invalid config 'targets'/],
    [{ rank: 4 }, /unknown key\(s\) rank/],
  ];
  for (const [config, re] of bad) {
    it(`rejects ${JSON.stringify(config)}`, () => {
      expect(() => registry.createMethod('lora', config)).toThrow(PeftError);
      expect(() => registry.createMethod('lora', config)).toThrow(re);
    });
  }

  it('a target that matches nothing is an error naming it', () => {
    const toy = new ToyBackbone({ depth: 1, dim: 4, hidden: 4, seed: 1 });
    const m = registry.createMethod('lora', { targets: ['attn.qkv[q,v]', 'mlp.lin9'] });
    expect(() => m.select(toy.sites())).toThrow(/target 'mlp.lin9' matches no site/);
    expect(() => registry.createMethod('lora', { targets: ['attn.qkv[q,x]'] }).select(toy.sites())).toThrow(/not 'x'/);
    toy.dispose();
  });

  it('is reachable as sam_lora', () => {
    expect(registry.method('sam_lora').id).toBe('lora');
  });
});

describe('lora laws on random configs', () => {
  const configs = fc.record({
    r: fc.integer({ min: 1, max: 6 }),
    alpha: fc.constantFrom(1, 2, 8, 0.5),
    rslora: fc.boolean(),
    bias: fc.constantFrom('none', 'all', 'lora_only'),
    dropout: fc.constantFrom(0, 0.1),
    targets: fc.constantFrom(
      ['attn.qkv[q,v]', 'mlp.fc1', 'mlp.fc2'],
      ['attn.qkv[q,k]'],
      ['attn.qkv[k]', 'attn.proj'],
      ['attn.qkv'],
      ['mlp.*'],
      ['/blocks\\.0\\./'],
    ),
  });
  for (const law of methodLaws(loraMethod, { configs })) {
    it(law.name, async () => {
      const r = await law.run({ numRuns: 8, seed: 11 });
      expect(r.error ?? '').toBe('');
      expect(r.ok).toBe(true);
    });
  }
});
