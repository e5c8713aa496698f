// The inference contract of a trained model, shared by `peft predict`, the
// training run's `--vis` panels, the report's pictures and `peft serve`: an
// image is encoded once (`embed`), then any number of prompts are decoded
// against its embedding (`predict`), each giving masks at the image's own
// size. Coordinates are in the original image's pixels.
import type { Image8 } from '../data/image-io.js';

/** A point prompt: (x, y) in image pixels; label 1 foreground, 0 background. */
export interface PointPrompt {
  x: number;
  y: number;
  label: 0 | 1;
}

/** One prompt: points, a box, or both. */
export interface PromptSpec {
  points?: PointPrompt[];
  /** `[x0, y0, x1, y1]` in image pixels. */
  box?: [number, number, number, number];
}

export interface PredictOptions {
  /**
   * All of the head's candidate masks (SAM's 3 multimask outputs) instead of
   * one mask per class the model was trained on.
   */
  multimask?: boolean;
}

/** One predicted mask at the image's own size. */
export interface PredictedMask {
  /** Foreground probability per pixel, row-major, `width * height`. */
  probability: Float32Array;
  /** The head's predicted IoU for this mask. */
  score: number;
  /** The class this mask is (a REFUGE run's `cup`, `disc`); absent for a candidate no class was trained on. */
  label?: string;
}

export interface Prediction {
  width: number;
  height: number;
  /**
   * Without `multimask`: one mask per class the model was trained on, in the
   * training targets' order, each with its `label` (decoded as evaluation
   * decodes them: one class is the head's single mask, several are its first
   * multimask outputs). With `multimask`: every candidate in the head's order
   * (`score` ranks them).
   */
  masks: PredictedMask[];
  /** Prompt encoder + mask decoder time, ms. */
  ms: number;
}

/** An image's encoder output, held for the prompts that follow. */
export interface ImageEmbedding {
  readonly width: number;
  readonly height: number;
  /** Encoder time, ms. */
  readonly ms: number;
  dispose(): void;
}

/** A trained model ready to segment images. */
export interface Predictor {
  /** What is loaded, for messages and pages: `runs/x (best)`, or an adapter folder. */
  readonly label: string;
  /** The backbone's input side in pixels (images are resized to it). */
  readonly imageSize: number;
  /** Runs the image encoder once. */
  embed(image: Image8): ImageEmbedding;
  /** Runs the prompt encoder and mask decoder on an embedding. */
  predict(embedding: ImageEmbedding, prompt: PromptSpec, options?: PredictOptions): Prediction;
  dispose(): void;
}
