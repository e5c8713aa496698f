import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HookableBlock, Linear, Module, PeftError, Registry, SegmentationBackbone, runFixture, tf } from '../../src/index.js';
import {
  ImageEncoderViT,
  SamBlock,
  msaKeyToOfficial,
  officialKeyToMsa,
  parseSamConfig,
  register,
  samBlockSites,
  samPresets,
  windowPartition,
  windowUnpartition,
  type SamBlockOptions,
} from './index.js';
import { FIXTURES } from '../../test/support/fixtures.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));

const HAVE_FIXTURES = existsSync(join(FIXTURES, 'sam_block_plain.json'));

function samRegistry(): Registry {
  const r = new Registry();
  register(r);
  return r;
}

/** Registers a method plugin of this repository if it is present (they are written alongside). */
async function tryMethod(r: Registry, dir: string): Promise<boolean> {
  const path = join(HERE, '..', dir, 'index.ts');
  if (!existsSync(path)) return false;
  const mod = (await import(/* @vite-ignore */ path)) as { register?: (r: Registry) => void };
  if (!mod.register) return false;
  await r.load(dir, mod.register);
  return true;
}

async function values(t: tf.Tensor): Promise<Float32Array> {
  return (await t.data()) as Float32Array;
}

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  expect(a.shape).toEqual(b.shape);
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

/** Fills every parameter of `m` with seeded normal noise (rel-pos tables start at zero, norms at one). */
function randomise(m: Module, seed: number, std = 0.3): void {
  let s = seed;
  for (const [, p] of m.namedParameters()) tf.tidy(() => p.assign(tf.randomNormal(p.shape, 0, std, 'float32', s++)));
}

describe.skipIf(!HAVE_FIXTURES)(`parity (fixtures in ${FIXTURES})`, () => {
  for (const name of ['sam_block_plain', 'sam_encoder_plain']) {
    it(name, async () => {
      const res = await runFixture(join(FIXTURES, `${name}.json`), samRegistry());
      expect(res.error).toBeUndefined();
      expect(res.checks.filter((c) => !c.ok)).toEqual([]);
      expect(res.ok).toBe(true);
    });
  }

  // The PEFT variants compose the `lora` / `adapter` method plugins; they run once those are registered.
  for (const [name, dir] of [
    ['sam_block_lora', 'method-lora'],
    ['sam_block_adapter', 'method-adapter'],
  ] as const) {
    it(`${name} (with plugins/${dir})`, async (ctx) => {
      const r = samRegistry();
      if (!(await tryMethod(r, dir))) ctx.skip(`plugins/${dir} is not available yet`);
      const res = await runFixture(join(FIXTURES, `${name}.json`), r);
      expect(res.error).toBeUndefined();
      expect(res.checks.filter((c) => !c.ok)).toEqual([]);
      expect(res.ok).toBe(true);
    });
  }
});

// ---------------------------------------------------------------------------
// A naive reference of the block, written from the README's description with
// scalar loops (its own interpolation, padding and windowing), to check the
// cases the fixtures do not reach: H != W, grids needing padding, tables
// resized to another grid, padBeforeNorm with padding, batch > 1, no rel-pos.

type Vec = Float64Array;

/** erf, Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7). */
function erf(x: number): number {
  const s = Math.sign(x);
  const a = Math.abs(x);
  const t = 1 / (1 + 0.3275911 * a);
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-a * a);
  return s * y;
}

interface NaiveParams {
  get(key: string): { data: Float32Array; shape: number[] };
}

function naiveLinear(x: Vec, p: NaiveParams, name: string): Vec {
  const w = p.get(`${name}.weight`);
  const [out, inF] = w.shape as [number, number];
  const y = new Float64Array(out);
  const b = p.get(`${name}.bias`).data;
  for (let o = 0; o < out; o++) {
    let s = b[o]!;
    for (let i = 0; i < inF; i++) s += w.data[o * inF + i]! * x[i]!;
    y[o] = s;
  }
  return y;
}

function naiveLayerNorm(x: Vec, p: NaiveParams, name: string, eps: number): Vec {
  const n = x.length;
  const mean = x.reduce((a, b) => a + b, 0) / n;
  const v = x.reduce((a, b) => a + (b - mean) ** 2, 0) / n;
  const w = p.get(`${name}.weight`).data;
  const b = p.get(`${name}.bias`).data;
  return x.map((xi, i) => ((xi - mean) / Math.sqrt(v + eps)) * w[i]! + b[i]!);
}

