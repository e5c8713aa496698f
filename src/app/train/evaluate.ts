// Evaluation: the model on every sample of a dataset, without augmentation,
// with seeded prompts, scored by Dice and IoU per class (averaged over the
// reference's thresholds, and at 0.5).
import * as tf from '@tensorflow/tfjs';
import type { Dataset, Sample } from '../data/dataset.js';
import { Rng } from '../data/random.js';
import type { Prompts } from '../../core/peft/backbone.js';
import type { PeftModel } from '../../core/peft/compose.js';
import { createLoss } from './losses.js';
import { SegmentationMeter } from './metrics.js';
import { buildPrompts, disposePrompts, type PromptMode } from './prompts.js';
import { makeBatch, predictLogits } from './step.js';

/** One evaluated batch, as the model saw it; the tensors are disposed when the hook returns. */
export interface EvalBatch {
  /** 0 for the first batch. */
  index: number;
  samples: Sample[];
  prompts: Prompts;
  /** `[B, outSize, outSize, classes]` mask logits. */
  logits: tf.Tensor4D;
}

export interface EvalOptions {
  batch: number;
  prompt: PromptMode;
  seed: number;
  loss?: string;
  /** Called after each batch is scored (the training run's `--vis` panels). */
  onBatch?(batch: EvalBatch): void | Promise<void>;
}

export interface EvalResult {
  /** Per class, averaged over thresholds 0.1..0.9. */
  dice: Record<string, number>;
  iou: Record<string, number>;
  /** Per class at threshold 0.5. */
  dice05: Record<string, number>;
  iou05: Record<string, number>;
  /** Mean loss over batches. */
  loss: number;
  count: number;
}

export async function evaluate(peft: PeftModel, data: Dataset, options: EvalOptions): Promise<EvalResult> {
  const meter = new SegmentationMeter(data.channels);
  const lossFn = createLoss(options.loss ?? 'bce');
  let lossSum = 0;
  let batches = 0;
  for (let at = 0; at < data.length; at += options.batch) {
    const samples: Sample[] = [];
    for (let i = at; i < Math.min(at + options.batch, data.length); i++) samples.push(await data.get(i));
    // the prompt of sample i depends only on the seed and i, whatever the batch size
    const prompts = buildPrompts(samples, options.prompt, new Rng(options.seed, 'eval-prompt', at));
    const batch = makeBatch(peft, samples, prompts);
    try {
      const logits = predictLogits(peft, batch, data.channels.length);
      try {
        const loss = lossFn(logits, batch.targets);
        lossSum += (await loss.data())[0]!;
        loss.dispose();
        batches++;
        await meter.add(logits, batch.targets);
        await options.onBatch?.({ index: at / options.batch, samples, prompts, logits });
      } finally {
        logits.dispose();
      }
    } finally {
      tf.dispose([batch.images, batch.targets]);
      disposePrompts(prompts);
    }
  }
  const r = meter.result();
  const pick = (k: 'dice' | 'iou' | 'dice05' | 'iou05') => Object.fromEntries(Object.entries(r.perClass).map(([c, s]) => [c, s[k]]));
  return { dice: pick('dice'), iou: pick('iou'), dice05: pick('dice05'), iou05: pick('iou05'), loss: batches ? lossSum / batches : NaN, count: r.count };
}
