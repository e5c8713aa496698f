// Training steps leave nothing behind: the live tensor count is the same after
// every step, and on wasm the heap stops growing after the first steps (it
// never shrinks, so a leak would show as growth). Run with the repository's
// TinyViT and SAM encoders (when their plugins are in place) and LoRA.
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { valueAndGrads } from '../src/core/nn/grad.js';
import { compose } from '../src/core/peft/compose.js';
import { Registry, type RegisterFunction } from '../src/core/registry/registry.js';
import { Adam } from '../src/app/train/adam.js';
import { wasmHeapBytes } from '../src/app/train/memory-meter.js';
import { valueAndGradsLowMemory } from '../src/accel/kernels/backprop.js';
import { onBackend } from './support/kernels.js';

const PLUGINS: Record<string, () => Promise<{ register: RegisterFunction }>> = {
  'backbone-mobile-sam': () => import('../plugins/backbone-mobile-sam/index.js'),
  'backbone-sam': () => import('../plugins/backbone-sam/index.js'),
  'method-lora': () => import('../plugins/method-lora/index.js'),
};

async function plugin(dir: string): Promise<{ register: RegisterFunction } | undefined> {
  try {
    return await PLUGINS[dir]!();
  } catch {
    return undefined; // not in place yet
  }
}

async function registry(): Promise<Registry | undefined> {
  const r = new Registry();
  for (const dir of ['backbone-mobile-sam', 'backbone-sam', 'method-lora']) {
    const p = await plugin(dir);
    if (!p) return undefined;
    await r.load(dir, p.register);
  }
  return r;
}

const reg = await registry();

describe.skipIf(!reg)('no leaks across training steps', () => {
  for (const [backbone, overrides] of [
    ['mobile_sam', { img_size: 64, embed_dims: [16, 24, 32, 40], depths: [1, 1, 1, 1], num_heads: [1, 2, 2, 2], window_sizes: [4, 4, 4, 2], num_classes: 0, out_chans: 16 }],
    ['sam', { img_size: 64, patch_size: 16, embed_dim: 32, depth: 2, num_heads: 2, window_size: 2, global_attn_indexes: [1], out_chans: 16, pos_embed_grid: null, rel_pos_grid: null }],
  ] as const) {
    for (const backend of ['cpu', 'wasm']) {
      for (const backprop of ['core', 'low-memory'] as const) {
        it(`${backbone} + lora on ${backend} (${backprop} backward): tensor count flat${backend === 'wasm' ? ', heap flat after warm-up' : ''}`, async () => {
          await onBackend(backend, () => {
            const peft = compose(reg!.createBackbone(backbone, undefined, { ...overrides }), reg!.createMethod('lora', { r: 2 }), { trainDecoder: false });
            const params = peft.trainable();
            const vars = params.map(([, p]) => p.variable);
            const images = tf.randomNormal([2, overrides.img_size, overrides.img_size, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
            const adam = new Adam({ lr: 1e-3 });
            const step = () => {
              const loss = () => tf.tidy(() => tf.mean(tf.square(peft.backbone.encode(images))) as tf.Scalar);
              const r = backprop === 'core' ? valueAndGrads(loss, vars) : valueAndGradsLowMemory(loss, vars);
              const grads = r.grads.map((g, i) => g ?? tf.zerosLike(vars[i]!));
              adam.apply(params, new Map(params.map(([name], i) => [name, grads[i]!])));
              const value = r.value.dataSync()[0]!;
              tf.dispose([r.value, ...grads]);
              return value;
            };
            step();
            step();
            const tensors = tf.memory().numTensors;
            const heap = wasmHeapBytes();
            const losses: number[] = [];
            for (let i = 0; i < 3; i++) {
              losses.push(step());
              expect(tf.memory().numTensors).toBe(tensors);
            }
            if (backend === 'wasm') expect(wasmHeapBytes()).toBe(heap);
            expect(losses.every(Number.isFinite)).toBe(true);
            tf.dispose(images);
            adam.dispose();
            peft.model.dispose();
          });
        });
      }
    }
  }
});
