// Every method composes with every backbone (3 x 3 pairs): the plan's counts
// equal each method's formula, and one training step runs, changes only
// trainable parameters, and leaks no tensor.
import { describe, expect, it, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { createDefaultRegistry } from '../src/builtins.js';
import type { Registry } from '../src/core/registry/registry.js';
import { compose } from '../src/core/peft/compose.js';
import { Adam } from '../src/app/train/adam.js';
import { makeBatch, trainStep } from '../src/app/train/step.js';
import { createLoss } from '../src/app/train/losses.js';

let registry: Registry;
beforeAll(async () => {
  registry = await createDefaultRegistry();
});

const backbones = ['sam', 'mobile_sam', 'efficient_sam'];
const methods = ['lora', 'adapter', 'adalora'];

describe.each(backbones)('%s', (backboneId) => {
  it.each(methods)('composes with %s and trains one step', (methodId) => {
    const backbone = registry.createBackbone(backboneId, 'tiny', { img_size: 64 });
    const method = registry.createMethod(methodId, methodId === 'adalora' ? { init_r: 4, target_r: 2, total_step: 10, init_warmup: 1, final_warmup: 1 } : {});
    const peft = compose(backbone, method);
    try {
      const report = peft.report();
      expect(report.sites.length).toBeGreaterThan(0);
      expect(report.methodParameters).toBe(report.sites.reduce((n, s) => n + method.parameterCount(s), 0));
      const frozen = peft.model.namedParameters().filter(([, p]) => !p.trainable);
      const frozenBefore = frozen.map(([, p]) => p.variable.dataSync().slice());
      const size = 64;
      const out = backbone.imageSize / 4;
      const sample = { name: 's', image: new Float32Array(size * size * 3).map((_, i) => (i * 37) % 255), target: new Float32Array(out * out).map((_, i) => (i % 7 === 0 ? 1 : 0)), size, outSize: out, channels: 1 };
      const coords = tf.tensor3d([[[20, 30]]]);
      const labels = tf.tensor2d([[1]]);
      const batch = makeBatch(peft, [sample], { points: { coords, labels } });
      const adam = new Adam({ lr: 1e-2 });
      trainStep(peft, adam, batch, createLoss('bce'), 1); // warm-up: Adam allocates its state
      const count = tf.memory().numTensors;
      const { loss } = trainStep(peft, adam, batch, createLoss('bce'), 2);
      expect(Number.isFinite(loss)).toBe(true);
      expect(tf.memory().numTensors).toBe(count);
      frozen.forEach(([name, p], i) => expect(p.variable.dataSync(), name).toEqual(frozenBefore[i]));
      tf.dispose([batch.images, batch.targets, coords, labels]);
      adam.dispose();
    } finally {
      peft.dispose();
    }
  });
});