/** PyTorch's get_rel_pos for q = k = size: table resized (linear, align_corners=False) to 2*size-1, then R[i][j] = row i - j + size - 1. */
function naiveRelPos(table: { data: Float32Array; shape: number[] }, size: number): Vec[][] {
  const [len, d] = table.shape as [number, number];
  const out = 2 * size - 1;
  const resized: Vec[] = [];
  for (let m = 0; m < out; m++) {
    const row = new Float64Array(d);
    if (len === out) for (let c = 0; c < d; c++) row[c] = table.data[m * d + c]!;
    else {
      const src = Math.max(((m + 0.5) * len) / out - 0.5, 0);
      const i0 = Math.floor(src);
      const i1 = Math.min(i0 + 1, len - 1);
      const l1 = src - i0;
      for (let c = 0; c < d; c++) row[c] = (1 - l1) * table.data[i0 * d + c]! + l1 * table.data[i1 * d + c]!;
    }
    resized.push(row);
  }
  return Array.from({ length: size }, (_, i) => Array.from({ length: size }, (_, j) => resized[i - j + size - 1]!));
}

/** Attention over a grid of tokens `t[y][x]` (after norm), returns proj outputs per token. */
function naiveAttention(t: Vec[][], p: NaiveParams, heads: number, useRelPos: boolean): Vec[][] {
  const h = t.length;
  const w = t[0]!.length;
  const c = t[0]![0]!.length;
  const hd = c / heads;
  const tokens = t.flat();
  const qkv = tokens.map((x) => naiveLinear(x, p, 'attn.qkv'));
  const rh = useRelPos ? naiveRelPos(p.get('attn.rel_pos_h'), h) : [];
  const rw = useRelPos ? naiveRelPos(p.get('attn.rel_pos_w'), w) : [];
  const merged = tokens.map(() => new Float64Array(c));
  for (let head = 0; head < heads; head++) {
    const q = (i: number, d: number) => qkv[i]![head * hd + d]!;
    const k = (i: number, d: number) => qkv[i]![c + head * hd + d]!;
    const v = (i: number, d: number) => qkv[i]![2 * c + head * hd + d]!;
    for (let i = 0; i < tokens.length; i++) {
      const [qy, qx] = [Math.floor(i / w), i % w];
      const logits = tokens.map((_, j) => {
        const [ky, kx] = [Math.floor(j / w), j % w];
        let s = 0;
        for (let d = 0; d < hd; d++) s += q(i, d) * k(j, d) * hd ** -0.5;
        if (useRelPos) for (let d = 0; d < hd; d++) s += q(i, d) * rh[qy]![ky]![d]! + q(i, d) * rw[qx]![kx]![d]!;
        return s;
      });
      const mx = Math.max(...logits);
      const e = logits.map((l) => Math.exp(l - mx));
      const z = e.reduce((a, b) => a + b, 0);
      for (let d = 0; d < hd; d++) merged[i]![head * hd + d] = e.reduce((acc, ej, j) => acc + (ej / z) * v(j, d), 0);
    }
  }
  const out = merged.map((m) => naiveLinear(m, p, 'attn.proj'));
  return Array.from({ length: h }, (_, y) => out.slice(y * w, (y + 1) * w));
}

