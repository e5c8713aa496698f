// peftjs-ia3's own tests: the law suite and IA3's formulas in-process, then
// the package as a user meets it: linked → `peft list` shows it, `peft
// verify ia3` passes, `peft train --method ia3 --plugin …` trains.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import * as peftjs from '../../src/index.js';
import { register } from './index.js';

const { Registry, ToyBackbone, compose, tf, verifyMethod, readSafetensors } = peftjs;
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
    expect(status.stdout).toMatch(/^peftjs-ia3\s+linked\s+ok\s+method ia3/m);
    const verify = peft(['verify', 'ia3', '--runs', '3', '--seed', '1']);
    expect(verify.stdout).toMatch(/6 passed, 0 failed, 0 skipped/);
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
});
