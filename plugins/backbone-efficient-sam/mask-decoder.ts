// EfficientSAM's mask decoder (efficient_sam_decoder.py MaskDecoder): output
// tokens + prompt tokens through the two-way transformer, the image tokens
// upscaled by transposed convs (GroupNorm(1) + GELU between, GELU after the
// last), and one hypernetwork MLP per mask token. Channels-last throughout.
import { ConvTranspose2d, GELU, Module, tf, Embedding, Sequential, Identity, ModuleList } from '../../src/index.js';
import type { HeadOptions } from './config.js';
import { GroupNorm1 } from './layers.js';
import { MlpBlock } from './mlp-block.js';
import { TwoWayTransformer } from './two-way-transformer.js';

export class EfficientSamMaskDecoder extends Module {
  readonly numMultimaskOutputs: number;
  readonly numMaskTokens: number;

  constructor(o: HeadOptions) {
    super();
    const dim = o.embedDim;
    this.numMultimaskOutputs = o.numMultimaskOutputs;
    this.numMaskTokens = o.numMultimaskOutputs > 1 ? o.numMultimaskOutputs + 1 : 1;
    this.registerModule('transformer', new TwoWayTransformer(o.transformerDepth, dim, o.transformerHeads, o.transformerMlpDim, o.attentionDownsampleRate));
    this.registerModule('iou_token', new Embedding(1, dim));
    this.registerModule('mask_tokens', new Embedding(this.numMaskTokens, dim));
    let channels = dim;
    const stages = o.upscalingLayerDims.map((out, i) => {
      const last = i === o.upscalingLayerDims.length - 1;
      const stage = new Sequential([new ConvTranspose2d(channels, out, 2, 2), last ? new Identity() : new GroupNorm1(out), new GELU()]);
      channels = out;
      return stage;
    });
    this.registerModule('final_output_upscaling_layers', new ModuleList(stages));
    const hyper: MlpBlock[] = [];
    for (let i = 0; i < this.numMaskTokens; i++) hyper.push(new MlpBlock(dim, dim, channels, 2));
    this.registerModule('output_hypernetworks_mlps', new ModuleList(hyper));
    this.registerModule('iou_prediction_head', new MlpBlock(dim, o.iouHeadHiddenDim, this.numMaskTokens, o.iouHeadLayers));
  }

  /**
   * `image [M, h, w, C]`, dense `imagePe [h, w, C]`, prompt tokens `sparse [M, T, C]` →
   * every token's `masks [M, 2^s h, 2^s w, numMaskTokens]` and `iou [M, numMaskTokens]`.
   */
  predictMasks(image: tf.Tensor4D, imagePe: tf.Tensor3D, sparse: tf.Tensor3D): { masks: tf.Tensor4D; iou: tf.Tensor2D } {
    return tf.tidy(() => {
      const [m, h, w, c] = image.shape;
      const t = this.numMaskTokens;
      const output = tf.concat([(this.child('iou_token') as Embedding).weight, (this.child('mask_tokens') as Embedding).weight], 0);
      const tokens = tf.concat([tf.tile(tf.expandDims(output, 0), [m, 1, 1]), sparse], 1);
      const [hs, src] = (this.child('transformer') as TwoWayTransformer).forward(
        tf.reshape(image, [m, h * w, c]),
        tf.reshape(imagePe, [1, h * w, c]),
        tokens,
      );
      const iouOut = tf.squeeze(tf.slice(hs, [0, 0, 0], [m, 1, c]), [1]);
      const maskOut = tf.slice(hs, [0, 1, 0], [m, t, c]);
      let up: tf.Tensor = tf.reshape(src, [m, h, w, c]);
      for (const stage of this.child('final_output_upscaling_layers') as ModuleList<Sequential>) up = stage.forward(up);
      const [, uh, uw, uc] = up.shape as [number, number, number, number];
      const mlps = this.child('output_hypernetworks_mlps') as ModuleList<MlpBlock>;
      const perToken = tf.unstack(maskOut, 1).map((tok, i) => mlps.at(i).forward(tok));
      const hyperIn = tf.stack(perToken, 1); // [M, T, uc]
      const masks = tf.matMul(tf.reshape(up, [m, uh * uw, uc]) as tf.Tensor3D, hyperIn as tf.Tensor3D, false, true); // [M, uh*uw, T]
      const iou = (this.child('iou_prediction_head') as MlpBlock).forward(iouOut) as tf.Tensor2D;
      return { masks: tf.reshape(masks, [m, uh, uw, t]) as tf.Tensor4D, iou };
    });
  }

  /** Which token outputs a call returns: tokens 1.. when multimask (and there are several), else token 0. */
  selectTokens(multimask: boolean): { start: number; count: number } {
    return multimask && this.numMultimaskOutputs > 1 ? { start: 1, count: this.numMaskTokens - 1 } : { start: 0, count: 1 };
  }
}
