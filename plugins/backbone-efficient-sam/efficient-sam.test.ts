import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Fixture,
  Linear,
  Module,
  PeftError,
  Registry,
  runFixture,
  SegmentationModel,
  seedEverything,
  tf,
  type LinearLike,
} from '../../src/index.js';
import { encoderOptions, encoderSchema } from './config.js';
import { EfficientSamImageEncoder, EncoderBlock } from './encoder.js';
import { EfficientSamHead } from './head.js';
import { register } from './index.js';
import { headOptionsFromFixture } from './parity.js';
import { FIXTURES } from '../../test/support/fixtures.js';

const FIX = FIXTURES;

function registry(): Registry {
  const r = new Registry();
  register(r);
  return r;
}

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  expect(a.shape).toEqual(b.shape);
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

describe('efficient_sam parity fixtures', () => {
  for (const name of ['efficientsam_encoder', 'efficientsam_head_points']) {
    it(name, async () => {
      const r = await runFixture(`${FIX}/${name}.json`, registry());
      expect(r.error).toBeUndefined();
      expect(r.checks.filter((c) => !c.ok)).toEqual([]);
      expect(r.checks.length).toBeGreaterThan(2);
      expect(r.ok).toBe(true);
    });
  }
});

describe('image encoder generality', () => {
  const fixture = new Fixture(`${FIX}/efficientsam_encoder.json`);
  let encoder: EfficientSamImageEncoder;
  beforeAll(() => {
    encoder = new EfficientSamImageEncoder(encoderOptions(encoderSchema.parse(fixture.config)));
    const params = fixture.group('param/');
    encoder.loadStateDict(params);
    params.forEach((t) => t.dispose());
  });
  afterAll(() => encoder.dispose());

  it('encodes other image sizes (resized and unresized pos_embed, non-square)', () => {
    for (const [h, w] of [[32, 32], [48, 80], [224, 224]] as const) {
      tf.tidy(() => {
        const y = encoder.forward(tf.randomNormal([1, h, w, 3], 0, 1, 'float32', 3) as tf.Tensor4D);
        expect(y.shape).toEqual([1, h / 16, w / 16, 16]);
        expect(Number.isFinite(tf.sum(y).dataSync()[0]!)).toBe(true);
      });
    }
  });

  it('a batch of two equals two single-image runs', () => {
    tf.tidy(() => {
      const x = tf.randomNormal([2, 64, 64, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
      const both = encoder.forward(x);
      for (let i = 0; i < 2; i++) {
        const one = encoder.forward(tf.slice(x, [i, 0, 0, 0], [1, 64, 64, 3]));
        expect(maxAbsDiff(tf.slice(both, [i, 0, 0, 0], [1, 4, 4, 16]), one)).toBeLessThan(1e-5);
      }
    });
  });

  it('lists its sites and honours replaced linears and block hooks', () => {
    const sites = encoder.sites();
    expect(sites).toHaveLength(2 * 5);
    expect(sites.slice(0, 5)).toEqual([
      { kind: 'linear', path: 'blocks.0.attn.qkv', role: 'attn.qkv', in: 32, out: 96, groups: ['q', 'k', 'v'], block: 0 },
      { kind: 'linear', path: 'blocks.0.attn.proj', role: 'attn.proj', in: 32, out: 32, block: 0 },
      { kind: 'linear', path: 'blocks.0.mlp.fc1', role: 'mlp.fc1', in: 32, out: 128, block: 0 },
      { kind: 'linear', path: 'blocks.0.mlp.fc2', role: 'mlp.fc2', in: 128, out: 32, block: 0 },
      { kind: 'block', path: 'blocks.0', role: 'block', dim: 32, hooks: ['post-attn', 'mlp-parallel'], block: 0 },
    ]);
    for (const s of sites) {
      const m = encoder.getModule(s.path);
      if (s.kind === 'linear') expect((m as LinearLike).inFeatures).toBe(s.in);
      else expect(m).toBeInstanceOf(EncoderBlock);
    }

    // A wrapper set at a site's path is the one the forward calls.
    class Counting extends Module implements LinearLike {
      calls = 0;
      constructor(readonly inner: LinearLike) {
        super();
        this.registerModule('base', inner);
      }
      get inFeatures() {
        return this.inner.inFeatures;
      }
      get outFeatures() {
        return this.inner.outFeatures;
      }
      forward(x: tf.Tensor) {
        this.calls++;
        return this.inner.forward(x);
      }
    }
    const x = tf.randomNormal([1, 64, 64, 3], 0, 1, 'float32', 9) as tf.Tensor4D;
    const base = encoder.forward(x);
    const paths = ['blocks.1.attn.qkv', 'blocks.1.mlp.fc2'];
    const olds = paths.map((p) => encoder.setModule(p, new Counting(encoder.getModule(p) as LinearLike)) as LinearLike);
    const same = encoder.forward(x);
    paths.forEach((p) => expect((encoder.getModule(p) as Counting).calls).toBe(1));
    expect(maxAbsDiff(base, same)).toBe(0);
    paths.forEach((p, i) => encoder.setModule(p, olds[i]!));

    // A post-attn hook that zeroes the attention output == zeroed attn.proj.
    const zero = new (class extends Module {
      forward(t: tf.Tensor) {
        return tf.zerosLike(t);
      }
    })();
    const block = encoder.getModule('blocks.0') as EncoderBlock;
    block.attachHook('post-attn', 'zero_attn', zero);
    const hooked = encoder.forward(x);
    block.hooks['post-attn'].length = 0;
    const proj = encoder.getModule('blocks.0.attn.proj') as Linear;
    const saved = [proj.weight.clone(), proj.bias!.clone()];
    proj.weight.assign(tf.zerosLike(proj.weight));
    proj.bias!.assign(tf.zerosLike(proj.bias!));
    const zeroed = encoder.forward(x);
    proj.weight.assign(saved[0]!);
    proj.bias!.assign(saved[1]!);
    expect(maxAbsDiff(hooked, zeroed)).toBeLessThan(1e-5);
    expect(maxAbsDiff(encoder.forward(x), base)).toBe(0);
    tf.dispose([x, base, same, hooked, zeroed, ...saved]);
  });
});

describe('mask head generality', () => {
  const fixture = new Fixture(`${FIX}/efficientsam_head_points.json`);
  let head: EfficientSamHead;
  let root: SegmentationModel;
  let emb: tf.Tensor4D;
  beforeAll(() => {
    head = new EfficientSamHead(headOptionsFromFixture(fixture.config, 'test'));
    root = new SegmentationModel();
    head.attach(root);
    const params = fixture.group('param/');
    root.loadStateDict(params);
    params.forEach((t) => t.dispose());
    emb = tf.transpose(fixture.tensor('input/image_embeddings'), [0, 2, 3, 1]) as tf.Tensor4D;
  });
  afterAll(() => {
    root.dispose();
    emb.dispose();
  });

  const pts = (data: number[][][][]) => tf.tensor(data) as tf.Tensor4D;

  it('B=2 with different points equals per-image runs, and Q queries equal single-query runs', () => {
    tf.tidy(() => {
      // [B=2, Q=2, N=3, 2]
      const points = pts([
        [[[3, 40], [20, 7], [50, 50]], [[60, 2], [1, 1], [33, 12]]],
        [[[10, 10], [44, 30], [5, 63]], [[0, 0], [63, 63], [31, 32]]],
      ]);
      const labels = tf.tensor3d([
        [[1, 0, 1], [1, -1, -1]],
        [[1, 1, 0], [2, 3, 1]],
      ]);
      for (const multimask of [true, false]) {
        const all = head.predictMasks(emb, points, labels, { multimask });
        const m = multimask ? 3 : 1;
        expect(all.masks.shape).toEqual([2, 2, 16, 16, m]);
        expect(all.iouPredictions.shape).toEqual([2, 2, m]);
        for (let b = 0; b < 2; b++) {
          for (let q = 0; q < 2; q++) {
            const one = head.predictMasks(
              tf.slice(emb, [b, 0, 0, 0], [1, 4, 4, 16]),
              tf.slice(points, [b, q, 0, 0], [1, 1, 3, 2]),
              tf.slice(labels, [b, q, 0], [1, 1, 3]),
              { multimask },
            );
            expect(maxAbsDiff(tf.slice(all.masks, [b, q, 0, 0, 0], [1, 1, 16, 16, m]), one.masks)).toBeLessThan(1e-4);
            expect(maxAbsDiff(tf.slice(all.iouPredictions, [b, q, 0], [1, 1, m]), one.iouPredictions)).toBeLessThan(1e-5);
          }
        }
      }
    });
  });

  it('multimask false returns token 0, true tokens 1..; padding and truncation follow predict_masks', () => {
    tf.tidy(() => {
      const points = pts([[[[3, 40], [20, 7]]], [[[10, 10], [44, 30]]]]);
      const labels = tf.tensor3d([[[1, 0]], [[1, 1]]]);
      const single = head.predictMasks(emb, points, labels, { multimask: false });
      const multi = head.predictMasks(emb, points, labels, { multimask: true });
      // Explicit -1 padding up to max_num_input_points (6) gives the same result.
      const padded = head.predictMasks(
        emb,
        tf.concat([points, tf.fill([2, 1, 4, 2], -1)], 2),
        tf.concat([labels, tf.fill([2, 1, 4], -1)], 2),
        { multimask: true },
      );
      expect(maxAbsDiff(padded.masks, multi.masks)).toBeLessThan(1e-5);
      // Points beyond the budget are dropped.
      const extra = head.predictMasks(
        emb,
        tf.concat([points, tf.fill([2, 1, 4, 2], -1), tf.fill([2, 1, 3, 2], 7)], 2),
        tf.concat([labels, tf.fill([2, 1, 4], -1), tf.fill([2, 1, 3], 1)], 2),
        { multimask: true },
      );
      expect(maxAbsDiff(extra.masks, multi.masks)).toBeLessThan(1e-5);
      // The decoder's own token order: 0 single, 1.. multimask.
      const sparseIn = head.promptEncoder.forward(
        tf.reshape(tf.concat([points, tf.fill([2, 1, 4, 2], -1)], 2), [2, 6, 2]),
        tf.reshape(tf.concat([labels, tf.fill([2, 1, 4], -1)], 2), [2, 6]),
      );
      const raw = head.maskDecoder.predictMasks(emb, head.promptEncoder.densePe(4, 4), sparseIn);
      expect(maxAbsDiff(tf.reshape(single.masks, [2, 16, 16, 1]), tf.slice(raw.masks, [0, 0, 0, 0], [2, 16, 16, 1]))).toBeLessThan(1e-5);
      expect(maxAbsDiff(tf.reshape(multi.masks, [2, 16, 16, 3]), tf.slice(raw.masks, [0, 0, 0, 1], [2, 16, 16, 3]))).toBeLessThan(1e-5);
      expect(maxAbsDiff(tf.reshape(multi.iouPredictions, [2, 3]), tf.slice(raw.iou, [0, 1], [2, 3]))).toBeLessThan(1e-5);
    });
  });

  it('decode() takes points and boxes (two corners labelled 2 and 3)', () => {
    tf.tidy(() => {
      const coords = tf.tensor3d([[[3, 40]], [[10, 10]]]);
      const labels = tf.tensor2d([[1], [1]]);
      const boxes = tf.tensor2d([[1, 2, 30, 40], [5, 6, 60, 61]]);
      const out = head.decode(emb, { points: { coords, labels }, boxes }, true);
      expect(out.masks.shape).toEqual([2, 16, 16, 3]);
      expect(out.iouPredictions.shape).toEqual([2, 3]);
      const ref = head.predictMasks(
        emb,
        tf.tensor4d([[[[3, 40], [1, 2], [30, 40]]], [[[10, 10], [5, 6], [60, 61]]]]),
        tf.tensor3d([[[1, 2, 3]], [[1, 2, 3]]]),
        { multimask: true },
      );
      expect(maxAbsDiff(out.masks, tf.reshape(ref.masks, [2, 16, 16, 3]))).toBeLessThan(1e-5);
      expect(() => head.decode(emb, { masks: tf.zeros([2, 16, 16, 1]) as tf.Tensor4D }, true)).toThrow(PeftError);
    });
  });

  it('runs other head configs (one upscaling stage, three stages, single-mask decoder, non-square grid)', () => {
    const configs: Record<string, any>[] = [
      { ...fixture.config, upscaling_layer_dims: [8], num_multimask_outputs: 1, iou_head_depth: 1, image_embedding_size: [3, 5], input_image_size: [48, 80] },
      { ...fixture.config, embed_dim: 24, transformer_heads: 3, transformer_depth: 1, upscaling_layer_dims: [12, 8, 4], max_num_input_points: 2 },
    ];
    for (const c of configs) {
      seedEverything(1);
      const h = new EfficientSamHead(headOptionsFromFixture(c, 'test'));
      const r = new SegmentationModel();
      h.attach(r);
      tf.tidy(() => {
        const [gh, gw] = c.image_embedding_size as number[];
        const e = tf.randomNormal([2, gh!, gw!, c.embed_dim], 0, 1, 'float32', 4) as tf.Tensor4D;
        const out = h.predictMasks(e, tf.fill([2, 3, 4, 2], 9), tf.fill([2, 3, 4], 1), { multimask: true });
        const up = 2 ** (c.upscaling_layer_dims as number[]).length;
        const m = c.num_multimask_outputs > 1 ? c.num_multimask_outputs : 1;
        expect(out.masks.shape).toEqual([2, 3, gh! * up, gw! * up, m]);
        expect(out.iouPredictions.shape).toEqual([2, 3, m]);
      });
      r.dispose();
    }
  });
});

describe('efficient_sam backbone', () => {
  it('presets tiny and vit_t encode 256 px, vit_s its smallest grid (64 px), to the right shape', () => {
    const reg = registry();
    const vitS = reg.createBackbone('efficient_sam', 'vit_s', { img_size: 256 });
    expect(vitS.model.getModule('image_encoder.blocks.11.attn.qkv')).toMatchObject({ inFeatures: 384, outFeatures: 1152 });
    expect(vitS.model.stateDict().get('image_encoder.pos_embed')!.shape).toEqual([1, 197, 384]);
    vitS.model.dispose();
    // vit_s at 256 px takes ~13 s on the cpu backend; at 64 px the same weights run in a fraction of that
    for (const [preset, size] of [['tiny', 128], ['tiny', 256], ['vit_t', 256], ['vit_s', 64]] as const) {
      const bb = reg.createBackbone('efficient_sam', preset, { img_size: size });
      expect(bb.imageSize).toBe(size);
      const neck = preset === 'tiny' ? 64 : 256;
      tf.tidy(() => {
        const y = bb.encode(tf.randomNormal([1, size, size, 3], 0, 1, 'float32', 1) as tf.Tensor4D);
        expect(y.shape).toEqual([1, size / 16, size / 16, neck]);
      });
      bb.model.dispose();
    }
  });

  it('aliases, pixel statistics, official key names and sites', () => {
    const reg = registry();
    const bb = reg.createBackbone('efficient-sam', 'tiny');
    expect(reg.backbone('efficientsam').id).toBe('efficient_sam');
    expect(bb.pixelMean[0]).toBeCloseTo(123.675, 3);
    expect(bb.pixelStd[2]).toBeCloseTo(57.375, 3);
    const keys = [...bb.model.stateDict().keys()];
    for (const k of [
      'image_encoder.pos_embed',
      'image_encoder.patch_embed.proj.weight',
      'image_encoder.blocks.3.attn.qkv.weight',
      'image_encoder.blocks.0.mlp.fc1.bias',
      'image_encoder.neck.0.weight',
      'image_encoder.neck.3.bias',
      'prompt_encoder.pe_layer.positional_encoding_gaussian_matrix',
      'prompt_encoder.bbox_bottom_right_embeddings.weight',
      'mask_decoder.output_hypernetworks_mlps.0.layers.0.0.weight',
      'mask_decoder.output_hypernetworks_mlps.3.fc.weight',
      'mask_decoder.iou_prediction_head.layers.1.0.weight',
      'mask_decoder.final_output_upscaling_layers.0.1.weight',
      'mask_decoder.final_output_upscaling_layers.1.0.weight',
      'mask_decoder.transformer.layers.1.mlp.layers.0.0.weight',
    ]) {
      expect(keys).toContain(k);
    }
    expect(keys).not.toContain('mask_decoder.iou_prediction_head.layers.2.0.weight');
    const sites = bb.sites();
    expect(sites).toHaveLength(4 * 5);
    expect(sites[0]!.path).toBe('image_encoder.blocks.0.attn.qkv');
    expect(sites.filter((s) => s.kind === 'block').map((s) => s.path)).toEqual([0, 1, 2, 3].map((i) => `image_encoder.blocks.${i}`));
    for (const s of sites) expect(() => bb.model.getModule(s.path)).not.toThrow();
    bb.model.dispose();
  });

  it('decodes a point prompt to [B, 4h, 4w, M] without leaking tensors', () => {
    const bb = registry().createBackbone('efficient_sam', 'tiny');
    const images = tf.randomNormal([2, 128, 128, 3], 0, 1, 'float32', 2) as tf.Tensor4D;
    const coords = tf.tensor3d([[[64, 64], [10, 100]], [[5, 5], [120, 3]]]);
    const labels = tf.tensor2d([[1, 0], [1, 1]]);
    const before = tf.memory().numTensors;
    const emb = bb.encode(images);
    const out = bb.decode(emb, { points: { coords, labels } }, true);
    expect(emb.shape).toEqual([2, 8, 8, 64]);
    expect(out.masks.shape).toEqual([2, 32, 32, 3]);
    expect(out.iouPredictions.shape).toEqual([2, 3]);
    const single = bb.decode(emb, { boxes: tf.tensor2d([[1, 2, 60, 70], [0, 0, 127, 127]]) }, false);
    expect(single.masks.shape).toEqual([2, 32, 32, 1]);
    tf.dispose([emb, out.masks, out.iouPredictions, single.masks, single.iouPredictions]);
    expect(tf.memory().numTensors).toBe(before + 1); // the boxes tensor made inline above
    tf.dispose([images, coords, labels]);
    bb.model.dispose();
  });

  it('bad configs are PeftErrors naming the key', () => {
    const reg = registry();
    const bad: [Record<string, unknown>, string][] = [
      [{ num_heads: 5 }, 'num_heads'],
      [{ img_size: 100 }, 'img_size'],
      [{ neck_dims: [64, 32] }, 'neck_dims'],
      [{ decoder_num_heads: 3 }, 'decoder_num_heads'],
      [{ depth: 0 }, 'depth'],
      [{ iou_head_depth: 1 }, 'iou_head_depth'],
      [{ emb_dim: 8 }, 'emb_dim'],
    ];
    for (const [overrides, key] of bad) {
      let err: unknown;
      try {
        reg.createBackbone('efficient_sam', 'tiny', overrides);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(PeftError);
      expect((err as Error).message).toContain(key);
    }
    expect(() => headOptionsFromFixture({ embed_dim: 16, transformer_heads: 3 }, 'fixture x')).toThrow(/transformer_heads/);
  });
});