function naiveBlock(x: tf.Tensor4D, block: SamBlock, o: Required<Pick<SamBlockOptions, 'numHeads' | 'useRelPos' | 'padBeforeNorm' | 'windowSize' | 'layerNormEps'>>): Float64Array {
  const [b, h, w, c] = x.shape;
  const xs = x.dataSync();
  const state = new Map([...block.stateDict()].map(([k, t]) => [k, { data: t.dataSync() as Float32Array, shape: t.shape }]));
  const p: NaiveParams = { get: (k) => state.get(k) ?? expect.fail(`no ${k}`) };
  const at = (bi: number, y: number, xx: number): Vec => Float64Array.from(xs.subarray(((bi * h + y) * w + xx) * c, ((bi * h + y) * w + xx + 1) * c));
  const ws = o.windowSize;
  const out = new Float64Array(b * h * w * c);
  for (let bi = 0; bi < b; bi++) {
    const attn: Vec[][] = Array.from({ length: h }, () => new Array<Vec>(w));
    if (ws === 0) {
      const t = Array.from({ length: h }, (_, y) => Array.from({ length: w }, (_, xx) => naiveLayerNorm(at(bi, y, xx), p, 'norm1', o.layerNormEps)));
      const a = naiveAttention(t, p, o.numHeads, o.useRelPos);
      for (let y = 0; y < h; y++) for (let xx = 0; xx < w; xx++) attn[y]![xx] = a[y]![xx]!;
    } else {
      const hp = Math.ceil(h / ws) * ws;
      const wp = Math.ceil(w / ws) * ws;
      const padTok = o.padBeforeNorm ? naiveLayerNorm(new Float64Array(c), p, 'norm1', o.layerNormEps) : new Float64Array(c);
      for (let wy = 0; wy < hp; wy += ws) {
        for (let wx = 0; wx < wp; wx += ws) {
          const t = Array.from({ length: ws }, (_, dy) =>
            Array.from({ length: ws }, (_, dx) => {
              const [y, xx] = [wy + dy, wx + dx];
              return y < h && xx < w ? naiveLayerNorm(at(bi, y, xx), p, 'norm1', o.layerNormEps) : padTok;
            }),
          );
          const a = naiveAttention(t, p, o.numHeads, o.useRelPos);
          for (let dy = 0; dy < ws; dy++) for (let dx = 0; dx < ws; dx++) if (wy + dy < h && wx + dx < w) attn[wy + dy]![wx + dx] = a[dy]![dx]!;
        }
      }
    }
    for (let y = 0; y < h; y++) {
      for (let xx = 0; xx < w; xx++) {
        const x1 = at(bi, y, xx).map((v, i) => v + attn[y]![xx]![i]!);
        const n = naiveLayerNorm(x1, p, 'norm2', o.layerNormEps);
        const hid = naiveLinear(n, p, 'mlp.lin1').map((v) => 0.5 * v * (1 + erf(v / Math.SQRT2)));
        const m = naiveLinear(hid, p, 'mlp.lin2');
        out.set(x1.map((v, i) => v + m[i]!), ((bi * h + y) * w + xx) * c);
      }
    }
  }
  return out;
}

describe('SamBlock on general grids (against a naive reference)', () => {
  const cases: { name: string; grid: [number, number]; opts: SamBlockOptions }[] = [
    { name: 'windowed, 5x7 grid padded to 6x9 (window 3)', grid: [5, 7], opts: { dim: 8, numHeads: 2, windowSize: 3 } },
    {
      name: 'windowed with padBeforeNorm, 5x7 grid padded to 6x9',
      grid: [5, 7],
      opts: { dim: 8, numHeads: 2, windowSize: 3, padBeforeNorm: true },
    },
    { name: 'windowed, exact multiple 6x6 (window 3)', grid: [6, 6], opts: { dim: 8, numHeads: 2, windowSize: 3 } },
    { name: 'global, 5x7 grid with tables sized for it', grid: [5, 7], opts: { dim: 8, numHeads: 2, inputSize: [5, 7] } },
    {
      name: 'global, tables for a 4x4 grid resized to 5x7',
      grid: [5, 7],
      opts: { dim: 8, numHeads: 2, relPosSize: [4, 4], inputSize: [5, 7] },
    },
    {
      name: 'windowed, window 4 tables resized from an explicit 8x8 table grid',
      grid: [5, 4],
      opts: { dim: 8, numHeads: 2, windowSize: 4, relPosSize: [8, 8] },
    },
    { name: 'global without rel-pos', grid: [3, 5], opts: { dim: 8, numHeads: 4, useRelPos: false } },
    { name: 'windowed without rel-pos', grid: [5, 3], opts: { dim: 8, numHeads: 1, useRelPos: false, windowSize: 2 } },
  ];
  for (const [i, { name, grid, opts }] of cases.entries()) {
    it(name, () => {
      const block = new SamBlock({ layerNormEps: 1e-5, ...opts });
      randomise(block, 100 + i);
      const x = tf.randomNormal([2, grid[0], grid[1], opts.dim], 0, 1, 'float32', 7 + i) as tf.Tensor4D;
      const before = tf.memory().numTensors;
      const y = block.forward(x);
      expect(tf.memory().numTensors).toBe(before + 1);
      expect(y.shape).toEqual([2, grid[0], grid[1], opts.dim]);
      const expected = naiveBlock(x, block, {
        numHeads: opts.numHeads,
        useRelPos: opts.useRelPos ?? true,
        padBeforeNorm: opts.padBeforeNorm ?? false,
        windowSize: opts.windowSize ?? 0,
        layerNormEps: 1e-5,
      });
      const got = y.dataSync();
      let worst = 0;
      for (let k = 0; k < got.length; k++) worst = Math.max(worst, Math.abs(got[k]! - expected[k]!));
      expect(worst).toBeLessThan(1e-4);
      tf.dispose([x, y]);
      block.dispose();
    });
  }
});

