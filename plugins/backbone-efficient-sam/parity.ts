// Parity kinds against the official EfficientSAM (PyTorch) fixtures. Fixtures
// are NCHW; the models are channels-last, so inputs and outputs are transposed
// here, at the boundary.
import {
  dotLoss,
  gradsByName,
  parseConfig,
  SegmentationModel,
  tf,
  type Fixture,
  type ParityKind,
  type ParityOutput,
} from '../../src/index.js';
import { checkHeadOptions, encoderOptions, encoderSchema, type HeadOptions } from './config.js';
import { EfficientSamImageEncoder } from './encoder.js';
import { EfficientSamHead } from './head.js';

function pair(v: unknown, fallback: number): [number, number] {
  if (Array.isArray(v)) return [Number(v[0]), Number(v[1] ?? v[0])];
  if (typeof v === 'number') return [v, v];
  return [fallback, fallback];
}

/** `efficientsam.MaskHead` fixture config → the head's options (the fixture's iou_head_depth is MaskDecoder's). */
export function headOptionsFromFixture(c: Record<string, any>, owner: string): HeadOptions {
  const embedDim = Number(c.embed_dim);
  const o: HeadOptions = {
    embedDim,
    imageEmbeddingSize: pair(c.image_embedding_size, 64),
    inputImageSize: pair(c.input_image_size, 1024),
    maxNumInputPoints: Number(c.max_num_input_points ?? 6),
    numMultimaskOutputs: Number(c.num_multimask_outputs ?? 3),
    transformerDepth: Number(c.transformer_depth ?? 2),
    transformerMlpDim: Number(c.transformer_mlp_dim ?? 2048),
    transformerHeads: Number(c.transformer_heads ?? 8),
    attentionDownsampleRate: Number(c.attention_downsample_rate ?? 2),
    iouHeadLayers: Number(c.iou_head_depth ?? 2),
    iouHeadHiddenDim: Number(c.iou_head_hidden_dim ?? 256),
    upscalingLayerDims: (c.upscaling_layer_dims ?? [64, 32]).map(Number),
  };
  checkHeadOptions(o, owner);
  return o;
}

export const imageEncoderKind: ParityKind = {
  kind: 'efficientsam.ImageEncoderViT',
  summary: 'EfficientSAM image encoder (patch embed, resized pos_embed, ViT blocks, neck): output and every grad',
  run(fixture: Fixture): ParityOutput {
    const config = parseConfig(encoderSchema, fixture.config, `fixture ${fixture.name}`);
    const encoder = new EfficientSamImageEncoder(encoderOptions(config));
    try {
      const params = fixture.group('param/');
      encoder.loadStateDict(params, { source: fixture.name });
      params.forEach((t) => t.dispose());
      const x = tf.transpose(fixture.tensor('input/x'), [0, 2, 3, 1]) as tf.Tensor4D;
      const upstream = fixture.tensor('input/upstream');
      const run = () => tf.transpose(encoder.forward(x), [0, 3, 1, 2]);
      const y = run();
      const { grads } = gradsByName(encoder, () => dotLoss(run(), upstream));
      return { tensors: new Map([['output/y', y], ...grads]) };
    } finally {
      encoder.dispose();
    }
  },
};

export const maskHeadKind: ParityKind = {
  kind: 'efficientsam.MaskHead',
  summary: 'EfficientSAM prompt encoder + mask decoder as predict_masks runs them: masks, IoUs and every grad',
  run(fixture: Fixture): ParityOutput {
    const c = fixture.config;
    const head = new EfficientSamHead(headOptionsFromFixture(c, `fixture ${fixture.name}`));
    const root = new SegmentationModel();
    head.attach(root);
    try {
      const params = fixture.group('param/');
      root.loadStateDict(params, { source: fixture.name });
      params.forEach((t) => t.dispose());
      const emb = tf.transpose(fixture.tensor('input/image_embeddings'), [0, 2, 3, 1]) as tf.Tensor4D;
      const points = fixture.tensor('input/points');
      const labels = fixture.tensor('input/point_labels');
      const upMasks = fixture.tensor('input/upstream');
      const upIou = fixture.tensor(fixture.has('input/upstream_iou') ? 'input/upstream_iou' : 'input/upstream_iou_predictions');
      const multimask = c.multimask_output ?? true;
      const run = () => {
        const out = head.predictMasks(emb, points, labels, { multimask });
        // [B, Q, 4h, 4w, M] -> [B, Q, M, 4h, 4w]
        return { masks: tf.transpose(out.masks, [0, 1, 4, 2, 3]), iou: out.iouPredictions };
      };
      const { masks, iou } = run();
      const { grads } = gradsByName(root, () =>
        tf.tidy(() => {
          const out = run();
          return tf.add(dotLoss(out.masks, upMasks), dotLoss(out.iou, upIou)) as tf.Scalar;
        }),
      );
      return {
        tensors: new Map<string, tf.Tensor>([['output/masks', masks], ['output/iou_predictions', iou], ...grads]),
      };
    } finally {
      root.dispose();
    }
  },
};
