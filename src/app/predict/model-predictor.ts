// A trained model behind the inference contract (`types.ts`). Preprocessing
// is evaluation's, step for step, so predictions agree with `peft eval`:
//   image (any size) → RGB → antialiased bilinear resize to the backbone's
//   square input (as the dataset loaders) → rounded to bytes → (x - mean) / std
//   (as `makeBatch`) → image encoder, once per image;
//   prompt in image pixels → input pixels (pixel centres kept on the grid) →
//   prompt encoder + mask decoder (classes as `predictLogits` decodes them) →
//   low-resolution logits → bilinear upscale to the image's own size (as
//   evaluation's resize to its target size) → sigmoid.
import * as tf from '@tensorflow/tfjs';
import { PeftError } from '../../core/errors.js';
import type { Prompts } from '../../core/peft/backbone.js';
import type { PeftModel } from '../../core/peft/compose.js';
import { toBytes } from '../data/dataset.js';
import type { Image8 } from '../data/image-io.js';
import { resizeBilinear } from '../data/resize.js';
import type { PromptMode } from '../train/prompts.js';
import type { ImageEmbedding, PredictedMask, Prediction, PredictOptions, Predictor, PromptSpec } from './types.js';

/** How `--prompts-from` draws prompts to match evaluation's (the run's settings; an adapter's defaults). */
export interface EvalPromptSettings {
  mode: PromptMode;
  seed: number;
  /** Evaluation draws the prompts of a batch from one stream: its batch size. */
  batch: number;
  /** The target resolution prompts are drawn at. */
  outSize: number;
}

export interface ModelPredictorOptions {
  label: string;
  /** The classes the model was trained on (one mask each, in the targets' order). */
  classes: readonly string[];
  evalPrompts: EvalPromptSettings;
  /** For predictions.json: backbone, preset, method, checkpoint… */
  describe: Record<string, unknown>;
}

/** An image's encoder output, bound to the predictor that made it. */
class Embedding implements ImageEmbedding {
  private tensor: tf.Tensor4D | undefined;

  constructor(
    readonly owner: ModelPredictor,
    tensor: tf.Tensor4D,
    readonly width: number,
    readonly height: number,
    readonly ms: number,
  ) {
    this.tensor = tensor;
  }

  get value(): tf.Tensor4D {
    if (!this.tensor) throw new Error('predict: this image embedding was disposed');
    return this.tensor;
  }

  dispose(): void {
    this.tensor?.dispose();
    this.tensor = undefined;
  }
}

/** RGB bytes of an RGB or grey image (grey repeated, as reading a grey file in 'rgb' mode gives). */
function rgbOf(image: Image8): Uint8Array {
  if (image.channels === 3) return image.data;
  const out = new Uint8Array(image.width * image.height * 3);
  for (let i = 0; i < image.width * image.height; i++) out[i * 3] = out[i * 3 + 1] = out[i * 3 + 2] = image.data[i]!;
  return out;
}

/** A pixel coordinate on an axis of `from` pixels moved to one of `to` pixels, keeping pixel centres on pixel centres. */
export const scaleCoord = (v: number, from: number, to: number): number => (from === to ? v : ((v + 0.5) * to) / from - 0.5);

/** A box's first and last pixel on an axis of `from` pixels, on one of `to` pixels (its edges kept). */
export const scaleSpan = (lo: number, hi: number, from: number, to: number): [number, number] => (from === to ? [lo, hi] : [(lo * to) / from, ((hi + 1) * to) / from - 1]);

export class ModelPredictor implements Predictor {
  readonly label: string;
  readonly imageSize: number;
  readonly classes: readonly string[];
  /** Whether the head gives several candidate masks per prompt (`multimask`). */
  readonly multimask: boolean;
  readonly evalPrompts: EvalPromptSettings;
  readonly describe: Record<string, unknown>;
  /** Image encoder and mask decoder runs so far. */
  readonly counts = { encoder: 0, decoder: 0 };
  private disposed = false;

