// The EfficientSAM task head: prompt encoder + mask decoder run as
// `EfficientSam.predict_masks` does (points padded with -1 to the model's
// point budget, each image's embedding serving its Q queries).
import {
  Module,
  PeftError,
  tf,
  type HeadOutput,
  type Prompts,
  type SegmentationHead,
} from '../../src/index.js';
import type { HeadOptions } from './config.js';
import { EfficientSamMaskDecoder } from './mask-decoder.js';
import { EfficientSamPromptEncoder } from './prompt-encoder.js';

export interface QueryMasks {
  /** Low-resolution logits, channels-last `[B, Q, 4h, 4w, M]`. */
  masks: tf.Tensor;
  /** `[B, Q, M]`. */
  iouPredictions: tf.Tensor3D;
}

export interface PredictOptions {
  /** Return tokens 1.. (true) or token 0 (false). */
  multimask: boolean;
  /** `[H, W]` the point coordinates refer to; they are rescaled to the model's input size (default: the model's). */
  inputSize?: [number, number];
}

/** The parts `predictEfficientSamMasks` runs. */
export interface EfficientSamHeadParts {
  promptEncoder: EfficientSamPromptEncoder;
  maskDecoder: EfficientSamMaskDecoder;
  maxNumInputPoints: number;
}

/**
 * EfficientSAM's `predict_masks` on channels-last embeddings `[B, h, w, C]` with
 * `points [B, Q, N, 2]` (x, y) and `labels [B, Q, N]`: Q queries per image.
 */
export function predictEfficientSamMasks(
  parts: EfficientSamHeadParts,
  embeddings: tf.Tensor4D,
  points: tf.Tensor,
  labels: tf.Tensor,
  options: PredictOptions,
): QueryMasks {
  if (points.rank !== 4 || points.shape[3] !== 2) throw new PeftError(`efficient_sam: points must be [B, Q, N, 2], got [${points.shape}]`);
  const [b, q, n] = points.shape as [number, number, number, number];
  if (labels.shape.join(',') !== [b, q, n].join(',')) {
    throw new PeftError(`efficient_sam: point labels must be [${b}, ${q}, ${n}], got [${labels.shape}]`);
  }
  if (embeddings.shape[0] !== b) throw new PeftError(`efficient_sam: ${embeddings.shape[0]} image embeddings for ${b} prompt sets`);
  const { promptEncoder, maskDecoder, maxNumInputPoints: p } = parts;
  return tf.tidy(() => {
    const [mh, mw] = promptEncoder.inputImageSize;
    const [ih, iw] = options.inputSize ?? [mh, mw];
    // Rescale to the model's input; negative coordinates (padding) become -1.
    const xy = tf.cast(points, 'float32');
    let pts: tf.Tensor = tf.where(tf.greaterEqual(xy, 0), tf.mul(xy, tf.tensor1d([mw / iw, mh / ih])), tf.fill(xy.shape, -1));
    let lab: tf.Tensor = tf.cast(labels, 'float32');
    if (n > p) {
      pts = tf.slice(pts, [0, 0, 0, 0], [b, q, p, 2]);
      lab = tf.slice(lab, [0, 0, 0], [b, q, p]);
    } else if (n < p) {
      pts = n === 0 ? tf.fill([b, q, p, 2], -1) : tf.concat([pts, tf.fill([b, q, p - n, 2], -1)], 2);
      lab = n === 0 ? tf.fill([b, q, p], -1) : tf.concat([lab, tf.fill([b, q, p - n], -1)], 2);
    }
    const sparse = promptEncoder.forward(tf.reshape(pts, [b * q, p, 2]), tf.reshape(lab, [b * q, p]));
    const [, h, w, c] = embeddings.shape;
    // each image's embedding serves its q queries (rank-3 tile: tfjs has no rank-5 tile gradient)
    const tiled = (q === 1 ? embeddings : tf.reshape(tf.tile(tf.reshape(embeddings, [b, 1, h * w * c]), [1, q, 1]), [b * q, h, w, c])) as tf.Tensor4D;
    const { masks, iou } = maskDecoder.predictMasks(tiled, promptEncoder.densePe(h, w), sparse);
    const { start, count } = maskDecoder.selectTokens(options.multimask);
    const [, uh, uw] = masks.shape;
    const picked = tf.slice(masks, [0, 0, 0, start], [b * q, uh, uw, count]);
    return {
      masks: tf.reshape(picked, [b, q, uh, uw, count]),
      iouPredictions: tf.reshape(tf.slice(iou, [0, start], [b * q, count]), [b, q, count]) as tf.Tensor3D,
    };
  });
}

/** The EfficientSAM prompt encoder + mask decoder as a core SegmentationHead. */
export class EfficientSamHead implements SegmentationHead {
  readonly promptEncoder: EfficientSamPromptEncoder;
  readonly maskDecoder: EfficientSamMaskDecoder;

  constructor(readonly options: HeadOptions) {
    this.promptEncoder = new EfficientSamPromptEncoder(options.embedDim, options.inputImageSize);
    this.maskDecoder = new EfficientSamMaskDecoder(options);
  }

  attach(root: Module): void {
    root.registerModule('prompt_encoder', this.promptEncoder);
    root.registerModule('mask_decoder', this.maskDecoder);
  }

  /** `[B, Q, N, 2]` points with `[B, Q, N]` labels → `[B, Q, 4h, 4w, M]` masks and `[B, Q, M]` IoUs. */
  predictMasks(embeddings: tf.Tensor4D, points: tf.Tensor, labels: tf.Tensor, options: PredictOptions): QueryMasks {
    const parts = { promptEncoder: this.promptEncoder, maskDecoder: this.maskDecoder, maxNumInputPoints: this.options.maxNumInputPoints };
    return predictEfficientSamMasks(parts, embeddings, points, labels, options);
  }

  /** One query per image: the points, then a box as two corners labelled 2 and 3. */
  decode(embeddings: tf.Tensor4D, prompts: Prompts, multimask: boolean): HeadOutput {
    if (prompts.masks) throw new PeftError('efficient_sam takes point and box prompts only, not mask prompts');
    const b = embeddings.shape[0];
    return tf.tidy(() => {
      const coords: tf.Tensor[] = [];
      const labels: tf.Tensor[] = [];
      if (prompts.points) {
        coords.push(prompts.points.coords);
        labels.push(tf.cast(prompts.points.labels, 'float32'));
      }
      if (prompts.boxes) {
        coords.push(tf.reshape(prompts.boxes, [b, 2, 2]));
        labels.push(tf.tile(tf.tensor2d([[2, 3]]), [b, 1]));
      }
      const pts = coords.length ? tf.concat(coords, 1) : tf.zeros([b, 0, 2]);
      const lab = labels.length ? tf.concat(labels, 1) : tf.zeros([b, 0]);
      const out = this.predictMasks(embeddings, tf.expandDims(pts, 1), tf.expandDims(lab, 1), { multimask });
      const [, , uh, uw, m] = out.masks.shape as number[];
      return {
        masks: tf.reshape(out.masks, [b, uh!, uw!, m!]) as tf.Tensor4D,
        iouPredictions: tf.reshape(out.iouPredictions, [b, m!]) as tf.Tensor2D,
      };
    });
  }
}
