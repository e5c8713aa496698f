// A tiny test-only backbone and method, used to test the registry, compose()
// and the CLI contracts without the real plugins.
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { Linear, Module, type LinearLike } from '../../src/core/nn/index.js';
import type { Backbone, HeadOutput } from '../../src/core/peft/backbone.js';
import type { InjectionSite, LinearSite } from '../../src/core/peft/injection-site.js';
import type { LayerInjector } from '../../src/core/peft/layer-injector.js';
import type { Registry } from '../../src/core/registry/registry.js';
import { selectLinearSites } from '../../src/core/peft/site-selector.js';

class ToyEncoder extends Module {
  constructor(readonly width: number) {
    super();
    this.registerModule('fc1', new Linear(3, width));
    this.registerModule('fc2', new Linear(width, width));
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => (this.child('fc2') as LinearLike).forward(tf.relu((this.child('fc1') as LinearLike).forward(x))));
  }
}

class ToyBackbone implements Backbone {
  readonly id = 'toy';
  readonly model = new (class Root extends Module {})();
  readonly imageSize = 8;
  readonly pixelMean: [number, number, number] = [0, 0, 0];
  readonly pixelStd: [number, number, number] = [1, 1, 1];
  readonly decoderPath = 'mask_decoder';
  constructor(readonly preset: string, readonly width: number) {
    this.model.registerModule('image_encoder', new ToyEncoder(width));
    this.model.registerModule('mask_decoder', new Linear(width, 1));
  }
  sites(): InjectionSite[] {
    return [
      { kind: 'linear', path: 'image_encoder.fc1', role: 'mlp.fc1', in: 3, out: this.width },
      { kind: 'linear', path: 'image_encoder.fc2', role: 'mlp.fc2', in: this.width, out: this.width },
    ];
  }
  encode(images: tf.Tensor4D): tf.Tensor4D {
    return (this.model.child('image_encoder') as ToyEncoder).forward(images) as tf.Tensor4D;
  }
  decode(embeddings: tf.Tensor4D): HeadOutput {
    const masks = (this.model.child('mask_decoder') as LinearLike).forward(embeddings) as tf.Tensor4D;
    return { masks, iouPredictions: tf.ones([embeddings.shape[0], 1]) as tf.Tensor2D };
  }
}

/** Adds a learned scale vector after a linear: y = lin(x) * (1 + s), s = 0 at init. */
class ScaledLinear extends Module implements LinearLike {
  constructor(readonly base: LinearLike) {
    super();
    this.registerModule('base', base);
    this.registerParameter('scale', tf.zeros([base.outFeatures]));
  }
  get inFeatures() {
    return this.base.inFeatures;
  }
  get outFeatures() {
    return this.base.outFeatures;
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => tf.mul(this.base.forward(x), tf.add(this.param('scale').variable, 1)));
  }
}

const scaleSchema = z.object({
  targets: z.array(z.string()).default(['mlp.*']).describe('site roles to scale'),
});

export function registerToys(registry: Registry): void {
  registry.registerBackbone({
    id: 'toy',
    summary: 'a two-layer test model',
    presets: { small: { width: 4 }, wide: { width: 16 } },
    defaultPreset: 'small',
    schema: z.object({ width: z.number().int().min(1).describe('hidden width') }).strict(),
    create: (c: { width: number }, preset: string) => new ToyBackbone(preset, c.width),
  });
  registry.registerMethod({
    id: 'scale',
    summary: 'learned output scaling',
    aliases: ['toy_scale'],
    schema: scaleSchema,
    create: (config: z.infer<typeof scaleSchema>): LayerInjector => ({
      id: 'scale',
      config,
      select: (sites) => selectLinearSites(sites, config.targets, 'scale').map((s) => s.site),
      inject: (model, site) => {
        model.setModule(site.path, new ScaledLinear(model.getModule(site.path) as LinearLike));
      },
      parameterCount: (site) => (site as LinearSite).out,
    }),
  });
}
