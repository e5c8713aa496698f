import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import {
  PeftError,
  Registry,
  ToyBackbone,
  compose,
  methodLaws,
  runFixture,
  tf,
} from '../../src/index.js';
import { addMat, addRow, colSums, gelu, geluGrad, matmul, randomMat, seededValues, transpose, type Mat } from '../../test/support/reference-math.js';
import { writeFixture } from '../../test/support/fixture-writer.js';
import { Adapter, adapterMethod, register } from './index.js';
import { FIXTURES } from '../../test/support/fixtures.js';
import { without } from '../../test/support/native.js';


const registry = new Registry();
register(registry);
const tmp = mkdtempSync(join(tmpdir(), 'peftjs-adapter-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const arr = (m: Mat) => ({ shape: [m.rows, m.cols], data: m.data });
const map = (m: Mat, f: (v: number) => number): Mat => ({ rows: m.rows, cols: m.cols, data: m.data.map(f) });

/** An msa.Adapter fixture with float64 reference outputs and grads. */
function adapterFixture(name: string, o: { features: number; ratio: number; skip: boolean; seed: number }) {
  const next = seededValues(o.seed);
  const [b, t] = [2, 3];
  const n = b * t;
  const d = o.features;
  const h = Math.trunc(d * o.ratio);
  const W1 = randomMat(h, d, next);
  const b1 = randomMat(1, h, next);
  const W2 = randomMat(d, h, next);
  const b2 = randomMat(1, d, next);
  const x = randomMat(n, d, next);
  const U = randomMat(n, d, next);
  const z = addRow(matmul(x, transpose(W1)), b1.data);
  const g = map(z, gelu);
  let y = addRow(matmul(g, transpose(W2)), b2.data);
  if (o.skip) y = addMat(y, x);
  const dg = matmul(U, W2);
  const dz: Mat = { rows: n, cols: h, data: dg.data.map((v, i) => v * geluGrad(z.data[i]!)) };
  return writeFixture(
    tmp,
    name,
    { kind: 'msa.Adapter', config: { features: d, mlp_ratio: o.ratio, skip_connect: o.skip } },
    {
      'param/D_fc1.weight': arr(W1),
      'param/D_fc1.bias': { shape: [h], data: b1.data },
      'param/D_fc2.weight': arr(W2),
      'param/D_fc2.bias': { shape: [d], data: b2.data },
      'input/x': { shape: [b, t, d], data: x.data },
      'input/upstream': { shape: [b, t, d], data: U.data },
      'output/y': { shape: [b, t, d], data: y.data },
      'grad/D_fc2.weight': arr(matmul(transpose(U), g)),
      'grad/D_fc2.bias': { shape: [d], data: colSums(U) },
      'grad/D_fc1.weight': arr(matmul(transpose(dz), x)),
      'grad/D_fc1.bias': { shape: [h], data: colSums(dz) },
    },
  );
}

describe('adapter parity', () => {
  for (const name of ['adapter_skip', 'adapter_noskip']) {
    it(`matches ${name}`, async () => {
      const r = await runFixture(join(FIXTURES, `${name}.json`), registry);
      console.log(`${name}: max abs error ${r.maxAbs.toExponential(2)}`);
      expect(r.checks.filter((c) => !c.ok)).toEqual([]);
      expect(r.ok).toBe(true);
    });
  }
  const cases = [
    { features: 12, ratio: 0.5, skip: true, seed: 1 },
    { features: 10, ratio: 0.3, skip: false, seed: 2 }, // int(10 * 0.3) = 3
    { features: 7, ratio: 1, skip: true, seed: 3 },
    { features: 16, ratio: 0.125, skip: false, seed: 4 },
  ];
  for (const [i, o] of cases.entries()) {
    it(`msa.Adapter in general: width ${o.features}, ratio ${o.ratio}, skip ${o.skip}`, async () => {
      const r = await runFixture(adapterFixture(`adapter_${i}`, o), registry);
      expect(r.checks.filter((c) => !c.ok)).toEqual([]);
      expect(r.ok).toBe(true);
    });
  }
});

describe('the MLP adapter\'s output scale', () => {
  it('y = s h and every gradient s times, on the active (native) form and the composite one', () => {
    fc.assert(
      fc.property(
        fc.record({ d: fc.integer({ min: 1, max: 9 }), h: fc.integer({ min: 1, max: 5 }), n: fc.integer({ min: 1, max: 7 }), s: fc.constantFrom(0.5, 2, -0.75), seed: fc.nat(1e6) }),
        ({ d, h, n, s, seed }) => {
          const [scaled, plain] = [new Adapter(d, h, false, false, s), new Adapter(d, h, false, false)];
          for (const [k, shape] of [['D_fc1.weight', [h, d]], ['D_fc1.bias', [h]], ['D_fc2.weight', [d, h]], ['D_fc2.bias', [d]]] as const) {
            const v = tf.randomUniform([...shape], -1, 1, 'float32', seed + k.length + shape.length);
            for (const a of [scaled, plain]) a.getModule(k.split('.')[0]!).registerParameter(k.split('.')[1]!, v.clone());
            v.dispose();
          }
          const x = tf.randomUniform([2, n, d], -2, 2, 'float32', seed);
          const up = tf.randomUniform([2, n, d], -1, 1, 'float32', seed + 1);
          const run = (a: Adapter) => {
            const vars = a.parameters().map((p) => p.variable);
            const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(a.forward(x), up)) as tf.Scalar, vars);
            const out = [a.forward(x), ...vars.map((v) => grads[v.name]!)].map((t) => Array.from(t.dataSync()));
            tf.dispose([value, ...Object.values(grads)]);
            return out;
          };
          const want = run(plain).map((t) => t.map((e) => e * s));
          for (const got of [run(scaled), without(() => run(scaled))]) {
            got.forEach((t, i) => t.forEach((e, j) => expect(Math.abs(e - want[i]![j]!)).toBeLessThanOrEqual(1e-5 * (1 + Math.abs(want[i]![j]!)))));
          }
          tf.dispose([x, up]);
          scaled.dispose();
          plain.dispose();
        },
      ),
      { numRuns: 20, seed: 5 },
    );
  });
});