/** A post-attn hook that is not per-token (it mixes the tokens of each window), to pin down where it runs. */
class WindowMeanHook extends Module {
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => tf.add(x, tf.mean(x, [1, 2], true)));
  }
}

describe('SamBlock windowing', () => {
  it('an exact-multiple grid equals attention run on each window crop', () => {
    const block = new SamBlock({ dim: 16, numHeads: 2, windowSize: 4 });
    randomise(block, 1);
    const x = tf.randomNormal([2, 8, 8, 16], 0, 1, 'float32', 2) as tf.Tensor4D;
    const direct = tf.tidy(() => {
      const n1 = (block.child('norm1') as Module & { forward(t: tf.Tensor): tf.Tensor }).forward(x) as tf.Tensor4D;
      const rows = [0, 4].map((y) =>
        tf.concat([0, 4].map((xx) => block.attn.forward(tf.slice(n1, [0, y, xx, 0], [2, 4, 4, 16]))), 2),
      );
      const x1 = tf.add(x, tf.concat(rows, 1));
      const mlp = block.child('mlp') as Module & { forward(t: tf.Tensor): tf.Tensor };
      const norm2 = block.child('norm2') as Module & { forward(t: tf.Tensor): tf.Tensor };
      return tf.add(x1, mlp.forward(norm2.forward(x1)));
    });
    const y = block.forward(x);
    expect(maxAbsDiff(y, direct)).toBeLessThan(1e-5);
    tf.dispose([x, y, direct]);
    block.dispose();
  });

  it('window = grid equals global attention with the same weights', () => {
    const windowed = new SamBlock({ dim: 16, numHeads: 4, windowSize: 5 });
    const global = new SamBlock({ dim: 16, numHeads: 4, windowSize: 0, inputSize: [5, 5] });
    randomise(windowed, 3);
    global.loadStateDict(windowed.stateDict());
    const x = tf.randomNormal([1, 5, 5, 16], 0, 1, 'float32', 4) as tf.Tensor4D;
    const [a, b] = [windowed.forward(x), global.forward(x)];
    expect(maxAbsDiff(a, b)).toBeLessThan(1e-5);
    tf.dispose([x, a, b]);
    windowed.dispose();
    global.dispose();
  });

  for (const padBeforeNorm of [false, true]) {
    it(`post-attn hooks see whole (padded) windows, as in the reference order (padBeforeNorm ${padBeforeNorm})`, () => {
      const block = new SamBlock({ dim: 8, numHeads: 2, windowSize: 4, padBeforeNorm });
      randomise(block, 5);
      block.attachHook('post-attn', 'probe', new WindowMeanHook());
      const x = tf.randomNormal([2, 6, 7, 8], 0, 1, 'float32', 6) as tf.Tensor4D;
      // The reference's literal order: (norm1 →) partition with zero padding (→ norm1) → attn → hook → unpartition.
      const literal = tf.tidy(() => {
        const norm1 = block.child('norm1') as Module & { forward(t: tf.Tensor): tf.Tensor };
        const { windows, padded } = padBeforeNorm
          ? windowPartition(x, 4)
          : windowPartition(norm1.forward(x) as tf.Tensor4D, 4);
        const normed = padBeforeNorm ? (norm1.forward(windows) as tf.Tensor4D) : windows;
        const hooked = new WindowMeanHook().forward(block.attn.forward(normed)) as tf.Tensor4D;
        const x1 = tf.add(x, windowUnpartition(hooked, 4, padded, [6, 7]));
        const n = (block.child('norm2') as Module & { forward(t: tf.Tensor): tf.Tensor }).forward(x1);
        return tf.add(x1, (block.child('mlp') as Module & { forward(t: tf.Tensor): tf.Tensor }).forward(n));
      });
      const y = block.forward(x);
      expect(maxAbsDiff(y, literal)).toBeLessThan(1e-5);
      tf.dispose([x, y, literal]);
      block.dispose();
    });
  }

  it('padBeforeNorm differs only through norm1 of the padding (equal when norm1 has no bias)', () => {
    const opts = { dim: 8, numHeads: 2, windowSize: 4 };
    const a = new SamBlock(opts);
    const b = new SamBlock({ ...opts, padBeforeNorm: true });
    randomise(a, 9);
    b.loadStateDict(a.stateDict());
    const x = tf.randomNormal([1, 5, 6, 8], 0, 1, 'float32', 10) as tf.Tensor4D;
    const [ya, yb] = [a.forward(x), b.forward(x)];
    expect(maxAbsDiff(ya, yb)).toBeGreaterThan(1e-3);
    for (const m of [a, b]) (m.child('norm1') as Module).param('bias').assign(tf.zeros([8]));
    const [za, zb] = [a.forward(x), b.forward(x)];
    expect(maxAbsDiff(za, zb)).toBeLessThan(1e-6);
    tf.dispose([x, ya, yb, za, zb]);
    a.dispose();
    b.dispose();
  });

  it('batch items are independent', () => {
    const block = new SamBlock({ dim: 8, numHeads: 2, windowSize: 3 });
    randomise(block, 11);
    const x = tf.randomNormal([3, 5, 4, 8], 0, 1, 'float32', 12) as tf.Tensor4D;
    const all = block.forward(x);
    const one = tf.tidy(() => block.forward(tf.slice(x, [1, 0, 0, 0], [1, 5, 4, 8])));
    const part = tf.slice(all, [1, 0, 0, 0], [1, 5, 4, 8]);
    expect(maxAbsDiff(part, one)).toBeLessThan(1e-5);
    tf.dispose([x, all, one, part]);
    block.dispose();
  });

  it('gradients reach every parameter without leaking tensors', () => {
    const block = new SamBlock({ dim: 8, numHeads: 2, windowSize: 3 });
    randomise(block, 13);
    const x = tf.randomNormal([1, 4, 5, 8], 0, 1, 'float32', 14) as tf.Tensor4D;
    const vars = block.parameters().map((p) => p.variable);
    const before = tf.memory().numTensors;
    const { value, grads } = tf.variableGrads(() => tf.sum(tf.square(block.forward(x))) as tf.Scalar, vars);
    expect(Object.keys(grads).length).toBe(vars.length);
    for (const g of Object.values(grads)) expect(tf.tidy(() => tf.sum(tf.abs(g)).dataSync()[0]!)).toBeGreaterThan(0);
    tf.dispose([value, ...Object.values(grads)]);
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
    block.dispose();
  });
});

