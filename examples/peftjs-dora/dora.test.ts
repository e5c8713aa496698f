// peftjs-dora's own tests. The package is loaded as a user loads it, through
// PEFT_PLUGINS (in-process by the host's plugin loader, and by the `peft` CLI
// from dist), never imported directly. In-process: DoRA's formula, its
// detached norm, and the law suite. Through the CLI: verify, a tiny train,
// merge (the merged checkpoint's forward equals the adapted model's), export
// to Hugging Face PEFT (a LoRA config with use_dora and the magnitude vectors
// under PEFT's keys) and loading that export back.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as peftjs from '../../src/index.js';
import { createDefaultRegistry } from '../../src/builtins.js';

const { Registry, ToyBackbone, compose, tf, verifyMethod, loadExternalPlugins, valueAndGrads, openRunModel, loadTensors, readSafetensors, exportHfPeft, adapterMethod, loadAnyAdapter } = peftjs;
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
  const registry = await withDora(new Registry({ api: peftjs }));
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
    const registry = await withDora(new Registry({ api: peftjs }));
    expect(registry.methods().map((m) => m.id)).toEqual(['dora']);
    expect(registry.originOf('dora')).toBe("plugin 'peftjs-dora'");
    const def = registry.methods()[0]!;
    expect(def.display).toEqual({ name: 'DoRA' });
    expect(def.flagKeys).toEqual({ rank: 'r', alpha: 'alpha', targets: 'targets' });
  });

  it("adapts qkv whole: lora_A [r, in], lora_B [out, r], m [out] = W0's row norms; only those train", async () => {
    const registry = await withDora(new Registry({ api: peftjs }));
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
    const registry = await withDora(new Registry({ api: peftjs }));
    expect(() => registry.createMethod('dora', { targets: ['attn.qkv[q,v]'] })).toThrow(/target 'attn.qkv\[q,v\]' selects output groups; DoRA adapts whole linears \(use 'attn.qkv'\)/);
    const toy = new ToyBackbone({ depth: 1, dim: 4, hidden: 6, seed: 2 });
    const p = toy.model.getModule('blocks.0.attn.proj').param('weight');
    p.assign(tf.tidy(() => tf.concat([tf.zeros([1, 4]), tf.ones([3, 4])], 0)));
    expect(() => compose(toy, registry.createMethod('dora', { targets: ['attn.proj'] }))).toThrow(/'blocks.0.attn.proj' has an all-zero weight row \(0\)/);
    toy.dispose();
  });

  it("exports to HF PEFT as LORA with use_dora, under PEFT's key names, and reads it back exactly", async () => {
    const { registry, toy, peft: src } = await doraToy();
    const dir = mkdtempSync(join(tmp, 'hf-'));
    const r = await exportHfPeft(dir, src, registry);
    expect(r.config).toMatchObject({ peft_type: 'LORA', use_dora: true, r: 2, lora_alpha: 3, use_rslora: false, bias: 'none', target_modules: ['blocks.0.attn.qkv'], modules_to_save: null });
    const shapes = Object.fromEntries([...readSafetensors(r.weightsPath).tensors].map(([k, t]) => [k, t.shape]));
    expect(shapes).toEqual({
      'base_model.model.blocks.0.attn.qkv.lora_A.weight': [2, 4],
      'base_model.model.blocks.0.attn.qkv.lora_B.weight': [12, 2],
      'base_model.model.blocks.0.attn.qkv.lora_magnitude_vector': [12],
    });
    const m = adapterMethod(dir, { sites: toy.sites() }, registry);
    expect(m).toMatchObject({ format: 'hf-peft', id: 'dora', config: { r: 2, alpha: 3, dropout: 0, targets: ['attn.qkv'] } });
    const dst = new ToyBackbone({ depth: 1, dim: 4, hidden: 6, seed: 3 });
    const peft2 = compose(dst, registry.createMethod(m.id, m.config), { trainDecoder: false });
    expect(loadAnyAdapter(dir, peft2, registry).loaded.sort()).toEqual(['blocks.0.attn.qkv.lora_A.weight', 'blocks.0.attn.qkv.lora_B.weight', 'blocks.0.attn.qkv.lora_magnitude_vector']);
    const x = tf.randomUniform([1, 3, 4], -1, 1, 'float32', 14) as peftjs.tf.Tensor3D;
    const [y, y2] = [toy.forward(x), dst.forward(x)];
    expect(tf.all(tf.equal(y, y2)).dataSync()[0]).toBe(1);
    // an adapter whose lora_alpha differs from the model's: the ratio is folded into B (DoRA uses s B only),
    // so the model reads it as one built with the adapter's alpha does
    const config = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
    writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ ...config, lora_alpha: 6 }));
    const own = adapterMethod(dir, { sites: toy.sites() }, registry).config;
    expect(own).toMatchObject({ alpha: 6 });
    const [asSaid, folded] = [own, m.config].map((c) => {
      const t = new ToyBackbone({ depth: 1, dim: 4, hidden: 6, seed: 3 });
      const p = compose(t, registry.createMethod('dora', c), { trainDecoder: false });
      loadAnyAdapter(dir, p, registry);
      return { toy: t, peft: p };
    });
    const [yAsSaid, yFolded] = [asSaid!.toy.forward(x), folded!.toy.forward(x)];
    expect(maxDiff(yAsSaid, y)).toBeGreaterThan(1e-3);
    expect(maxDiff(yFolded, yAsSaid)).toBeLessThan(1e-5);
    tf.dispose([x, y, y2, yAsSaid, yFolded]);
    for (const p of [src, peft2, asSaid!.peft, folded!.peft]) p.dispose();
  });

  it('reads only use_dora LORA adapters, beside the built-in lora, and refuses what it cannot represent by key', async () => {
    const registry = await withDora(await createDefaultRegistry());
    const toy = new ToyBackbone({ depth: 1, dim: 4, hidden: 6, seed: 3 });
    const dir = mkdtempSync(join(tmp, 'hf-'));
    await exportHfPeft(dir, compose(toy, registry.createMethod('dora', { r: 2 }), { trainDecoder: false }), registry);
    expect(adapterMethod(dir, { sites: toy.sites() }, registry).id).toBe('dora');
    const config = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
    const withConfig = (patch: Record<string, unknown>) => {
      writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ ...config, ...patch }));
      return () => adapterMethod(dir, { sites: toy.sites() }, registry);
    };
    // without use_dora it is a LoRA adapter: the built-in lora reads it (and dora declines it)
    expect(withConfig({ use_dora: false })().id).toBe('lora');
    expect(withConfig({ use_rslora: true })).toThrow(/'use_rslora': true has no form in method 'dora'/);
    expect(withConfig({ r: 3 })).toThrow(/'blocks\.0\.attn\.qkv' has rank 2 \(lora_A \[2,4\]\) but r is 3; method 'dora' has one rank/);
    expect(withConfig({ bias: 'all' })).toThrow(/'bias' "all": method 'dora' trains no biases/);
    // only dora loaded: a plain LoRA adapter is declined with dora's reason
    const alone = await withDora(new Registry({ api: peftjs }));
    withConfig({ use_dora: false });
    expect(() => adapterMethod(dir, { sites: toy.sites() }, alone)).toThrow(/method 'dora' does not read it: it is a plain LoRA adapter \(use_dora is not true\)/);
    toy.dispose();
  });

  it('satisfies the law suite and its own law (identity at init, frozen base, merge/unmerge, merged == unmerged, save/load, counts, m and direction)', async () => {
    const registry = await withDora(new Registry({ api: peftjs }));
    const { ok, results } = await verifyMethod(registry, 'dora', { numRuns: 8, seed: 11, timeLimitMs: 30_000 });
    const failed = results.filter((r) => !r.ok).map((r) => `${r.law}: ${r.error} ${r.counterexample ?? ''}`);
    expect(failed).toEqual([]);
    expect(ok).toBe(true);
    expect(results.filter((r) => r.skipped)).toEqual([]);
    expect(results.map((r) => r.law)).toContain("magnitude and direction: m starts at W0's row norms; after training, merged rows have norms |m|");
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
  const hf = join(tmp, 'hf-dora');
  let registry: peftjs.Registry;

  beforeAll(async () => {
    registry = await withDora(await createDefaultRegistry());
    const synth = peft(['data', 'synth', '--out', data, '--n', '10', '--size', '64']);
    expect(synth.code, synth.stderr).toBe(0);
  });

  it('peft verify dora passes the law suite', () => {
    const r = peft(['verify', 'dora', '--runs', '3', '--seed', '1']);
    // the core laws, then dora's own
    expect(r.stdout).toMatch(/^✓ magnitude and direction: /m);
    expect(r.stdout).not.toMatch(/^✗/m);
    expect(Number(/\b(\d+) passed, 0 failed, 0 skipped/.exec(r.stdout)?.[1])).toBeGreaterThanOrEqual(7);
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

  it("peft export --format hf-peft writes PEFT's LoRA config with use_dora, and A, B, m under PEFT's names and shapes", () => {
    const r = peft(['export', '--run', run, '--format', 'hf-peft', '--out', hf]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const config = JSON.parse(readFileSync(join(hf, 'adapter_config.json'), 'utf8'));
    expect(config).toMatchObject({ peft_type: 'LORA', use_dora: true, r: 2, lora_alpha: 4, lora_dropout: 0, use_rslora: false, bias: 'none', modules_to_save: ['mask_decoder'] });
    const file = readSafetensors(join(hf, 'adapter_model.safetensors'));
    const prefix = 'base_model.model.';
    const adapted = config.target_modules as string[];
    expect(adapted.length).toBeGreaterThan(0);
    expect(new Set(adapted.map((p) => p.replace(/^.*\.attn\./, 'attn.')))).toEqual(new Set(['attn.qkv', 'attn.proj']));
    for (const path of adapted) {
      const a = file.tensors.get(`${prefix}${path}.lora_A.weight`);
      const b = file.tensors.get(`${prefix}${path}.lora_B.weight`);
      const m = file.tensors.get(`${prefix}${path}.lora_magnitude_vector`);
      expect([a?.shape.length, b?.shape.length, m?.shape.length], path).toEqual([2, 2, 1]);
      const [rank, inF] = a!.shape;
      const [out] = m!.shape;
      expect(rank).toBe(2);
      expect(b!.shape).toEqual([out, rank]);
      expect(inF).toBeGreaterThan(0);
    }
    const own = [...file.tensors.keys()].filter((k) => !k.startsWith(`${prefix}mask_decoder.`));
    expect(own.length).toBe(3 * adapted.length);
  });

  it('the export loads back: in-process into the run model, and by peft eval --adapter, with the same outputs', async () => {
    const { peft: trained } = openRunModel(registry, run);
    const { peft: fresh } = openRunModel(registry, run);
    try {
      expect(adapterMethod(hf, { sites: trained.backbone.sites(), decoderPath: trained.backbone.decoderPath }, registry)).toMatchObject({
        format: 'hf-peft',
        id: 'dora',
        config: { r: 2, alpha: 4, dropout: 0, targets: ['attn.qkv', 'attn.proj'] },
        trainDecoder: true,
      });
      // everything the run trained is wiped, then read back from PEFT's files
      for (const [, p] of fresh.trainable()) p.assign(tf.zerosLike(p.variable));
      const { loaded } = loadAnyAdapter(hf, fresh, registry);
      expect(loaded.filter((k) => k.endsWith('.lora_magnitude_vector')).length).toBeGreaterThan(0);
      for (const b of [trained, fresh]) b.model.eval();
      const [want, got] = [segment(trained.backbone), segment(fresh.backbone)];
      expect(tf.all(tf.equal(want, got)).dataSync()[0]).toBe(1);
      tf.dispose([want, got]);
    } finally {
      trained.dispose();
      fresh.dispose();
    }
    const fromRun = peft(['eval', '--run', run, '--json']);
    const fromHf = peft(['eval', '--run', run, '--adapter', hf, '--json']);
    expect(fromRun.code, fromRun.stderr).toBe(0);
    expect(fromHf.code, fromHf.stderr).toBe(0);
    const scores = (out: string) => {
      const { checkpoint: _checkpoint, ...rest } = JSON.parse(out) as Record<string, unknown>;
      return rest;
    };
    expect(scores(fromHf.stdout)).toEqual(scores(fromRun.stdout));
  });
});
