// peftjs-dora's own tests. The package is loaded as a user loads it, through
// PEFT_PLUGINS (in-process by the host's plugin loader, and by the `peft` CLI
// from dist), never imported directly. In-process: DoRA's formula, its
// detached norm, and the law suite. Through the CLI: verify, a tiny train,
// merge (the merged checkpoint's forward equals the adapted model's), export
// to Hugging Face PEFT (a LoRA config with use_dora and the magnitude vectors
// under PEFT's keys) and loading that export back.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as peftjs from '../../src/index.js';
import { createDefaultRegistry } from '../../src/builtins.js';

const { Registry, ToyBackbone, compose, tf, verifyMethod, loadExternalPlugins, valueAndGrads, openRunModel, loadTensors, readSafetensors } = peftjs;
const here = fileURLToPath(new URL('.', import.meta.url));
const root = join(here, '..', '..');
const bin = join(root, 'bin', 'run.js');
const tmp = mkdtempSync(join(tmpdir(), 'peftjs-dora-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** `registry` with peftjs-dora loaded through PEFT_PLUGINS, as the CLI loads it. */
async function withDora(registry: peftjs.Registry): Promise<peftjs.Registry> {
  const results = await loadExternalPlugins(registry, { env: { PEFT_PLUGINS: 'examples/peftjs-dora' }, configDir: join(tmp, 'config'), cwd: root });
  expect(results.map((r) => [r.name, r.ok, r.error])).toEqual([['peftjs-dora', true, undefined]]);
  return registry;
}

type Layer = peftjs.Module & { forward(x: peftjs.tf.Tensor): peftjs.tf.Tensor };
const maxDiff = (a: peftjs.tf.Tensor, b: peftjs.tf.Tensor) => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);

/** A toy with DoRA (r 2, alpha 3) on qkv, its A, B and m set to random values. */
async function doraToy() {
  const registry = await withDora(new Registry());
  const toy = new ToyBackbone({ depth: 1, dim: 4, hidden: 6, seed: 3 });
  const peft = compose(toy, registry.createMethod('dora', { r: 2, alpha: 3 }), { trainDecoder: false });
  const layer = toy.model.getModule('blocks.0.attn.qkv') as Layer;
  const w0 = tf.clone(layer.param('weight').variable);
  const init = {
    m: tf.clone(layer.param('lora_magnitude_vector').variable),
  };
  layer.param('lora_A').assign(tf.randomUniform([2, 4], -1, 1, 'float32', 7));
  layer.param('lora_B').assign(tf.randomUniform([12, 2], -1, 1, 'float32', 8));
  layer.param('lora_magnitude_vector').assign(tf.randomUniform([12], 0.5, 2, 'float32', 9));
  return { registry, toy, peft, layer, w0, init };
}

describe('dora (in-process, loaded through PEFT_PLUGINS)', () => {
  it('registers one method, dora, with its display name and flag keys', async () => {
    const registry = await withDora(new Registry());
    expect(registry.methods().map((m) => m.id)).toEqual(['dora']);
    expect(registry.originOf('dora')).toBe("plugin 'peftjs-dora'");
    const def = registry.methods()[0]!;
    expect(def.display).toEqual({ name: 'DoRA' });
    expect(def.flagKeys).toEqual({ rank: 'r', alpha: 'alpha', targets: 'targets' });
  });

  it("adapts qkv whole: lora_A [r, in], lora_B [out, r], m [out] = W0's row norms; only those train", async () => {
    const registry = await withDora(new Registry());
    const toy = new ToyBackbone({ depth: 2, dim: 4, hidden: 6, seed: 2 });
    const w = tf.clone(toy.model.getModule('blocks.1.attn.qkv').param('weight').variable);
    const peft = compose(toy, registry.createMethod('dora'), { trainDecoder: false });
    const shapes = Object.fromEntries(peft.methodKeys.filter((k) => k.startsWith('blocks.1.')).map((k) => [k, toy.model.getModule('blocks.1.attn.qkv').param(k.split('.').pop()!).shape]));
    expect(shapes).toEqual({ 'blocks.1.attn.qkv.lora_A': [4, 4], 'blocks.1.attn.qkv.lora_B': [12, 4], 'blocks.1.attn.qkv.lora_magnitude_vector': [12] });
    expect(peft.trainable().map(([k]) => k).sort()).toEqual([...peft.methodKeys].sort());
    const m = toy.model.getModule('blocks.1.attn.qkv').param('lora_magnitude_vector').variable;
    const norms = tf.norm(w, 'euclidean', 1);
    expect(maxDiff(m, norms)).toBeLessThan(1e-6);
    tf.dispose([w, norms]);
    peft.dispose();
  });

  it("computes PEFT's forward: y = m * (W0 + s B A) / ||W0 + s B A|| x + b, per output row", async () => {
    const { peft, layer, w0 } = await doraToy();
    const b = layer.param('bias').variable;
    const a = layer.param('lora_A').variable;
    const bb = layer.param('lora_B').variable;
    const m = layer.param('lora_magnitude_vector').variable;
    const x = tf.randomUniform([5, 4], -1, 1, 'float32', 10);
    const want = tf.tidy(() => {
      const v = tf.add(w0, tf.mul(tf.matMul(bb, a), 3 / 2));
      const wPrime = tf.mul(tf.reshape(tf.div(m, tf.norm(v, 'euclidean', 1)), [-1, 1]), v);
      return tf.add(tf.matMul(x, wPrime, false, true), b);
    });
    const got = layer.forward(x);
    expect(maxDiff(got, want)).toBeLessThan(1e-5);
    tf.dispose([x, want, got, w0]);
    peft.dispose();
  });

  it('treats the norm as a constant to the gradient (PEFT detaches it): dL/dB = s diag(m/n) u^T (x A^T)', async () => {
    const { peft, layer, w0 } = await doraToy();
    const a = layer.param('lora_A').variable;
    const bb = layer.param('lora_B').variable;
    const m = layer.param('lora_magnitude_vector').variable;
    const x = tf.randomUniform([5, 4], -1, 1, 'float32', 11);
    const u = tf.randomUniform([5, 12], -1, 1, 'float32', 12);
    layer.train();
    const { value, grads } = valueAndGrads(() => tf.sum(tf.mul(layer.forward(x), u)) as peftjs.tf.Scalar, [bb, m]);
    const [gB, gM] = grads as [peftjs.tf.Tensor, peftjs.tf.Tensor];
    const n = tf.tidy(() => tf.norm(tf.add(w0, tf.mul(tf.matMul(bb, a), 1.5)), 'euclidean', 1));
    const wantB = tf.tidy(() => tf.mul(tf.mul(tf.reshape(tf.div(m, n), [-1, 1]), tf.matMul(u, tf.matMul(x, a, false, true), true, false)), 1.5));
    // dL/dm_j = sum_i u_ij (x (W0 + s B A)^T)_ij / n_j
    const wantM = tf.tidy(() => tf.div(tf.sum(tf.mul(u, tf.matMul(x, tf.add(w0, tf.mul(tf.matMul(bb, a), 1.5)), false, true)), 0), n));
    expect(maxDiff(gB, wantB)).toBeLessThan(1e-5);
    expect(maxDiff(gM, wantM)).toBeLessThan(1e-5);
    tf.dispose([x, u, value, gB, gM, n, wantB, wantM, w0]);
    peft.dispose();
  });

  it("merges to PEFT's merged weight and unmerges to W0 bit for bit", async () => {
    const { peft, layer, w0 } = await doraToy();
    const x = tf.randomUniform([5, 4], -1, 1, 'float32', 13);
    const yu = layer.forward(x);
    peft.method.merge!(peft.model);
    const wm = layer.param('weight').variable;
    expect(maxDiff(wm, w0)).toBeGreaterThan(1e-3);
    const ym = layer.forward(x);
    expect(maxDiff(ym, yu)).toBeLessThan(1e-5);
    peft.method.unmerge!(peft.model);
    expect(tf.all(tf.equal(layer.param('weight').variable, w0)).dataSync()[0]).toBe(1);
    tf.dispose([x, yu, ym, w0]);
    peft.dispose();
  });

  it('refuses output groups by name, and a base row of zeros', async () => {
    const registry = await withDora(new Registry());
    expect(() => registry.createMethod('dora', { targets: ['attn.qkv[q,v]'] })).toThrow(/target 'attn.qkv\[q,v\]' selects output groups; DoRA adapts whole linears \(use 'attn.qkv'\)/);
    const toy = new ToyBackbone({ depth: 1, dim: 4, hidden: 6, seed: 2 });
    const p = toy.model.getModule('blocks.0.attn.proj').param('weight');
    p.assign(tf.tidy(() => tf.concat([tf.zeros([1, 4]), tf.ones([3, 4])], 0)));
    expect(() => compose(toy, registry.createMethod('dora', { targets: ['attn.proj'] }))).toThrow(/'blocks.0.attn.proj' has an all-zero weight row \(0\)/);
    toy.dispose();
  });

  it('satisfies the law suite (identity at init, frozen base, merge/unmerge, merged == unmerged, save/load, counts)', async () => {
    const registry = await withDora(new Registry());
    const { ok, results } = await verifyMethod(registry, 'dora', { numRuns: 8, seed: 11, timeLimitMs: 30_000 });
    const failed = results.filter((r) => !r.ok).map((r) => `${r.law}: ${r.error} ${r.counterexample ?? ''}`);
    expect(failed).toEqual([]);
    expect(ok).toBe(true);
    expect(results.filter((r) => r.skipped)).toEqual([]);
  });
});

function peft(args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], {
    encoding: 'utf8',
    cwd: root,
    env: { ...process.env, PEFT_BACKEND: 'cpu', PEFT_PLUGINS: 'examples/peftjs-dora', PEFT_CONFIG_DIR: join(tmp, 'config') },
    timeout: 300_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The mask logits of `backbone` for a fixed image and box (what training and evaluation run). */
function segment(backbone: peftjs.Backbone): peftjs.tf.Tensor {
  return tf.tidy(() => {
    const s = backbone.imageSize;
    const image = tf.randomUniform([1, s, s, 3], -1, 1, 'float32', 21) as peftjs.tf.Tensor4D;
    const boxes = tf.tensor2d([[s / 8, s / 8, (s * 3) / 4, (s * 3) / 4]]);
    return backbone.decode(backbone.encode(image), { boxes }, false).masks;
  });
}

describe('dora through the peft CLI (PEFT_PLUGINS=examples/peftjs-dora)', () => {
  const data = join(tmp, 'data');
  const run = join(tmp, 'runs', 'dora');
  const merged = join(tmp, 'merged.safetensors');
  let registry: peftjs.Registry;

  beforeAll(async () => {
    registry = await withDora(await createDefaultRegistry());
    const synth = peft(['data', 'synth', '--out', data, '--n', '10', '--size', '64']);
    expect(synth.code, synth.stderr).toBe(0);
  });

  it('peft verify dora passes the law suite', () => {
    const r = peft(['verify', 'dora', '--runs', '3', '--seed', '1']);
    expect(r.stdout).toMatch(/7 passed, 0 failed, 0 skipped/);
    expect(r.code).toBe(0);
  });

  it('peft train --method dora trains DoRA on qkv and proj, and saves A, B and m', () => {
    const r = peft(['train', '--method', 'dora', '--rank', '2', '--targets', 'attn.qkv,attn.proj', '--data-path', data, '--preset', 'tiny', '--image-size', '64', '--steps', '3', '--batch', '1', '--lr', '1e-2', '--out', join(tmp, 'runs'), '--exp-name', 'dora']);
    expect(r.stderr).not.toMatch(/warning|error/);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/\+ dora: /);
    const keys = [...readSafetensors(join(run, 'checkpoints', 'best', 'adapter_model.safetensors')).tensors.keys()];
    for (const role of ['attn.qkv', 'attn.proj']) {
      for (const t of ['lora_A', 'lora_B', 'lora_magnitude_vector']) expect(keys.some((k) => k.endsWith(`${role}.${t}`)), `${role}.${t}`).toBe(true);
    }
  });

  it("peft merge writes official keys only, and the merged checkpoint's forward equals the adapted model's", () => {
    const r = peft(['merge', '--run', run, '--out', merged]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const state = loadTensors(merged);
    expect([...state.keys()].filter((k) => k.includes('lora_'))).toEqual([]);
    const { spec, peft: adapted } = openRunModel(registry, run);
    const plain = registry.createBackbone(spec.backbone.id, spec.backbone.preset, spec.backbone.overrides);
    try {
      // the adapted model's qkv weights are W0 (the run's seeded initialisation): merging folded a trained update into them
      const qkv = [...state.keys()].filter((k) => k.endsWith('.attn.qkv.weight'));
      expect(qkv.length).toBeGreaterThan(0);
      const w0 = new Map(adapted.model.namedParameters());
      for (const k of qkv) expect(maxDiff(state.get(k)!, w0.get(k)!.variable), k).toBeGreaterThan(1e-4);
      plain.model.loadStateDict(state);
      adapted.model.eval();
      plain.model.eval();
      const want = segment(adapted.backbone);
      const got = segment(plain);
      expect(maxDiff(got, want)).toBeLessThan(1e-4 * (1 + tf.max(tf.abs(want)).dataSync()[0]!));
      tf.dispose([want, got]);
    } finally {
      tf.dispose([...state.values()]);
      adapted.dispose();
      plain.model.dispose();
    }
  });
});