describe('ImageEncoderViT', () => {
  const tiny = () => parseSamConfig(samPresets.tiny);

  it('gives [B, H/16, W/16, out_chans] for the tiny preset and leaks nothing', () => {
    const enc = new ImageEncoderViT(tiny());
    const x = tf.randomNormal([2, 128, 128, 3]) as tf.Tensor4D;
    const before = tf.memory().numTensors;
    const y = enc.forward(x);
    expect(y.shape).toEqual([2, 8, 8, 64]);
    expect(tf.memory().numTensors).toBe(before + 1);
    tf.dispose([x, y]);
    enc.dispose();
  });

  it('runs on a grid other than its configured one (pos_embed and tables resized, windows padded)', () => {
    const enc = new ImageEncoderViT(tiny());
    randomise(enc, 20, 0.05);
    const y = enc.forward(tf.randomNormal([1, 80, 112, 3]) as tf.Tensor4D);
    expect(y.shape).toEqual([1, 5, 7, 64]);
    expect(Number.isFinite(tf.sum(y).dataSync()[0])).toBe(true);
    enc.dispose();
  });

  it('names its parameters as official SAM checkpoints do', () => {
    const enc = new ImageEncoderViT(tiny());
    const names = enc.namedParameters().map(([k]) => k);
    for (const k of [
      'patch_embed.proj.weight',
      'patch_embed.proj.bias',
      'pos_embed',
      'blocks.0.norm1.weight',
      'blocks.0.attn.qkv.weight',
      'blocks.0.attn.rel_pos_h',
      'blocks.1.attn.rel_pos_w',
      'blocks.3.mlp.lin2.bias',
      'neck.0.weight',
      'neck.1.bias',
      'neck.2.weight',
      'neck.3.weight',
    ]) {
      expect(names).toContain(k);
    }
    expect(names).not.toContain('neck.0.bias');
    expect(enc.param('pos_embed').shape).toEqual([1, 8, 8, 96]);
    expect((enc.getModule('blocks.0.attn') as Module).param('rel_pos_h').shape).toEqual([7, 24]); // window 4
    expect((enc.getModule('blocks.1.attn') as Module).param('rel_pos_h').shape).toEqual([15, 24]); // 8x8 grid
    enc.dispose();
  });

  it('lists its injection sites with uniform roles', () => {
    const enc = new ImageEncoderViT(tiny());
    const sites = enc.sites();
    expect(sites).toHaveLength(4 * 5);
    expect(sites.filter((s) => s.block === 1)).toEqual([
      { kind: 'linear', path: 'blocks.1.attn.qkv', role: 'attn.qkv', in: 96, out: 288, groups: ['q', 'k', 'v'], block: 1 },
      { kind: 'linear', path: 'blocks.1.attn.proj', role: 'attn.proj', in: 96, out: 96, block: 1 },
      { kind: 'linear', path: 'blocks.1.mlp.lin1', role: 'mlp.fc1', in: 96, out: 384, block: 1 },
      { kind: 'linear', path: 'blocks.1.mlp.lin2', role: 'mlp.fc2', in: 384, out: 96, block: 1 },
      { kind: 'block', path: 'blocks.1', role: 'block', dim: 96, hooks: ['post-attn', 'mlp-parallel'], block: 1 },
    ]);
    for (const s of sites) {
      const m = enc.getModule(s.path);
      if (s.kind === 'linear') {
        expect(m).toBeInstanceOf(Linear);
        expect([(m as Linear).inFeatures, (m as Linear).outFeatures]).toEqual([s.in, s.out]);
      } else {
        expect(m).toBeInstanceOf(HookableBlock);
      }
    }
    expect(samBlockSites('', 8, 32).map((s) => s.path)).toEqual(['attn.qkv', 'attn.proj', 'mlp.lin1', 'mlp.lin2', '']);
    enc.dispose();
  });
});

