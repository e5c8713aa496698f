import type * as tf from '@tensorflow/tfjs';
import type { Module } from '../nn/module.js';
import type { InjectionSite } from './injection-site.js';

/** Prompts for one batch, in input-image pixel coordinates. */
export interface Prompts {
  /** `[B, N, 2]` (x, y) with `labels [B, N]` (1 foreground, 0 background, -1 padding). */
  points?: { coords: tf.Tensor3D; labels: tf.Tensor2D };
  /** `[B, 4]` (x0, y0, x1, y1). */
  boxes?: tf.Tensor2D;
  /** Dense mask prompt, low resolution logits `[B, 4h, 4w, 1]` (SAM only). */
  masks?: tf.Tensor4D;
}

export interface HeadOutput {
  /** Low-resolution mask logits, channels-last `[B, 4h, 4w, M]`. */
  masks: tf.Tensor4D;
  /** `[B, M]` predicted IoU per mask. */
  iouPredictions: tf.Tensor2D;
}

/**
 * A segmentation model of one family and preset: an image encoder, a prompt
 * encoder and a mask decoder under one root module whose parameter names are
 * the official checkpoint keys (`image_encoder.*`, `prompt_encoder.*`,
 * `mask_decoder.*`).
 */
export interface Backbone {
  readonly id: string;
  readonly preset: string;
  /** The root module (the whole model). */
  readonly model: Module;
  /** Input side length in pixels. */
  readonly imageSize: number;
  /** Per-channel mean and std (0..255 scale) applied by `preprocess`. */
  readonly pixelMean: [number, number, number];
  readonly pixelStd: [number, number, number];
  /** Where PEFT methods may attach. */
  sites(): InjectionSite[];
  /** `[B, H, W, 3]` normalised pixels → channels-last image embeddings `[B, h, w, C]`. */
  encode(images: tf.Tensor4D): tf.Tensor4D;
  /** Prompt encoder + mask decoder. */
  decode(embeddings: tf.Tensor4D, prompts: Prompts, multimask: boolean): HeadOutput;
  /** The module path prefix of the mask decoder (trainable alongside the method by default). */
  readonly decoderPath: string;
}
