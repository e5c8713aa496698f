// Official checkpoints into built-in backbones: strict loading, clear errors,
// and the keys a backbone declares derived (TinyViT's attention_bias_idxs).
import { describe, expect, it, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDefaultRegistry } from '../src/builtins.js';
import type { Registry } from '../src/core/registry/registry.js';
import { saveTensors } from '../src/core/io/safetensors.js';
import { loadBackboneWeights as load, type LoadWeightsOptions } from '../src/core/peft/backbone-weights.js';
import type { Backbone } from '../src/core/peft/backbone.js';
import { PeftError } from '../src/core/errors.js';
import { fixture, HAVE_FIXTURES } from './support/fixtures.js';

let registry: Registry;
const dir = mkdtempSync(join(tmpdir(), 'weights-'));
beforeAll(async () => {
  registry = await createDefaultRegistry();
});

/** Loads with the backbone's registered definition, as a run does. */
function loadBackboneWeights(backbone: Backbone, path: string, options?: LoadWeightsOptions) {
  return load(backbone, registry.backbone(backbone.id), path, options);
}

describe('loadBackboneWeights', () => {
  it('round-trips a full state dict through safetensors, strictly', async () => {
    const a = registry.createBackbone('sam', 'tiny', { img_size: 64 });
    const path = join(dir, 'sam_tiny.safetensors');
    await saveTensors(path, a.model.stateDict());
    const b = registry.createBackbone('sam', 'tiny', { img_size: 64 });
    const report = loadBackboneWeights(b, path);
    expect(report.loaded).toBe(a.model.stateDict().size);
    const w = 'image_encoder.blocks.0.attn.qkv.weight';
    expect(b.model.stateDict().get(w)!.dataSync()).toEqual(a.model.stateDict().get(w)!.dataSync());
    a.model.dispose();
    b.model.dispose();
  });

  it('a checkpoint of another preset is an error naming the first mismatches, and loads nothing', async () => {
    const small = registry.createBackbone('sam', 'tiny', { img_size: 64 });
    const path = join(dir, 'small.safetensors');
    await saveTensors(path, small.model.stateDict());
    const other = registry.createBackbone('sam', 'tiny', { img_size: 64, embed_dim: 64, num_heads: 2 });
    const before = other.model.stateDict().get('image_encoder.pos_embed')!.dataSync().slice();
    expect(() => loadBackboneWeights(other, path)).toThrow(PeftError);
    expect(() => loadBackboneWeights(other, path)).toThrow(/small\.safetensors: state dict does not fit the model \(shape mismatch: image_encoder\..* expected \[.*\] got \[.*\].*is this a checkpoint for sam preset 'tiny'\?/);
    expect(other.model.stateDict().get('image_encoder.pos_embed')!.dataSync()).toEqual(before);
    small.model.dispose();
    other.model.dispose();
  });

  it('truncated files, foreign checkpoints and non-checkpoints are clear errors', async () => {
    const b = registry.createBackbone('sam', 'tiny', { img_size: 64 });
    const good = join(dir, 'good.safetensors');
    await saveTensors(good, b.model.stateDict());
    const cut = join(dir, 'cut.safetensors');
    writeFileSync(cut, readFileSync(good).subarray(0, 1000));
    expect(() => loadBackboneWeights(b, cut)).toThrow(/cut\.safetensors/);
    const text = join(dir, 'notes.pt');
    writeFileSync(text, 'hello, not a checkpoint');
    expect(() => loadBackboneWeights(b, text)).toThrow(PeftError);
    expect(() => loadBackboneWeights(b, text)).toThrow(/notes\.pt/);
    const foreign = join(dir, 'foreign.safetensors');
    await saveTensors(foreign, new Map([['model.layer.weight', tf.zeros([2])]]));
    expect(() => loadBackboneWeights(b, foreign)).toThrow(/no key matches backbone 'sam'/);
    if (HAVE_FIXTURES) {
      // a real MobileSAM checkpoint is not a SAM ViT checkpoint
      expect(() => loadBackboneWeights(b, fixture('mobile_sam_tiny.pt'))).toThrow(/mobile_sam_tiny\.pt/);
    }
    b.model.dispose();
  });

  it('skips the derived TinyViT attention_bias_idxs that some MobileSAM checkpoints persist', async () => {
    const m = registry.createBackbone('mobile_sam', 'tiny', { img_size: 64 });
    const sd = new Map(m.model.stateDict());
    const extra = tf.zeros([4, 4], 'int32');
    sd.set('image_encoder.layers.1.blocks.0.attn.attention_bias_idxs', extra);
    const path = join(dir, 'mobile.safetensors');
    await saveTensors(path, sd);
    expect(loadBackboneWeights(m, path).unexpected).toEqual([]);
    // the key is skipped because mobile_sam declares it derived, not by its name alone
    expect(() => load(m, {}, path)).toThrow(/unexpected.*attention_bias_idxs/);
    expect(load(m, {}, path, { partial: true }).unexpected).toEqual(['image_encoder.layers.1.blocks.0.attn.attention_bias_idxs']);
    extra.dispose();
    m.model.dispose();
  });
});
