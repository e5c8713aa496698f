// SAM's mask decoder (`mask_decoder.*`): an IoU token and `num_multimask_outputs
// + 1` mask tokens join the prompt tokens; the two-way transformer mixes them
// with the image; the image side is upscaled 4× and each mask token's
// hypernetwork MLP turns into per-pixel weights of the upscaled features.
import * as tf from '@tensorflow/tfjs';
import { PeftError } from '../errors.js';
import { Module } from '../nn/module.js';
import { ConvTranspose2d, GELU, LayerNorm2d } from '../nn/layers.js';
import type { HeadOutput } from '../peft/backbone.js';
import { ModuleList, Sequential } from '../nn/containers.js';
import { Embedding } from '../nn/embedding.js';
import { MLP } from './mlp.js';
import { TwoWayTransformer } from './two-way-transformer.js';

export interface MaskDecoderOptions {
  transformerDim: number;
  numMultimaskOutputs: number;
  transformerDepth: number;
  transformerMlpDim: number;
  transformerHeads: number;
  iouHeadDepth: number;
  iouHeadHiddenDim: number;
}

export class MaskDecoder extends Module {
  readonly transformerDim: number;
  readonly numMultimaskOutputs: number;
  readonly numMaskTokens: number;

  constructor(options: MaskDecoderOptions) {
    super();
    const c = options.transformerDim;
    if (c % 8) throw new Error(`MaskDecoder: transformer_dim must be divisible by 8, got ${c}`);
    this.transformerDim = c;
    this.numMultimaskOutputs = options.numMultimaskOutputs;
    this.numMaskTokens = options.numMultimaskOutputs + 1;
    this.registerModule(
      'transformer',
      new TwoWayTransformer({
        depth: options.transformerDepth,
        embeddingDim: c,
        numHeads: options.transformerHeads,
        mlpDim: options.transformerMlpDim,
        attentionDownsampleRate: 2,
      }),
    );
    this.registerModule('iou_token', new Embedding(1, c));
    this.registerModule('mask_tokens', new Embedding(this.numMaskTokens, c));
    this.registerModule(
      'output_upscaling',
      new Sequential([
        new ConvTranspose2d(c, c / 4, 2, 2),
        new LayerNorm2d(c / 4),
        new GELU(),
        new ConvTranspose2d(c / 4, c / 8, 2, 2),
        new GELU(),
      ]),
    );
    const hyper = new ModuleList<MLP>();
    for (let i = 0; i < this.numMaskTokens; i++) hyper.push(new MLP(c, c, c / 8, 3));
    this.registerModule('output_hypernetworks_mlps', hyper);
    this.registerModule('iou_prediction_head', new MLP(c, options.iouHeadHiddenDim, this.numMaskTokens, options.iouHeadDepth));
  }

  get transformer(): TwoWayTransformer {
    return this.child('transformer') as TwoWayTransformer;
  }

  /** The mask tokens a call returns: 1.. when `multimask`, else 0. */
  maskIndices(multimask: boolean): number[] {
    return multimask ? Array.from({ length: this.numMultimaskOutputs }, (_, i) => i + 1) : [0];
  }

  /**
   * `image [B, h, w, C]` channels-last (image `b` pairs with prompt set `b`),
   * `imagePe [h, w, C]`, `sparse [B, N, C]` or null, `dense` broadcastable to
   * `[B, h, w, C]` → masks `[B, 4h, 4w, M]` and IoU predictions `[B, M]`.
   */
  forward(image: tf.Tensor4D, imagePe: tf.Tensor3D, sparse: tf.Tensor3D | null, dense: tf.Tensor4D, multimask: boolean): HeadOutput {
    if (multimask && this.numMultimaskOutputs < 1) throw new PeftError('SAM mask decoder: multimask output asked but num_multimask_outputs is 0');
    return tf.tidy(() => {
      const [b, h, w, c] = image.shape;
      // Tokens: [iou, mask_0..mask_M, prompts...] per image.
      const outputTokens = tf.concat([(this.child('iou_token') as Embedding).weight, (this.child('mask_tokens') as Embedding).weight], 0);
      let tokens = tf.tile(tf.expandDims(outputTokens, 0), [b, 1, 1]) as tf.Tensor3D;
      if (sparse && sparse.shape[1] > 0) tokens = tf.concat([tokens, sparse], 1);

      const src = tf.reshape(tf.add(image, dense), [b, h * w, c]) as tf.Tensor3D;
      const pos = tf.reshape(imagePe, [1, h * w, c]) as tf.Tensor3D;
      const [hs, keys] = this.transformer.forward(src, pos, tokens);

      // Upscale the image side: [B, h, w, C] → [B, 4h, 4w, C/8], flattened to [B, 16hw, C/8].
      const up = (this.child('output_upscaling') as Sequential).forward(tf.reshape(keys, [b, h, w, c]));
      const [, uh, uw, uc] = up.shape;
      const upFlat = tf.reshape(up, [b, uh! * uw!, uc!]) as tf.Tensor3D;

      // Hypernetwork weights for the selected mask tokens: [B, M, C/8].
      const picks = this.maskIndices(multimask);
      const hyperMlps = this.child('output_hypernetworks_mlps') as ModuleList<MLP>;
      const hyperIn = tf.stack(
        picks.map((i) => hyperMlps.at(i).forward(tf.squeeze(tf.slice(hs, [0, 1 + i, 0], [b, 1, c]), [1]))),
        1,
      ) as tf.Tensor3D;
      const masks = tf.reshape(tf.matMul(upFlat, hyperIn, false, true), [b, uh!, uw!, picks.length]) as tf.Tensor4D;

      const iouToken = tf.reshape(tf.slice(hs, [0, 0, 0], [b, 1, c]), [b, c]);
      const iouAll = (this.child('iou_prediction_head') as MLP).forward(iouToken) as tf.Tensor2D;
      const iouPredictions = tf.slice(iouAll, [0, picks[0]!], [b, picks.length]) as tf.Tensor2D;
      return { masks, iouPredictions };
    });
  }
}
