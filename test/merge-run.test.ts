// `peft merge` / `peft export` on real run directories (MobileSAM tiny at
// 64 px): the merged checkpoint has the official keys only, and a fresh
// backbone loading it gives the adapted model's outputs to 1e-5.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDefaultRegistry } from '../src/builtins.js';
import { saveAdapter } from '../src/core/io/adapter-files.js';
import { loadAnyAdapter } from '../src/core/io/hf-peft.js';
import { loadTensors } from '../src/core/io/safetensors.js';
import type { Registry } from '../src/core/registry/registry.js';
import { buildPeftModel, writeRunSpec, type RunSpec } from '../src/app/runs/run-spec.js';
import type { Backbone, Prompts } from '../src/core/peft/backbone.js';
import { exportRun, mergeRun, mergedStateDict } from '../src/app/runs/merge-run.js';

const tmp = mkdtempSync(join(tmpdir(), 'peftjs-merge-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let registry: Registry;
beforeAll(async () => {
  registry = await createDefaultRegistry();
});

function runSpec(method: string, config: Record<string, unknown>): RunSpec {
  return {
    version: 1,
    createdAt: new Date(0).toISOString(),
    backbone: { id: 'mobile_sam', preset: 'tiny', overrides: { img_size: 64 } },
    method: { id: method, config: { ...registry.createMethod(method, config).config } },
    trainDecoder: true,
    imageSize: 64,
    outSize: 16,
    dataset: { kind: 'refuge', path: null },
    augment: false,
    options: { batch: 1, lr: 1e-4, valEvery: 1, seed: 3, loss: 'bce', prompt: 'click' },
  };
}

/** A run directory with a "trained" checkpoint: the method's and the decoder's parameters moved off their init. */
async function fakeRun(name: string, method: string, config: Record<string, unknown>) {
  const dir = join(tmp, name);
  const spec = runSpec(method, config);
  mkdirSync(dir, { recursive: true });
  writeRunSpec(dir, spec);
  const peft = buildPeftModel(registry, spec);
  let i = 0;
  for (const [, p] of peft.trainable()) tf.tidy(() => p.assign(tf.add(p.variable, tf.randomUniform(p.shape, -0.05, 0.05, 'float32', ++i))));
  const ckpt = join(dir, 'checkpoints', 'last');
  await saveAdapter(ckpt, peft);
  writeFileSync(join(ckpt, 'trainer_state.json'), JSON.stringify({ step: 1, epoch: 1, bestDice: null, bestStep: null, adamStep: 1 }));
  return { dir, spec, peft };
}

function forward(backbone: Backbone): tf.Tensor {
  return tf.tidy(() => {
    const images = tf.randomUniform([1, 64, 64, 3], -2, 2, 'float32', 17) as tf.Tensor4D;
    const prompts: Prompts = { points: { coords: tf.tensor3d([[[20, 30]]]), labels: tf.tensor2d([[1]]) } };
    const { masks, iouPredictions } = backbone.decode(backbone.encode(images), prompts, false);
    return tf.concat([tf.reshape(masks, [-1]), tf.reshape(iouPredictions, [-1])]);
  });
}

function maxDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

describe('peft merge', () => {
  for (const [method, config] of [
    ['lora', { r: 4, alpha: 2 }],
    ['adalora', { init_r: 3, target_r: 2, total_step: 10, init_warmup: 2, final_warmup: 2 }],
  ] as const) {
    it(`${method}: a fresh backbone loading the merged file gives the adapted outputs (1e-5), official keys only`, async () => {
      const { dir, spec, peft } = await fakeRun(method, method, config);
      peft.model.eval();
      const adapted = forward(peft.backbone);
      const out = join(tmp, `${method}-merged.safetensors`);
      const r = await mergeRun(registry, dir, { out });
      expect(r.method).toBe(method);
      const merged = loadTensors(out);
      const keys = [...merged.keys()];
      expect(keys.some((k) => /lora_|ranknum/.test(k))).toBe(false);
      expect(keys).toContain('image_encoder.layers.1.blocks.0.attn.qkv.weight');
      expect(keys.some((k) => k.startsWith('mask_decoder.'))).toBe(true);
      // not vacuous: the merged weight is not the base weight
      const base = buildPeftModel(registry, spec);
      const qkv = 'image_encoder.layers.1.blocks.0.attn.qkv.weight';
      expect(maxDiff(base.model.stateDict().get(qkv)!, merged.get(qkv)!)).toBeGreaterThan(1e-6);
      base.model.dispose();
      const fresh = registry.createBackbone('mobile_sam', 'tiny', { img_size: 64 });
      fresh.model.loadStateDict(merged); // strict: exactly the backbone's keys
      fresh.model.eval();
      const plain = forward(fresh);
      const d = maxDiff(adapted, plain);
      console.log(`${method}: merged vs adapted max abs difference ${d.toExponential(2)}`);
      expect(d).toBeLessThan(1e-5);
      tf.dispose([adapted, plain, ...merged.values()]);
      fresh.model.dispose();
      peft.model.dispose();
    });
  }

  it('refuses to overwrite without --force, and a method that cannot merge', async () => {
    const { dir, peft } = await fakeRun('lora-again', 'lora', { r: 2 });
    peft.model.dispose();
    const out = join(tmp, 'exists.safetensors');
    writeFileSync(out, 'x');
    await expect(mergeRun(registry, dir, { out })).rejects.toThrow(/exists.safetensors already exists: choose another --out, or pass --force/);
    await expect(mergeRun(registry, dir, { out, force: true })).resolves.toMatchObject({ method: 'lora' });
    await expect(mergeRun(registry, dir, { out: join(tmp, 'x.bin') })).rejects.toThrow(/written as .safetensors/);
    const adapterRun = join(tmp, 'adapter-run');
    mkdirSync(adapterRun, { recursive: true });
    writeRunSpec(adapterRun, runSpec('adapter', {}));
    await expect(mergeRun(registry, adapterRun, { out: join(tmp, 'a.safetensors') })).rejects.toThrow("method 'adapter' cannot be merged into the base weights");
    const toyish = buildPeftModel(registry, runSpec('adapter', {}));
    expect(() => mergedStateDict(toyish)).toThrow(/cannot be merged/);
    toyish.model.dispose();
  });
});

describe('peft export', () => {
  it('hf-peft and peftjs adapters of a run load back into its model with the same outputs', async () => {
    const { dir, spec, peft } = await fakeRun('export', 'lora', { r: 2, alpha: 3 });
    peft.model.eval();
    const want = forward(peft.backbone);
    for (const format of ['hf-peft', 'peftjs'] as const) {
      const out = join(tmp, `export-${format}`);
      const r = await exportRun(registry, dir, { format, out });
      expect(r.files).toHaveLength(2);
      const again = buildPeftModel(registry, spec);
      expect(loadAnyAdapter(out, again, registry).format).toBe(format);
      again.model.eval();
      const got = forward(again.backbone);
      expect(maxDiff(want, got)).toBeLessThan(1e-6);
      tf.dispose(got);
      again.model.dispose();
      await expect(exportRun(registry, dir, { format, out })).rejects.toThrow(/already exists/);
    }
    tf.dispose(want);
    peft.model.dispose();
  });
});
