import type * as tf from '@tensorflow/tfjs';
import { Module } from '../nn/module.js';
import type { Backbone, HeadOutput, Prompts } from '../peft/backbone.js';
import type { InjectionSite } from '../peft/injection-site.js';
import type { ImageEncoder, SegmentationHead } from './types.js';

/** The model root: `image_encoder`, `prompt_encoder`, `mask_decoder` children. */
export class SegmentationModel extends Module {}

export interface SegmentationBackboneOptions {
  id: string;
  preset: string;
  encoder: ImageEncoder;
  head: SegmentationHead;
  imageSize: number;
  pixelMean?: [number, number, number];
  pixelStd?: [number, number, number];
}

/** A Backbone made of an image encoder and a segmentation head, as SAM, MobileSAM and EfficientSAM are. */
export class SegmentationBackbone implements Backbone {
  readonly id: string;
  readonly preset: string;
  readonly model = new SegmentationModel();
  readonly imageSize: number;
  readonly pixelMean: [number, number, number];
  readonly pixelStd: [number, number, number];
  readonly decoderPath = 'mask_decoder';
  readonly encoder: ImageEncoder;
  readonly head: SegmentationHead;

  constructor(options: SegmentationBackboneOptions) {
    this.id = options.id;
    this.preset = options.preset;
    this.imageSize = options.imageSize;
    this.pixelMean = options.pixelMean ?? [123.675, 116.28, 103.53];
    this.pixelStd = options.pixelStd ?? [58.395, 57.12, 57.375];
    this.encoder = this.model.registerModule('image_encoder', options.encoder);
    this.head = options.head;
    this.head.attach(this.model);
  }

  sites(): InjectionSite[] {
    return this.encoder.sites().map((s) => ({ ...s, path: `image_encoder.${s.path}` }));
  }

  encode(images: tf.Tensor4D): tf.Tensor4D {
    return this.encoder.forward(images);
  }

  decode(embeddings: tf.Tensor4D, prompts: Prompts, multimask: boolean): HeadOutput {
    return this.head.decode(embeddings, prompts, multimask);
  }
}