describe('config and registration', () => {
  it('registers the backbone, its aliases and both parity kinds', () => {
    const r = samRegistry();
    expect(r.backbone('sam_vit').id).toBe('sam');
    expect(Object.keys(r.backbone('sam').presets).sort()).toEqual(['tiny', 'vit_b', 'vit_h', 'vit_l']);
    expect(r.parityKind('sam.Block')).toBeDefined();
    expect(r.parityKind('sam.ImageEncoderViT')).toBeDefined();
  });

  it('rejects an image size that is not a multiple of the patch size with a PeftError', () => {
    const r = samRegistry();
    expect(() => r.createBackbone('sam', 'tiny', { img_size: 130 })).toThrow(PeftError);
    expect(() => r.createBackbone('sam', 'tiny', { img_size: 130 })).toThrow(/img_size.*130 is not a multiple of the patch size 16/);
    expect(() => parseSamConfig({ img_size: 100 })).toThrow(PeftError);
    expect(() => new ImageEncoderViT({ ...parseSamConfig(samPresets.tiny), img_size: 120 })).toThrow(/not a multiple/);
  });

  it('rejects other inconsistent configs by key', () => {
    const r = samRegistry();
    expect(() => r.createBackbone('sam', 'tiny', { num_heads: 5 })).toThrow(/num_heads/);
    expect(() => r.createBackbone('sam', 'tiny', { global_attn_indexes: [4] })).toThrow(/global_attn_indexes.*out of range/);
    expect(() => r.createBackbone('sam', 'tiny', { window: 4 })).toThrow(/unknown key/);
  });

  it('maps Medical-SAM-Adapter table names to the official ones and back', () => {
    expect(msaKeyToOfficial('attn.rel_h')).toBe('attn.rel_pos_h');
    expect(msaKeyToOfficial('image_encoder.blocks.3.attn.rel_w')).toBe('image_encoder.blocks.3.attn.rel_pos_w');
    expect(msaKeyToOfficial('blocks.3.attn.qkv.weight')).toBe('blocks.3.attn.qkv.weight');
    expect(officialKeyToMsa('blocks.0.attn.rel_pos_h')).toBe('blocks.0.attn.rel_h');
    expect(officialKeyToMsa(msaKeyToOfficial('blocks.0.attn.rel_w'))).toBe('blocks.0.attn.rel_w');
  });
});

