// Adapter files (adapter_config.json + adapter_model.safetensors) under hostile
// input: byte mutations of both files, and JSON-level edits of the config
// (any key replaced, removed or added, rank patterns that lie). Every load
// ends in a PeftError naming the adapter's file, or succeeds; a failed load
// leaves the target model exactly as it was and leaks no tensor.
import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from '../../src/core/registry/registry.js';
import { compose, type PeftModel } from '../../src/core/peft/compose.js';
import { ToyBackbone } from '../../src/core/testing/toy-backbone.js';
import { register as registerLora } from '../../plugins/method-lora/index.js';
import { register as registerAdapter } from '../../plugins/method-adapter/index.js';
import { register as registerAdalora } from '../../plugins/method-adalora/index.js';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, loadAdapter, saveAdapter } from '../../src/core/io/adapter-files.js';
import { fuzz, hostileCase, mutatedArb, runs, verdict } from '../support/fuzz-harness.js';

const registry = new Registry();
registerLora(registry);
registerAdapter(registry);
registerAdalora(registry);
const tmp = mkdtempSync(join(tmpdir(), 'peft-fuzz-adapter-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const spec = { depth: 2, dim: 6, hidden: 8, seed: 4 };
const methods: Record<string, Record<string, unknown>> = {
  lora: { r: 2, alpha: 4, bias: 'lora_only', targets: ['attn.qkv[q,v]', 'mlp.fc1'] },
  adapter: { mid_dim: 3 },
  adalora: { init_r: 3, target_r: 2, init_warmup: 1, final_warmup: 1, total_step: 4, mask_interval: 1 },
};

function build(method: string): { toy: ToyBackbone; peft: PeftModel } {
  const toy = new ToyBackbone(spec);
  return { toy, peft: compose(toy, registry.createMethod(method, methods[method]!), { trainDecoder: false }) };
}

/** Every tensor of the model: name, shape, values. */
function snapshot(peft: PeftModel): string {
  return [...peft.model.namedTensors()].map(([k, p]) => `${k}:${p.shape}:${Array.from(p.variable.dataSync()).join(',')}`).join('\n');
}

interface Saved {
  method: string;
  dir: string;
  config: Uint8Array;
  weights: Uint8Array;
}

async function saved(method: string): Promise<Saved> {
  const { toy, peft } = build(method);
  let i = 0;
  for (const [, p] of peft.trainable()) tf.tidy(() => p.assign(tf.randomUniform(p.shape, -1, 1, 'float32', ++i)));
  const dir = join(tmp, method);
  await saveAdapter(dir, peft);
  toy.dispose();
  return { method, dir, config: readFileSync(join(dir, ADAPTER_CONFIG_FILE)), weights: readFileSync(join(dir, ADAPTER_WEIGHTS_FILE)) };
}

/** Writes the files, loads them into a fresh model, checks the contract. */
function attempt(s: Saved, config: Uint8Array | string, weights: Uint8Array): 'accepted' | 'rejected' {
  writeFileSync(join(s.dir, ADAPTER_CONFIG_FILE), config);
  writeFileSync(join(s.dir, ADAPTER_WEIGHTS_FILE), weights);
  const { toy, peft } = build(s.method);
  try {
    const before = snapshot(peft);
    const count = tf.memory().numTensors;
    const o = hostileCase(s.dir, config.length + weights.length, () => loadAdapter(s.dir, peft));
    expect(tf.memory().numTensors, 'tensors leaked').toBe(count);
    // a failed load assigns nothing; only a method's restored state (AdaLoRA's rank pattern) may stay, as documented
    const afterState = s.method === 'adalora' && /has shape|missing tensor '.*' \(a parameter/.test(o.ok ? '' : o.error.message);
    if (!o.ok && !afterState) expect(snapshot(peft), `a failed load changed the model: ${o.error.message}`).toBe(before);
    return verdict(o);
  } finally {
    toy.dispose();
  }
}

/** JSON edits: replace, delete or add a key anywhere in the config. */
const editArb = fc.record({
  op: fc.constantFrom('replace', 'delete', 'add'),
  pick: fc.nat(),
  value: fc.oneof(
    fc.jsonValue({ maxDepth: 2 }),
    fc.constantFrom(null, -1, 0, 1e308, 2 ** 53, '', 'lora', 'adalora', [], {}, ['blocks.0.attn.qkv.lora_A'], 'x'.repeat(10_000)),
    fc.array(fc.boolean(), { maxLength: 8 }),
    fc.dictionary(fc.constantFrom('blocks.0.attn.qkv', 'blocks.1.mlp.fc1', 'blocks.9.attn.qkv', '__proto__', 'constructor'), fc.oneof(fc.array(fc.boolean(), { maxLength: 6 }), fc.jsonValue({ maxDepth: 1 }))),
  ),
  key: fc.constantFrom('rank_pattern', 'r', 'extra', '__proto__', 'constructor', 'method_tensors', 'state', 'config', 'sites'),
});

function paths(v: unknown, at: string[] = [], out: string[][] = []): string[][] {
  out.push(at);
  if (v && typeof v === 'object') for (const k of Object.keys(v)) paths((v as Record<string, unknown>)[k], [...at, k], out);
  return out;
}

function edit(json: unknown, e: { op: string; pick: number; value: unknown; key: string }): unknown {
  const text = JSON.stringify(json);
  const copy = text === undefined ? null : JSON.parse(text);
  const all = paths(copy);
  const path = all[e.pick % all.length]!;
  if (path.length === 0) return e.op === 'replace' ? e.value : copy;
  let parent = copy;
  for (const k of path.slice(0, -1)) parent = parent[k];
  const last = path[path.length - 1]!;
  if (e.op === 'replace') parent[last] = e.value;
  else if (e.op === 'delete') Array.isArray(parent) ? parent.splice(Number(last), 1) : delete parent[last];
  else if (parent[last] && typeof parent[last] === 'object' && !Array.isArray(parent[last])) Object.defineProperty(parent[last], e.key, { value: e.value, enumerable: true, writable: true, configurable: true });
  return copy;
}

describe('adapter files under hostile input', async () => {
  const all = await Promise.all(Object.keys(methods).map(saved));

  it('the saved adapters load', () => {
    for (const s of all) expect(attempt(s, s.config, s.weights)).toBe('accepted');
  });

  it('byte mutations of adapter_config.json', () => {
    fuzz('adapter files', 'mutated adapter_config.json', fc.tuple(fc.nat({ max: all.length - 1 }), fc.nat()).chain(([i]) => mutatedArb([all[i]!.config]).map((b) => [i, b] as const)), ([i, b]) => attempt(all[i]!, b, all[i]!.weights), runs(250));
  });

  it('JSON edits of adapter_config.json (any key replaced, removed or added; lying rank patterns)', () => {
    fuzz('adapter files', 'edited adapter_config.json', fc.tuple(fc.nat({ max: all.length - 1 }), fc.array(editArb, { minLength: 1, maxLength: 3 })), ([i, edits]) => {
      const s = all[i]!;
      const json = edits.reduce((j, e) => edit(j, e), JSON.parse(Buffer.from(s.config).toString('utf8')) as unknown);
      return attempt(s, JSON.stringify(json) ?? 'null', s.weights);
    }, runs(300));
  });

  it('byte mutations of adapter_model.safetensors', () => {
    fuzz('adapter files', 'mutated adapter_model.safetensors', fc.tuple(fc.nat({ max: all.length - 1 }), fc.nat()).chain(([i]) => mutatedArb([all[i]!.weights]).map((b) => [i, b] as const)), ([i, b]) => attempt(all[i]!, all[i]!.config, b), runs(250));
  });
});
