// The training loop: compose → batches → forward (encoder, prompt encoder,
// mask decoder) → loss (+ the method's regulariser) → gradients of the
// trainable set → Adam → the method's after-step hook (on the global step).
import * as tf from '@tensorflow/tfjs';
import { PeftError } from '../../core/errors.js';
import { valueAndGrads } from '../../core/nn/grad.js';
import type { Prompts } from '../../core/peft/backbone.js';
import type { PeftModel } from '../../core/peft/compose.js';
import { Adam } from './adam.js';
import { MemoryMeter } from './memory-meter.js';
import { Rng } from '../data/random.js';
import type { Sample as TrainSample } from '../data/dataset.js';
import type { PromptMode } from './prompts.js';


/** Builds the prompts of a batch from its targets (input-image pixel coordinates). */
export type PromptBuilder = (samples: TrainSample[], mode: PromptMode, rng: Rng) => Prompts;

export type LossFunction = (logits: tf.Tensor4D, targets: tf.Tensor4D) => tf.Scalar;

export interface Batch {
  images: tf.Tensor4D;
  targets: tf.Tensor4D;
  prompts: Prompts;
}

/** Normalised image batch `[B,S,S,3]`, targets `[B,o,o,C]`, prompts. The caller disposes them. */
export function makeBatch(peft: PeftModel, samples: TrainSample[], prompts: Prompts): Batch {
  const b = peft.backbone;
  const { size, outSize, channels } = samples[0]!;
  for (const s of samples) {
    if (s.size !== size || s.outSize !== outSize || s.channels !== channels) throw new PeftError(`sample '${s.name}' differs in size from the batch`);
  }
  if (size !== b.imageSize) throw new PeftError(`images are ${size} px but backbone '${b.id}' expects ${b.imageSize} px`);
  const img = new Float32Array(samples.length * size * size * 3);
  const tgt = new Float32Array(samples.length * outSize * outSize * channels);
  samples.forEach((s, i) => {
    img.set(s.image, i * size * size * 3);
    tgt.set(s.target, i * outSize * outSize * channels);
  });
  const images = tf.tidy(() => {
    const raw = tf.tensor4d(img, [samples.length, size, size, 3]);
    return tf.div(tf.sub(raw, tf.tensor1d(b.pixelMean)), tf.tensor1d(b.pixelStd)) as tf.Tensor4D;
  });
  return { images, targets: tf.tensor4d(tgt, [samples.length, outSize, outSize, channels]), prompts };
}

/**
 * Mask logits for `channels` classes at `outSize`: one class uses the single
 * mask (token 0); several use the first `channels` multimask outputs.
 */
export function predictLogits(peft: PeftModel, batch: Batch, channels: number): tf.Tensor4D {
  return tf.tidy(() => {
    const b = peft.backbone;
    const embeddings = b.encode(batch.images);
    const { masks } = b.decode(embeddings, batch.prompts, channels > 1);
    if (masks.shape[3] < channels) throw new PeftError(`backbone '${b.id}' predicts ${masks.shape[3]} masks per prompt, fewer than ${channels} classes`);
    let logits = channels === masks.shape[3] ? masks : (tf.slice(masks, [0, 0, 0, 0], [-1, -1, -1, channels]) as tf.Tensor4D);
    const out = batch.targets.shape[1];
    if (logits.shape[1] !== out) logits = tf.image.resizeBilinear(logits, [out, batch.targets.shape[2]], false, true);
    return logits;
  });
}

export interface StepResult {
  loss: number;
  regulariser: number;
}

/** One optimiser step. Leaves no tensors behind. */
export function trainStep(peft: PeftModel, adam: Adam, batch: Batch, lossFn: LossFunction, step: number): StepResult {
  const params = peft.trainable();
  if (params.length === 0) throw new PeftError('nothing to train: the composed model has no trainable parameters');
  const channels = batch.targets.shape[3];
  let regValue = 0;
  const { value, grads } = valueAndGrads(() => {
    const logits = predictLogits(peft, batch, channels);
    let loss = lossFn(logits, batch.targets);
    if (peft.method.regulariser) {
      const reg = peft.method.regulariser(peft.model);
      regValue = reg.dataSync()[0]!;
      loss = tf.add(loss, reg);
    }
    return loss;
  }, params.map(([, p]) => p.variable));
  const loss = value.dataSync()[0]!;
  const byName = new Map(params.map(([name], i) => [name, grads[i]!]));
  try {
    if (!Number.isFinite(loss)) throw new PeftError(`loss became ${loss} at step ${step}: stopping (lower --lr, or check the data)`);
    adam.apply(params, byName);
    peft.method.afterStep?.({ step, model: peft.model, grads: byName });
  } finally {
    tf.dispose([value, ...grads]);
  }
  return { loss, regulariser: regValue };
}

export { Adam, MemoryMeter, Rng, type TrainSample };