/** Runs `f` on the wasm backend when it can start (much faster than the pure-JS cpu backend for big models). */
async function onFastBackend<T>(f: () => T | Promise<T>): Promise<T> {
  const previous = tf.getBackend();
  let switched = false;
  if (previous === 'cpu') {
    try {
      await import('@tensorflow/tfjs-backend-wasm');
      switched = await tf.setBackend('wasm');
    } catch {
      switched = false;
    }
  }
  try {
    return await f();
  } finally {
    if (switched) await tf.setBackend(previous);
  }
}

describe('presets', () => {
  let r: Registry;
  beforeAll(() => {
    r = samRegistry();
  });
  afterAll(() => tf.disposeVariables());

  it('tiny: the whole backbone encodes and decodes a batch of 2 at 128 px', () => {
    const bb = r.createBackbone('sam', 'tiny') as SegmentationBackbone;
    expect(bb.imageSize).toBe(128);
    expect(bb.sites().every((s) => s.path.startsWith('image_encoder.blocks.'))).toBe(true);
    const e = bb.encode(tf.randomNormal([2, 128, 128, 3]) as tf.Tensor4D);
    expect(e.shape).toEqual([2, 8, 8, 64]);
    const coords = tf.tensor3d([[[30, 40]], [[60, 70]]]);
    const labels = tf.tensor2d([[1], [1]]);
    const out = bb.decode(e, { points: { coords, labels } }, false);
    expect(out.masks.shape).toEqual([2, 32, 32, 1]);
    expect(out.iouPredictions.shape).toEqual([2, 1]);
    bb.model.dispose();
  });

  it('vit_b at 256 px (batch 1, forward only)', async () => {
    await onFastBackend(async () => {
      const bb = r.createBackbone('sam', 'vit_b', { img_size: 256 });
      expect(bb.model.parameterCount()).toBe(93_735_472); // the official SAM ViT-B total
      const e = bb.encode(tf.randomNormal([1, 256, 256, 3]) as tf.Tensor4D);
      expect(e.shape).toEqual([1, 16, 16, 256]);
      expect(Number.isFinite((await values(tf.sum(e)))[0])).toBe(true);
      bb.model.dispose();
    });
  }, 600_000);

  // ViT-L and ViT-H at their smallest valid input (32 px: a 2x2 grid in one
  // padded 14x14 window); at 1024 px a forward pass needs minutes and several GB.
  for (const preset of ['vit_l', 'vit_h']) {
    it(`${preset} builds with the official shapes and encodes at 32 px`, async () => {
      await onFastBackend(async () => {
        const bb = r.createBackbone('sam', preset, { img_size: 32 });
        const enc = bb.model.getModule('image_encoder') as ImageEncoderViT;
        const width = preset === 'vit_l' ? 1024 : 1280;
        expect(enc.param('pos_embed').shape).toEqual([1, 64, 64, width]);
        const g = samPresets[preset]!.global_attn_indexes![0]!;
        expect((enc.getModule(`blocks.${g}.attn`) as Module).param('rel_pos_h').shape).toEqual([127, width / 16]); // 64x64, 16 heads
        expect((enc.getModule('blocks.0.attn') as Module).param('rel_pos_h').shape).toEqual([27, width / 16]); // window 14
        const e = bb.encode(tf.randomNormal([1, 32, 32, 3]) as tf.Tensor4D);
        expect(e.shape).toEqual([1, 2, 2, 256]);
        bb.model.dispose();
      });
    }, 600_000);
  }
});

describe.skipIf(!HAVE_FIXTURES)('parity on the wasm backend (no missing kernels or gradients)', () => {
  for (const name of ['sam_block_plain', 'sam_encoder_plain']) {
    it(name, async () => {
      await onFastBackend(async () => {
        const res = await runFixture(join(FIXTURES, `${name}.json`), samRegistry());
        expect(res.error).toBeUndefined();
        expect(res.ok).toBe(true);
      });
    });
  }
});
