// SAM's task head: the prompt encoder and the mask decoder, registered under
// the model root as `prompt_encoder` and `mask_decoder` (official checkpoint keys).
import * as tf from '@tensorflow/tfjs';
import { PeftError } from '../errors.js';
import type { Module } from '../nn/module.js';
import type { HeadOutput, Prompts } from '../peft/backbone.js';
import { MaskDecoder } from './mask-decoder.js';
import { PromptEncoder } from './prompt-encoder.js';
import type { SegmentationHead } from './types.js';

export interface SamHeadConfig {
  /** Prompt and transformer width (SAM: 256). */
  embedDim: number;
  /** `[h, w]` of the image embedding. */
  imageEmbeddingSize: [number, number];
  /** `[H, W]` of the encoder input: the frame of point and box coordinates. */
  inputImageSize: [number, number];
  /** Hidden channels of the mask-prompt downscaling (SAM: 16). */
  maskInChans: number;
  /** Masks returned in multimask mode (SAM: 3). */
  numMultimaskOutputs: number;
  transformerDepth: number;
  transformerMlpDim: number;
  transformerHeads: number;
  iouHeadDepth: number;
  iouHeadHiddenDim: number;
}

/**
 * The official SAM head sizes for an encoder of `embedDim` output channels
 * (mask_in_chans 16, 3 multimask outputs, depth 2, MLP 2048, 8 heads, IoU head
 * 3 × 256). Narrower heads scale the MLP (8 × embedDim), the IoU hidden width
 * (embedDim) and the heads (about embedDim / 16, at most 8, dividing the
 * cross-attention width embedDim / 2).
 */
export function defaultSamHeadConfig(embedDim: number, imageSize: number, patchSize: number): SamHeadConfig {
  if (!(Number.isInteger(embedDim) && embedDim > 0 && embedDim % 8 === 0)) {
    throw new PeftError(`SAM head: embed dim must be a positive multiple of 8, got ${embedDim}`);
  }
  if (!(imageSize > 0 && patchSize > 0)) throw new PeftError(`SAM head: bad image size ${imageSize} or patch size ${patchSize}`);
  const grid = Math.floor(imageSize / patchSize);
  const official = embedDim >= 256;
  let heads = Math.max(1, Math.min(8, Math.round(embedDim / 16)));
  while (heads > 1 && (embedDim / 2) % heads !== 0) heads--;
  return {
    embedDim,
    imageEmbeddingSize: [grid, grid],
    inputImageSize: [imageSize, imageSize],
    maskInChans: 16,
    numMultimaskOutputs: 3,
    transformerDepth: 2,
    transformerMlpDim: official ? 2048 : 8 * embedDim,
    transformerHeads: heads,
    iouHeadDepth: 3,
    iouHeadHiddenDim: official ? 256 : embedDim,
  };
}

export class SamHead implements SegmentationHead {
  readonly promptEncoder: PromptEncoder;
  readonly maskDecoder: MaskDecoder;

  constructor(readonly cfg: SamHeadConfig) {
    this.promptEncoder = new PromptEncoder({
      embedDim: cfg.embedDim,
      imageEmbeddingSize: cfg.imageEmbeddingSize,
      inputImageSize: cfg.inputImageSize,
      maskInChans: cfg.maskInChans,
    });
    this.maskDecoder = new MaskDecoder({
      transformerDim: cfg.embedDim,
      numMultimaskOutputs: cfg.numMultimaskOutputs,
      transformerDepth: cfg.transformerDepth,
      transformerMlpDim: cfg.transformerMlpDim,
      transformerHeads: cfg.transformerHeads,
      iouHeadDepth: cfg.iouHeadDepth,
      iouHeadHiddenDim: cfg.iouHeadHiddenDim,
    });
  }

  attach(root: Module): void {
    root.registerModule('prompt_encoder', this.promptEncoder);
    root.registerModule('mask_decoder', this.maskDecoder);
  }

  /**
   * Image embeddings `[B, h, w, C]` (channels-last) and one prompt set per
   * image → low-resolution mask logits `[B, 4h, 4w, M]` and IoU predictions
   * `[B, M]` (M = num_multimask_outputs when `multimask`, else 1).
   */
  decode(embeddings: tf.Tensor4D, prompts: Prompts, multimask: boolean): HeadOutput {
    const [b, h, w, c] = embeddings.shape;
    if (embeddings.rank !== 4 || c !== this.cfg.embedDim) {
      throw new PeftError(`SAM head: image embeddings must be [B, h, w, ${this.cfg.embedDim}] (channels-last), got [${embeddings.shape.join(', ')}]`);
    }
    return tf.tidy(() => {
      const { sparse, dense } = this.promptEncoder.forward(prompts, b, [h, w]);
      const pe = this.promptEncoder.densePe(h, w);
      const { masks, iouPredictions } = this.maskDecoder.forward(embeddings, pe, sparse, dense, multimask);
      return { masks, iouPredictions };
    });
  }

  dispose(): void {
    this.promptEncoder.dispose();
    this.maskDecoder.dispose();
  }
}
