// Segmentation losses on mask logits and soft targets (same shape, any rank;
// channels-last `[B, H, W, C]` for the Dice reductions). Built from tf ops so
// gradients flow.
import * as tf from '@tensorflow/tfjs';
import { PeftError } from '../../core/errors.js';

function checkShapes(what: string, logits: tf.Tensor, target: tf.Tensor): void {
  if (logits.shape.length !== target.shape.length || logits.shape.some((d, i) => d !== target.shape[i])) {
    throw new PeftError(`${what}: logits [${logits.shape.join(', ')}] and target [${target.shape.join(', ')}] differ in shape`);
  }
}

/**
 * Binary cross-entropy with logits, mean over all elements, exactly PyTorch's
 * `BCEWithLogitsLoss(pos_weight=posWeight)`:
 * `(1 - y) x + (1 + (w - 1) y) (log(1 + exp(-|x|)) + max(-x, 0))`, stable for any x.
 * Medical-SAM-Adapter trains REFUGE with pos_weight 2 (the default here).
 */
export function bceWithLogits(logits: tf.Tensor, target: tf.Tensor, posWeight = 2): tf.Scalar {
  checkShapes('bceWithLogits', logits, target);
  return tf.tidy(() => {
    const x = logits;
    const y = target;
    const softplusNeg = tf.add(tf.log1p(tf.exp(tf.neg(tf.abs(x)))), tf.relu(tf.neg(x))); // log(1 + exp(-x))
    const weight = tf.add(1, tf.mul(posWeight - 1, y));
    const loss = tf.add(tf.mul(tf.sub(1, y), x), tf.mul(weight, softplusNeg));
    return tf.mean(loss) as tf.Scalar;
  });
}

export interface DiceOptions {
  /** Added to the numerator (MONAI's smooth_nr). Default 1e-5. */
  smoothNr?: number;
  /** Added to the denominator (MONAI's smooth_dr). Default 1e-5. */
  smoothDr?: number;
  /** Square the prediction and target in the denominator (MONAI's squared_pred). Default false. */
  squaredPred?: boolean;
}

/**
 * Soft Dice loss on sigmoid probabilities, MONAI's `DiceLoss(sigmoid=True)`:
 * per sample and channel (reducing all axes but the first and last),
 * `1 - (2 sum(p t) + smoothNr) / (sum(p) + sum(t) + smoothDr)`, mean over samples and channels.
 */
export function diceLoss(logits: tf.Tensor, target: tf.Tensor, opts: DiceOptions = {}): tf.Scalar {
  checkShapes('diceLoss', logits, target);
  const { smoothNr = 1e-5, smoothDr = 1e-5, squaredPred = false } = opts;
  return tf.tidy(() => {
    const p = tf.sigmoid(logits);
    const rank = logits.rank;
    const axes = rank <= 2 ? [rank - 1] : Array.from({ length: rank - 2 }, (_, i) => i + 1);
    const inter = tf.sum(tf.mul(p, target), axes);
    const denom = squaredPred ? tf.add(tf.sum(tf.square(p), axes), tf.sum(tf.square(target), axes)) : tf.add(tf.sum(p, axes), tf.sum(target, axes));
    const dice = tf.div(tf.add(tf.mul(2, inter), smoothNr), tf.add(denom, smoothDr));
    return tf.mean(tf.sub(1, dice)) as tf.Scalar;
  });
}

export interface DiceBceOptions extends DiceOptions {
  /** pos_weight of the BCE term. Default 1 (MONAI's DiceCELoss with sigmoid). */
  posWeight?: number;
  lambdaDice?: number;
  lambdaBce?: number;
}

/** `lambdaDice * diceLoss + lambdaBce * bceWithLogits` (MONAI's DiceCELoss(sigmoid=True) with the defaults). */
export function diceBce(logits: tf.Tensor, target: tf.Tensor, opts: DiceBceOptions = {}): tf.Scalar {
  const { posWeight = 1, lambdaDice = 1, lambdaBce = 1, ...dice } = opts;
  return tf.tidy(() => tf.add(tf.mul(lambdaDice, diceLoss(logits, target, dice)), tf.mul(lambdaBce, bceWithLogits(logits, target, posWeight))) as tf.Scalar);
}

export type LossName = 'bce' | 'dice' | 'dice-bce';
export const lossNames: readonly LossName[] = ['bce', 'dice', 'dice-bce'];

/** A loss function by name: bce (pos_weight 2 unless given), dice, dice-bce. */
export function createLoss(name: string, opts: DiceBceOptions = {}): (logits: tf.Tensor4D, targets: tf.Tensor4D) => tf.Scalar {
  switch (name) {
    case 'bce':
      return (l, t) => bceWithLogits(l, t, opts.posWeight ?? 2);
    case 'dice':
      return (l, t) => diceLoss(l, t, opts);
    case 'dice-bce':
      return (l, t) => diceBce(l, t, opts);
    default:
      throw new PeftError(`unknown loss '${name}': choose ${lossNames.join(', ')}`);
  }
}