describe('adapter method', () => {
  it("attaches Space_Adapter (skip) and MLP_Adapter (no skip, x0.5) with the reference's names", () => {
    const toy = new ToyBackbone({ depth: 2, dim: 8, hidden: 6, seed: 2 });
    const x = tf.randomUniform([1, 3, 8], -1, 1, 'float32', 3) as tf.Tensor3D;
    const y0 = toy.forward(x);
    const peft = compose(toy, registry.createMethod('adapter', { mlp_ratio: 0.25 }), { trainDecoder: false });
    const y1 = toy.forward(x);
    expect(Array.from(y1.dataSync())).toEqual(Array.from(y0.dataSync()));
    const names = peft.trainable().map(([k]) => k);
    expect(names.filter((k) => k.startsWith('blocks.0.'))).toEqual([
      'blocks.0.Space_Adapter.D_fc1.weight',
      'blocks.0.Space_Adapter.D_fc1.bias',
      'blocks.0.Space_Adapter.D_fc2.weight',
      'blocks.0.Space_Adapter.D_fc2.bias',
      'blocks.0.MLP_Adapter.D_fc1.weight',
      'blocks.0.MLP_Adapter.D_fc1.bias',
      'blocks.0.MLP_Adapter.D_fc2.weight',
      'blocks.0.MLP_Adapter.D_fc2.bias',
    ]);
    const block = toy.block(0);
    expect((block.hooks['post-attn'][0]!.module as Adapter).skipConnect).toBe(true);
    expect((block.hooks['mlp-parallel'][0]!.module as Adapter).skipConnect).toBe(false);
    // the reference's 0.5 is the MLP adapter's own output scale (in its kernel), the hook adds it as is
    expect((block.hooks['mlp-parallel'][0]!.module as Adapter).scale).toBe(0.5);
    expect(block.hooks['mlp-parallel'][0]!.scale).toBe(1);
    expect(toy.model.getModule('blocks.0.Space_Adapter.D_fc1').param('weight').shape).toEqual([2, 8]);
    expect(peft.report().methodParameters).toBe(2 * 2 * (8 * 2 + 2 + 2 * 8 + 8));
    for (const t of [x, y0, y1]) t.dispose();
    toy.dispose();
  });

  it("mid_dim sets the hidden width; zero_init false keeps PyTorch's default init", () => {
    const toy = new ToyBackbone({ depth: 1, dim: 8, hidden: 6, seed: 2 });
    compose(toy, registry.createMethod('adapter', { mid_dim: 5, zero_init: false }), { trainDecoder: false });
    const fc2 = toy.model.getModule('blocks.0.MLP_Adapter.D_fc2');
    expect(fc2.param('weight').shape).toEqual([8, 5]);
    expect(fc2.param('weight').variable.dataSync().some((v) => v !== 0)).toBe(true);
    toy.dispose();
  });

  it('attaches only the adapters asked for', () => {
    const toy = new ToyBackbone({ depth: 1, dim: 8, hidden: 6, seed: 2 });
    compose(toy, registry.createMethod('adapter', { space_adapter: false }), { trainDecoder: false });
    expect(toy.block(0).hooks['post-attn']).toHaveLength(0);
    expect(toy.block(0).hooks['mlp-parallel']).toHaveLength(1);
    toy.dispose();
  });

  const bad: [Record<string, unknown>, RegExp][] = [
    [{ mlp_ratio: 0 }, /invalid config 'mlp_ratio'/],
    [{ mid_dim: 0 }, /invalid config 'mid_dim'/],
    [{ zero_init: 'yes' }, /invalid config 'zero_init'/],
    [{ space_adapter: false, mlp_adapter: false }, /invalid config 'mlp_adapter'/],
    [{ ratio: 0.5 }, /unknown key\(s\) ratio/],
  ];
  for (const [config, re] of bad) {
    it(`rejects ${JSON.stringify(config)}`, () => {
      expect(() => registry.createMethod('adapter', config)).toThrow(PeftError);
      expect(() => registry.createMethod('adapter', config)).toThrow(re);
    });
  }

  it('a zero hidden width is a clear error', () => {
    const toy = new ToyBackbone({ depth: 1, dim: 3, hidden: 4, seed: 1 });
    expect(() => registry.createMethod('adapter', { mlp_ratio: 0.25 }).select(toy.sites())).toThrow(/hidden width .* is 0/);
    toy.dispose();
  });

  it('is reachable as sam_adpt', () => {
    expect(registry.method('sam_adpt').id).toBe('adapter');
  });
});

describe('adapter laws on random configs', () => {
  const configs = fc
    .record({
      mlp_ratio: fc.constantFrom(0.25, 0.5, 1),
      mid_dim: fc.option(fc.integer({ min: 1, max: 6 }), { nil: undefined }),
      zero_init: fc.boolean(),
      space_adapter: fc.boolean(),
      mlp_adapter: fc.boolean(),
      mlp_scale: fc.constantFrom(0.5, 1, 2),
    })
    .map((c) => Object.fromEntries(Object.entries(c).filter(([, v]) => v !== undefined)));
  for (const law of methodLaws(adapterMethod, { configs })) {
    it(law.name, async () => {
      const r = await law.run({ numRuns: 8, seed: 12 });
      expect(r.error ?? '').toBe('');
      expect(r.ok).toBe(true);
      if (/merge/.test(law.name)) expect(r.skipped).toMatch(/no merge/);
    });
  }
});
