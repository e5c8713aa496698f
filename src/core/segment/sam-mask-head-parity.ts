// Parity kind `sam.MaskHead`: SAM's prompt encoder + mask decoder against the
// official segment-anything outputs and grads. The fixture is NCHW; the head
// is channels-last, so inputs and outputs are transposed at this boundary.
import * as tf from '@tensorflow/tfjs';
import { PeftError } from '../errors.js';
import { Module } from '../nn/module.js';
import type { Fixture } from '../parity/fixture.js';
import { gradsByName } from '../parity/grads.js';
import type { ParityKind, ParityOutput } from '../parity/parity-kind.js';
import type { Prompts } from '../peft/backbone.js';
import { SamHead, type SamHeadConfig } from './sam-head.js';

class HeadRoot extends Module {}

function pair(v: unknown, name: string): [number, number] {
  if (typeof v === 'number') return [v, v];
  if (Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === 'number')) return [v[0], v[1]];
  throw new PeftError(`sam.MaskHead: config '${name}' must be a number or [h, w], got ${JSON.stringify(v)}`);
}

function num(cfg: Record<string, any>, key: string, fallback?: number): number {
  const v = cfg[key] ?? fallback;
  if (typeof v !== 'number') throw new PeftError(`sam.MaskHead: config '${key}' must be a number, got ${JSON.stringify(cfg[key])}`);
  return v;
}

/** The head config from a fixture's snake_case config (official SAM defaults where absent). */
export function samHeadConfigFromFixture(cfg: Record<string, any>): SamHeadConfig {
  return {
    embedDim: num(cfg, 'embed_dim', 256),
    imageEmbeddingSize: pair(cfg.image_embedding_size ?? 64, 'image_embedding_size'),
    inputImageSize: pair(cfg.input_image_size ?? 1024, 'input_image_size'),
    maskInChans: num(cfg, 'mask_in_chans', 16),
    numMultimaskOutputs: num(cfg, 'num_multimask_outputs', 3),
    transformerDepth: num(cfg, 'transformer_depth', 2),
    transformerMlpDim: num(cfg, 'transformer_mlp_dim', 2048),
    transformerHeads: num(cfg, 'transformer_heads', 8),
    iouHeadDepth: num(cfg, 'iou_head_depth', 3),
    iouHeadHiddenDim: num(cfg, 'iou_head_hidden_dim', 256),
  };
}

const nchwToNhwc = (t: tf.Tensor) => tf.transpose(t, [0, 2, 3, 1]) as tf.Tensor4D;

/** The prompts the fixture holds (points, boxes and/or a dense mask), channels-last. */
function fixturePrompts(fixture: Fixture): Prompts {
  const prompts: Prompts = {};
  if (fixture.has('input/point_coords')) {
    prompts.points = {
      coords: fixture.tensor('input/point_coords') as tf.Tensor3D,
      labels: fixture.tensor('input/point_labels') as tf.Tensor2D,
    };
  }
  if (fixture.has('input/boxes')) prompts.boxes = fixture.tensor('input/boxes') as tf.Tensor2D;
  const maskKey = ['input/mask_inputs', 'input/masks', 'input/mask_input'].find((k) => fixture.has(k));
  if (maskKey) prompts.masks = nchwToNhwc(fixture.tensor(maskKey));
  const want = fixture.config.prompt;
  if (want === 'points' && !prompts.points) throw new PeftError(`${fixture.name}: prompt 'points' but no input/point_coords`);
  if (want === 'boxes' && !prompts.boxes) throw new PeftError(`${fixture.name}: prompt 'boxes' but no input/boxes`);
  return prompts;
}

export const samMaskHeadParity: ParityKind = {
  kind: 'sam.MaskHead',
  summary: "SAM's prompt encoder + mask decoder (segment-anything), per-image prompts",
  run(fixture: Fixture): ParityOutput {
    const head = new SamHead(samHeadConfigFromFixture(fixture.config));
    const root = new HeadRoot();
    head.attach(root);
    try {
      const params = fixture.group('param/');
      root.loadStateDict(params, { source: fixture.name });
      tf.dispose([...params.values()]);

      const embeddings = nchwToNhwc(fixture.tensor('input/image_embeddings'));
      const prompts = fixturePrompts(fixture);
      const multimask = Boolean(fixture.config.multimask_output);
      const upstream = fixture.tensor('input/upstream');
      const upstreamIou = fixture.has('input/upstream_iou') ? fixture.tensor('input/upstream_iou') : null;

      const forward = () => {
        const out = head.decode(embeddings, prompts, multimask);
        return { masks: tf.transpose(out.masks, [0, 3, 1, 2]), iou: out.iouPredictions };
      };
      const { masks, iou } = tf.tidy(forward);
      const { value, grads } = gradsByName(root, () =>
        tf.tidy(() => {
          const out = forward();
          const l = tf.sum(tf.mul(out.masks, upstream));
          return (upstreamIou ? tf.add(l, tf.sum(tf.mul(out.iou, upstreamIou))) : l) as tf.Scalar;
        }),
      );
      value.dispose();
      const tensors = new Map<string, tf.Tensor>([
        ['output/masks', masks],
        ['output/iou_predictions', iou],
      ]);
      for (const [k, g] of grads) tensors.set(k, g);
      return { tensors };
    } finally {
      root.dispose();
    }
  },
};
