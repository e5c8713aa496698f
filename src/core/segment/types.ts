import type * as tf from '@tensorflow/tfjs';
import type { Module } from '../nn/module.js';
import type { HeadOutput, Prompts } from '../peft/backbone.js';
import type { InjectionSite } from '../peft/injection-site.js';

/** An image encoder: `[B, H, W, 3]` normalised pixels → `[B, h, w, C]` embeddings. */
export interface ImageEncoder extends Module {
  forward(images: tf.Tensor4D): tf.Tensor4D;
  /** Injection sites with paths relative to this encoder (the backbone prefixes them). */
  sites(): InjectionSite[];
  /** Embedding channels and the patch size (H/h). */
  readonly outChannels: number;
  readonly patchSize: number;
}

/**
 * The task head (prompt encoder + mask decoder). `attach(root)` registers its
 * modules as children of the model root under their official names
 * (`prompt_encoder`, `mask_decoder`).
 */
export interface SegmentationHead {
  attach(root: Module): void;
  decode(embeddings: tf.Tensor4D, prompts: Prompts, multimask: boolean): HeadOutput;
}
