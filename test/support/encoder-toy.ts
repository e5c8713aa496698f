// The law suite's toy backbone laid out like a SAM model for adapter-format
// tests: its blocks under `image_encoder.` (so PEFT's layer-index rule,
// `.*?\.[^.]*\.(\d+)\.`, finds `image_encoder.blocks.<i>.`) and a one-linear
// `mask_decoder` that trains unless frozen, as a real backbone's does.
import type * as tf from '@tensorflow/tfjs';
import { Linear, Module } from '../../src/core/nn/index.js';
import type { Backbone, HeadOutput } from '../../src/core/peft/backbone.js';
import type { InjectionSite } from '../../src/core/peft/injection-site.js';
import { ToyBackbone, type ToySpec } from '../../src/core/testing/toy-backbone.js';

class Root extends Module {}

export class EncoderToy implements Backbone {
  readonly id = 'encoder-toy';
  readonly preset: string;
  readonly model = new Root();
  readonly imageSize = 0;
  readonly pixelMean: [number, number, number] = [0, 0, 0];
  readonly pixelStd: [number, number, number] = [1, 1, 1];
  readonly decoderPath = 'mask_decoder';
  readonly toy: ToyBackbone;

  constructor(spec: ToySpec) {
    this.toy = new ToyBackbone(spec);
    this.preset = this.toy.preset;
    this.model.registerModule('image_encoder', this.toy.model);
    this.model.registerModule('mask_decoder', new Linear(spec.dim, 1));
  }

  sites(): InjectionSite[] {
    return this.toy.sites().map((s) => ({ ...s, path: `image_encoder.${s.path}` }));
  }

  /** Tokens `[B, N, C]` through the blocks (methods injected under `image_encoder.` act on the same modules). */
  forward(x: tf.Tensor3D): tf.Tensor3D {
    return this.toy.forward(x);
  }

  encode(images: tf.Tensor4D): tf.Tensor4D {
    return this.toy.encode(images);
  }

  decode(): HeadOutput {
    throw new Error('EncoderToy has no segmentation head');
  }

  dispose(): void {
    this.model.dispose();
  }
}