  constructor(
    private readonly peft: PeftModel,
    o: ModelPredictorOptions,
  ) {
    this.label = o.label;
    this.imageSize = peft.backbone.imageSize;
    this.classes = o.classes;
    this.evalPrompts = o.evalPrompts;
    this.describe = o.describe;
    if (o.classes.length === 0) throw new PeftError('a model needs at least one class');
    let candidates: unknown;
    try {
      candidates = (peft.model.getModule(peft.backbone.decoderPath) as { numMultimaskOutputs?: unknown }).numMultimaskOutputs;
    } catch {
      candidates = undefined;
    }
    this.multimask = typeof candidates === 'number' ? candidates > 1 : true;
    peft.model.eval();
  }

  embed(image: Image8): ImageEmbedding {
    this.alive();
    const s = this.imageSize;
    const { pixelMean, pixelStd } = this.peft.backbone;
    // the dataset loaders' input: resized, then rounded to bytes
    const input = Float32Array.from(toBytes(resizeBilinear(rgbOf(image), image.width, image.height, 3, s, s)));
    const t0 = performance.now();
    const embedding = tf.tidy(() => {
      const raw = tf.tensor4d(input, [1, s, s, 3]);
      const normalised = tf.div(tf.sub(raw, tf.tensor1d(pixelMean)), tf.tensor1d(pixelStd)) as tf.Tensor4D;
      return this.peft.backbone.encode(normalised);
    });
    embedding.dataSync(); // the work is done before the clock stops, on any backend
    this.counts.encoder++;
    return new Embedding(this, embedding, image.width, image.height, performance.now() - t0);
  }

  predict(embedding: ImageEmbedding, prompt: PromptSpec, options: PredictOptions = {}): Prediction {
    this.alive();
    if (!(embedding instanceof Embedding) || embedding.owner !== this) throw new Error('predict: the embedding was made by another predictor');
    const { width: w, height: h } = embedding;
    const s = this.imageSize;
    const classes = this.classes;
    const all = options.multimask === true;
    if (all && !this.multimask) throw new PeftError(`${this.label}: its mask decoder gives one mask per prompt (no multimask candidates)`);
    const t0 = performance.now();
    const { probability, scores } = tf.tidy(() => {
      const prompts: Prompts = {};
      const points = prompt.points ?? [];
      if (points.length) {
        const xy = points.flatMap((p) => [scaleCoord(p.x, w, s), scaleCoord(p.y, h, s)]);
        prompts.points = { coords: tf.tensor3d(xy, [1, points.length, 2]), labels: tf.tensor2d(points.map((p) => p.label), [1, points.length]) };
      }
      if (prompt.box) {
        const [x0, x1] = scaleSpan(prompt.box[0], prompt.box[2], w, s);
        const [y0, y1] = scaleSpan(prompt.box[1], prompt.box[3], h, s);
        prompts.boxes = tf.tensor2d([x0, y0, x1, y1], [1, 4]);
      }
      const out = this.peft.backbone.decode(embedding.value, prompts, all || classes.length > 1);
      let logits = out.masks;
      let iou: tf.Tensor2D = out.iouPredictions;
      if (!all) {
        if (logits.shape[3] < classes.length) throw new PeftError(`${this.label}: the head gives ${logits.shape[3]} masks per prompt, fewer than its ${classes.length} classes`);
        logits = tf.slice(logits, [0, 0, 0, 0], [-1, -1, -1, classes.length]);
        iou = tf.slice(iou, [0, 0], [-1, classes.length]);
      }
      if (logits.shape[1] !== h || logits.shape[2] !== w) logits = tf.image.resizeBilinear(logits, [h, w], false, true);
      return { probability: tf.sigmoid(logits), scores: iou };
    });
    const values = probability.dataSync() as Float32Array;
    const iou = scores.dataSync();
    const m = probability.shape[3]!;
    tf.dispose([probability, scores]);
    this.counts.decoder++;
    const masks: PredictedMask[] = [];
    for (let k = 0; k < m; k++) {
      const plane = new Float32Array(w * h);
      for (let i = 0; i < plane.length; i++) plane[i] = values[i * m + k]!;
      // a multimask candidate is a class only where several classes were trained on the candidates
      const label = !all ? classes[k] : classes.length > 1 && k < classes.length ? classes[k] : undefined;
      masks.push({ probability: plane, score: iou[k]!, ...(label !== undefined ? { label } : {}) });
    }
    return { width: w, height: h, masks, ms: performance.now() - t0 };
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.peft.dispose();
  }

  private alive(): void {
    if (this.disposed) throw new Error(`predict: ${this.label} was disposed`);
  }
}
