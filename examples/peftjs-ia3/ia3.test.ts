// peftjs-ia3's own tests: the law suite and IA3's formulas in-process, then
// the package as a user meets it: linked → `peft list` shows it, `peft
// verify ia3` passes, `peft train --method ia3 --plugin …` trains.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import * as peftjs from '../../src/index.js';
import { register } from './index.js';

const { Registry, ToyBackbone, compose, tf, verifyMethod, readSafetensors, exportHfPeft, adapterMethod, loadAnyAdapter, serializeSafetensors, toFloat32 } = peftjs;
const here = fileURLToPath(new URL('.', import.meta.url));
const root = join(here, '..', '..');
const bin = join(root, 'bin', 'run.js');
const tmp = mkdtempSync(join(tmpdir(), 'peftjs-ia3-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function ia3Registry() {
  const registry = new Registry();
  await registry.load("plugin 'peftjs-ia3'", (r) => register(r, peftjs));
  return registry;
}

describe('ia3 (in-process)', () => {
  it('registers one method, ia3, through the host registry', async () => {
    const registry = await ia3Registry();
    expect(registry.methods().map((m) => m.id)).toEqual(['ia3']);
    expect(registry.originOf('ia3')).toBe("plugin 'peftjs-ia3'");
  });

  it('rescales k and v of qkv and the input of fc2, and nothing else', async () => {
    const registry = await ia3Registry();
    const toy = new ToyBackbone({ depth: 1, dim: 4, hidden: 6, seed: 2 });
    const peft = compose(toy, registry.createMethod('ia3'), { trainDecoder: false });
    const shapes = Object.fromEntries(toy.model.namedParameters().filter(([k]) => k.includes('ia3')).map(([k, p]) => [k, p.shape]));
    expect(shapes).toEqual({ 'blocks.0.attn.qkv.ia3_l': [8], 'blocks.0.mlp.fc2.ia3_l': [6] });
    expect(peft.trainable().map(([k]) => k).sort()).toEqual(Object.keys(shapes).sort());
    const qkv = toy.model.getModule('blocks.0.attn.qkv') as unknown as { forward(x: peftjs.tf.Tensor): peftjs.tf.Tensor };
    const fc2 = toy.model.getModule('blocks.0.mlp.fc2') as unknown as { forward(x: peftjs.tf.Tensor): peftjs.tf.Tensor };
    const lq = tf.tensor1d([2, 3, 4, 5, 6, 7, 8, 9]);
    const lf = tf.tensor1d([1, -1, 2, -2, 3, -3]);
    toy.model.getModule('blocks.0.attn.qkv').param('ia3_l').assign(lq);
    toy.model.getModule('blocks.0.mlp.fc2').param('ia3_l').assign(lf);
    const x = tf.randomUniform([3, 4], -1, 1, 'float32', 5);
    const h = tf.randomUniform([3, 6], -1, 1, 'float32', 6);
    const wq = toy.model.getModule('blocks.0.attn.qkv').param('weight').variable;
    const bq = toy.model.getModule('blocks.0.attn.qkv').param('bias').variable;
    const wf = toy.model.getModule('blocks.0.mlp.fc2').param('weight').variable;
    const bf = toy.model.getModule('blocks.0.mlp.fc2').param('bias').variable;
    const wantQ = tf.mul(peftjs.linear(x, wq, bq), tf.concat([tf.ones([4]), lq]));
    const wantF = peftjs.linear(tf.mul(h, lf), wf, bf);
    const gotQ = qkv.forward(x);
    const gotF = fc2.forward(h);
    expect(tf.max(tf.abs(tf.sub(gotQ, wantQ))).dataSync()[0]).toBeLessThan(1e-6);
    expect(tf.max(tf.abs(tf.sub(gotF, wantF))).dataSync()[0]).toBeLessThan(1e-6);
    tf.dispose([lq, lf, x, h, wantQ, wantF, gotQ, gotF]);
    toy.dispose();
  });

  it('refuses a feedforward target that is not a target', async () => {
    const registry = await ia3Registry();
    expect(() => registry.createMethod('ia3', { targets: ['attn.qkv[k,v]'], feedforward: ['mlp.fc2'] })).toThrow(/feedforward target 'mlp.fc2' is not one of targets/);
  });

  it('satisfies the law suite (identity at init, training step, merge/unmerge, save/load, counts)', async () => {
    const registry = await ia3Registry();
    const { ok, results } = await verifyMethod(registry, 'ia3', { numRuns: 8, seed: 11, timeLimitMs: 30_000 });
    const failed = results.filter((r) => !r.ok).map((r) => `${r.law}: ${r.error} ${r.counterexample ?? ''}`);
    expect(failed).toEqual([]);
    expect(ok).toBe(true);
    expect(results.filter((r) => r.skipped)).toEqual([]);
  });
});

describe("ia3 in Hugging Face PEFT's IA3 format", () => {
  const spec = { depth: 2, dim: 4, hidden: 6, seed: 2 };
  const QKV = 'blocks.0.attn.qkv';

  async function trained(registry: peftjs.Registry, config: Record<string, unknown> = {}, seed = 3) {
    const toy = new ToyBackbone(spec);
    const model = compose(toy, registry.createMethod('ia3', config), { trainDecoder: false });
    let i = seed * 100;
    for (const [, p] of model.trainable()) tf.tidy(() => p.assign(tf.randomUniform(p.shape, 0.5, 1.5, 'float32', ++i)));
    return { toy, model };
  }

  function outputDiff(a: peftjs.ToyBackbone, b: peftjs.ToyBackbone): number {
    const input = tf.randomUniform([2, 3, 4], -1, 1, 'float32', 9) as peftjs.tf.Tensor3D;
    const [y0, y1] = [a.forward(input), b.forward(input)];
    const d = tf.tidy(() => tf.max(tf.abs(tf.sub(y0, y1))).dataSync()[0]!);
    tf.dispose([input, y0, y1]);
    return d;
  }

  it('writes ia3_l [out, 1] (ones for the groups it does not scale) and [1, in] for feedforward modules', async () => {
    const registry = await ia3Registry();
    const src = await trained(registry);
    const dir = join(tmp, 'hf-ia3');
    await exportHfPeft(dir, src.model, registry);
    const cfg = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
    expect(cfg).toEqual({
      peft_type: 'IA3',
      task_type: null,
      base_model_name_or_path: null,
      revision: null,
      inference_mode: true,
      target_modules: ['blocks.0.attn.qkv', 'blocks.0.mlp.fc2', 'blocks.1.attn.qkv', 'blocks.1.mlp.fc2'],
      exclude_modules: null,
      feedforward_modules: ['blocks.0.mlp.fc2', 'blocks.1.mlp.fc2'],
      fan_in_fan_out: false,
      init_ia3_weights: true,
      modules_to_save: null,
    });
    const file = readSafetensors(join(dir, 'adapter_model.safetensors'));
    expect(Object.fromEntries([...file.tensors].map(([k, t]) => [k, t.shape]))).toEqual({
      'base_model.model.blocks.0.attn.qkv.ia3_l': [12, 1],
      'base_model.model.blocks.0.mlp.fc2.ia3_l': [1, 6],
      'base_model.model.blocks.1.attn.qkv.ia3_l': [12, 1],
      'base_model.model.blocks.1.mlp.fc2.ia3_l': [1, 6],
    });
    const qkv = toFloat32(file.tensors.get(`base_model.model.${QKV}.ia3_l`)!);
    const mine = src.toy.model.getModule(QKV).param('ia3_l').variable.dataSync();
    expect(Array.from(qkv.subarray(0, 4))).toEqual([1, 1, 1, 1]); // q: not scaled
    expect(Array.from(qkv.subarray(4))).toEqual(Array.from(mine));
    src.toy.dispose();
  });

  it('reads its export back (k,v groups from the exact ones) and a PEFT-native whole-qkv IA3', async () => {
    const registry = await ia3Registry();
    const src = await trained(registry);
    const dir = join(tmp, 'hf-ia3-rt');
    await exportHfPeft(dir, src.model, registry);
    const m = adapterMethod(dir, { sites: src.toy.sites() }, registry);
    expect(m).toEqual({ format: 'hf-peft', id: 'ia3', trainDecoder: false, config: { targets: ['attn.qkv[k,v]', 'mlp.fc2'], feedforward: ['mlp.fc2'] } });
    const dst = new ToyBackbone(spec);
    loadAnyAdapter(dir, compose(dst, registry.createMethod('ia3', m.config), { trainDecoder: false }), registry);
    expect(outputDiff(src.toy, dst)).toBe(0);
    // PEFT's own IA3 on the whole qkv, with feedforward_modules by suffix
    const whole = await trained(registry, { targets: ['attn.qkv', 'mlp.fc2'] }, 4);
    const wholeDir = join(tmp, 'hf-ia3-whole');
    await exportHfPeft(wholeDir, whole.model, registry);
    const cfgPath = join(wholeDir, 'adapter_config.json');
    writeFileSync(cfgPath, JSON.stringify({ ...JSON.parse(readFileSync(cfgPath, 'utf8')), target_modules: ['qkv', 'fc2'], feedforward_modules: ['fc2'] }));
    expect(adapterMethod(wholeDir, { sites: whole.toy.sites() }, registry).config).toEqual({ targets: ['attn.qkv', 'mlp.fc2'], feedforward: ['mlp.fc2'] });
    // a whole-qkv vector does not fit a model that scales only k and v
    const kv = new ToyBackbone(spec);
    expect(() => loadAnyAdapter(wholeDir, compose(kv, registry.createMethod('ia3'), { trainDecoder: false }), registry)).toThrow(/'blocks\.0\.attn\.qkv\.ia3_l' scales output group 0 of 'blocks\.0\.attn\.qkv', which this model's ia3 does not adapt/);
    // feedforward_modules must agree with the vectors' shapes
    writeFileSync(cfgPath, JSON.stringify({ ...JSON.parse(readFileSync(cfgPath, 'utf8')), feedforward_modules: [] }));
    expect(() => adapterMethod(wholeDir, { sites: whole.toy.sites() }, registry)).toThrow(/'blocks\.0\.mlp\.fc2': ia3_l has shape \[1,6\], but a non-feedforward module by 'feedforward_modules' takes \[4,1\]/);
    for (const t of [src.toy, dst, whole.toy, kv]) t.dispose();
  });
});

function peft(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [bin, ...args], {
    encoding: 'utf8',
    cwd: root,
    env: { ...process.env, PEFT_BACKEND: 'cpu', PEFT_PLUGINS: '', PEFT_CONFIG_DIR: join(tmp, 'config'), ...env },
    timeout: 180_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('ia3 through the peft CLI', () => {
  it('link → list shows ia3 → verify ia3 passes → unlink', () => {
    const link = peft(['plugins', 'link', 'examples/peftjs-ia3']);
    expect(link.stderr).toBe('');
    expect(link.code).toBe(0);
    expect(link.stdout).toMatch(/linked peftjs-ia3 \(method 'ia3'\)/);
    const list = peft(['list', 'methods']);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^ia3\s+IA3: /m);
    const status = peft(['plugins']);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/^peftjs-ia3 0\.1\.0\s+linked\s+ok\s+method ia3/m);
    const verify = peft(['verify', 'ia3', '--runs', '3', '--seed', '1']);
    expect(verify.stdout).toMatch(/7 passed, 0 failed, 0 skipped/);
    expect(verify.code).toBe(0);
    const unlink = peft(['plugins', 'unlink', 'peftjs-ia3']);
    expect(unlink.code).toBe(0);
    expect(peft(['list', 'methods']).stdout).not.toMatch(/^ia3\s/m);
  });

  it('peft train --method ia3 --plugin examples/peftjs-ia3 trains and saves ia3_l', () => {
    const out = join(tmp, 'runs');
    const r = peft(['train', '--method', 'ia3', '--plugin', 'examples/peftjs-ia3', '--steps', '2', '--preset', 'tiny', '--image-size', '64', '--batch', '1', '--out', out, '--exp-name', 'ia3']);
    expect(r.stderr).not.toMatch(/warning|error/);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/\+ ia3: /);
    const weights = join(out, 'ia3', 'checkpoints', 'last', 'adapter_model.safetensors');
    expect(existsSync(weights)).toBe(true);
    const keys = [...readSafetensors(weights).tensors.keys()];
    expect(keys.some((k) => k.endsWith('attn.qkv.ia3_l'))).toBe(true);
    expect(keys.some((k) => k.endsWith('mlp.fc2.ia3_l'))).toBe(true);
  });

  it('peft export --format hf-peft writes IA3; a run from that --adapter trains the decoder as its modules_to_save says, unless --[no-]freeze-decoder', () => {
    const out = join(tmp, 'runs');
    const train = (name: string, extra: string[]) => {
      const r = peft(['train', '--plugin', 'examples/peftjs-ia3', '--steps', '1', '--preset', 'tiny', '--image-size', '64', '--batch', '1', '--out', out, '--exp-name', name, ...extra]);
      expect(r.stderr).not.toMatch(/warning|error/);
      expect(r.code).toBe(0);
      return JSON.parse(readFileSync(join(out, name, 'run.json'), 'utf8')) as { method: { id: string; config: unknown }; trainDecoder: boolean };
    };
    const exportTo = (run: string, dir: string) => {
      const r = peft(['export', '--plugin', 'examples/peftjs-ia3', '--run', join(out, run), '--format', 'hf-peft', '--out', dir]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      return JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    };
    // the run of the test above trained the decoder: it is in modules_to_save
    const withDecoder = join(tmp, 'hf-ia3-decoder');
    expect(exportTo('ia3', withDecoder)).toMatchObject({ peft_type: 'IA3', modules_to_save: ['mask_decoder'], base_model_name_or_path: null });
    expect(train('from-decoder', ['--adapter', withDecoder])).toMatchObject({ method: { id: 'ia3' }, trainDecoder: true });
    // a frozen decoder: no modules_to_save, so a run from it keeps the decoder frozen unless told otherwise
    train('frozen', ['--method', 'ia3', '--freeze-decoder']);
    const frozen = join(tmp, 'hf-ia3-frozen');
    expect(exportTo('frozen', frozen)).toMatchObject({ peft_type: 'IA3', modules_to_save: null });
    expect(train('from-frozen', ['--adapter', frozen]).trainDecoder).toBe(false);
    expect(train('from-frozen-trained', ['--adapter', frozen, '--no-freeze-decoder']).trainDecoder).toBe(true);
  });
});
