import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { PeftError } from '../errors.js';
import { Module } from '../nn/module.js';
import { Fixture } from '../parity/fixture.js';
import { runFixture } from '../parity/run-parity.js';
import type { Prompts } from '../peft/backbone.js';
import { Registry } from '../registry/registry.js';
import type { Sequential } from '../nn/containers.js';
import { SamHead, defaultSamHeadConfig } from './sam-head.js';
import { samHeadConfigFromFixture, samMaskHeadParity } from './sam-mask-head-parity.js';
import { fixture } from '../../../test/support/fixtures.js';

const FIXTURE = fixture('sam_mask_head_points.json');

class Root extends Module {}

describe('sam.MaskHead parity', () => {
  it('matches sam_mask_head_points (outputs and every grad)', async () => {
    const registry = new Registry();
    registry.registerParityKind(samMaskHeadParity);
    const r = await runFixture(FIXTURE, registry);
    console.log(`sam_mask_head_points: ok=${r.ok} maxAbs=${r.maxAbs.toExponential(2)} checks=${r.checks.length}`);
    expect(r.error).toBeUndefined();
    expect(r.checks.filter((c) => !c.ok)).toEqual([]);
    expect(r.checks.length).toBe(r.checks.filter((c) => c.key.startsWith('grad/')).length + 2);
    expect(r.ok).toBe(true);
  });
});

describe('SamHead', () => {
  // The fixture's weights (embed 32, 8×8 embeddings, 128 px input, 2 heads) and image embeddings.
  let head: SamHead;
  let root: Root;
  let emb: tf.Tensor4D;
  const boxes = () => tf.tensor2d([[10.5, 20, 90, 100], [0, 5, 127, 60]]);
  const points = () => ({
    coords: tf.tensor3d([[[30, 40], [70, 80], [0, 0]], [[100, 10], [50, 50], [20, 120]]]),
    labels: tf.tensor2d([[1, 0, -1], [0, 1, 1]]),
  });
  const maskInput = () =>
    tf.tidy(() => {
      const v = new Float32Array(2 * 32 * 32);
      for (let b = 0; b < 2; b++) for (let i = 0; i < 32; i++) for (let j = 0; j < 32; j++) v[(b * 32 + i) * 32 + j] = 3 * Math.sin(0.37 * i + 0.11 * j + b);
      return tf.tensor4d(v, [2, 32, 32, 1]);
    });

  beforeAll(() => {
    const fx = new Fixture(FIXTURE);
    head = new SamHead(samHeadConfigFromFixture(fx.config));
    root = new Root();
    head.attach(root);
    const params = fx.group('param/');
    root.loadStateDict(params);
    tf.dispose([...params.values()]);
    emb = tf.tidy(() => tf.transpose(fx.tensor('input/image_embeddings'), [0, 2, 3, 1]) as tf.Tensor4D);
  });

  afterAll(() => {
    root.dispose();
    emb.dispose();
  });

  function decode(prompts: Prompts, multimask: boolean, e: tf.Tensor4D = emb) {
    const out = head.decode(e, prompts, multimask);
    const r = {
      masks: out.masks,
      iou: out.iouPredictions.arraySync(),
      sum: (tf.tidy(() => tf.sum(out.masks, [1, 2])) as tf.Tensor2D).arraySync(),
      px: (tf.tidy(() => tf.reshape(tf.slice(out.masks, [0, 5, 7, 0], [-1, 1, 1, -1]), [out.masks.shape[0], -1])) as tf.Tensor2D).arraySync(),
    };
    out.iouPredictions.dispose();
    return r;
  }

  function expectClose(actual: number[][], expected: number[][], tol: number) {
    expect(actual.length).toBe(expected.length);
    actual.forEach((row, i) => row.forEach((v, j) => expect(Math.abs(v - expected[i]![j]!)).toBeLessThan(tol)));
  }

  // Expected values from a NumPy transliteration of segment-anything's
  // prompt_encoder.py / mask_decoder.py / transformer.py with these weights
  // (it reproduces the points fixture to 1e-7).
  it('boxes prompt, multimask: shapes [B,4h,4w,3] and official values', () => {
    const p = { boxes: boxes() };
    const r = decode(p, true);
    expect(r.masks.shape).toEqual([2, 32, 32, 3]);
    expectClose(r.iou, [[-0.426437, 0.016577, -0.026328], [-0.437967, 0.014871, -0.014524]], 1e-4);
    expectClose(r.sum, [[-1.23758, 6.788, 14.17189], [-0.19538, 5.85247, 13.56551]], 1e-3);
    expectClose(r.px, [[-0.019793, 0.031415, 0.009428], [-0.015429, 0.026224, 0.009679]], 1e-4);
    tf.dispose([r.masks, p.boxes]);
  });

  it('points + boxes + dense mask together, single mask: official values', () => {
    const p: Prompts = { points: points(), boxes: boxes(), masks: maskInput() };
    const r = decode(p, false);
    expect(r.masks.shape).toEqual([2, 32, 32, 1]);
    expectClose(r.iou, [[-0.236588], [-0.22931]], 1e-4);
    expectClose(r.sum, [[61.96246], [62.08455]], 2e-3);
    expectClose(r.px, [[0.08738], [0.085176]], 1e-4);
    tf.dispose([r.masks, p.points!.coords, p.points!.labels, p.boxes!, p.masks!]);
  });

  it('points (labels -1/0/1, padding point) + dense mask, multimask: official values', () => {
    const p: Prompts = { points: points(), masks: maskInput() };
    const r = decode(p, true);
    expect(r.masks.shape).toEqual([2, 32, 32, 3]);
    expectClose(r.iou, [[-0.400875, 0.020063, -0.023634], [-0.404877, 0.015273, -0.022419]], 1e-4);
    expectClose(r.sum, [[1.52334, 13.53282, 15.05316], [1.1991, 13.46346, 14.20653]], 1e-3);
    expectClose(r.px, [[-0.019138, 0.036301, 0.010723], [-0.016817, 0.033116, 0.01075]], 1e-4);
    tf.dispose([r.masks, p.points!.coords, p.points!.labels, p.masks!]);
  });

  it('sparse tokens: points get a padding point only without boxes; boxes give two corners', () => {
    const pts = points();
    const bx = boxes();
    const count = (p: Prompts) => {
      const { sparse, dense } = head.promptEncoder.forward(p, 2, [8, 8]);
      const n = sparse?.shape[1] ?? 0;
      dense.dispose();
      sparse?.dispose();
      return n;
    };
    expect(count({ points: pts })).toBe(4);
    expect(count({ boxes: bx })).toBe(2);
    expect(count({ points: pts, boxes: bx })).toBe(5);
    expect(count({})).toBe(0);
    const none = decode({}, true);
    expect(none.masks.shape).toEqual([2, 32, 32, 3]);
    none.masks.dispose();
    tf.dispose([pts.coords, pts.labels, bx]);
  });

  it('the mask prompt runs through mask_downscaling (a stack that outputs no_mask_embed reproduces the no-mask result)', () => {
    const cfg = defaultSamHeadConfig(32, 128, 16);
    const h2 = new SamHead({ ...cfg, transformerHeads: 2, transformerMlpDim: 64 });
    const r2 = new Root();
    h2.attach(r2);
    const ds = r2.getModule('prompt_encoder.mask_downscaling') as Sequential;
    const last = ds.at(6);
    last.param('weight').assign(tf.zerosLike(last.param('weight').variable));
    last.param('bias').assign(tf.reshape(r2.getModule('prompt_encoder.no_mask_embed').param('weight').variable, [32]));
    const pts = points();
    const m = maskInput();
    const a = h2.decode(emb, { points: pts, masks: m }, true);
    const b = h2.decode(emb, { points: pts }, true);
    expect(tf.max(tf.abs(tf.sub(a.masks, b.masks))).arraySync()).toBeLessThan(1e-5);
    tf.dispose([a.masks, a.iouPredictions, b.masks, b.iouPredictions, pts.coords, pts.labels, m]);
    r2.dispose();
  });

  it('B=2 with different prompts gives, per image, the result of that image alone', () => {
    const p: Prompts = { points: points(), boxes: boxes(), masks: maskInput() };
    const both = head.decode(emb, p, true);
    for (let b = 0; b < 2; b++) {
      const one = tf.tidy(() => {
        const s = <T extends tf.Tensor>(t: T): T => tf.slice(t, b, 1) as T;
        const o = head.decode(s(emb), { points: { coords: s(p.points!.coords), labels: s(p.points!.labels) }, boxes: s(p.boxes!), masks: s(p.masks!) }, true);
        return [
          tf.max(tf.abs(tf.sub(o.masks, tf.slice(both.masks, b, 1)))),
          tf.max(tf.abs(tf.sub(o.iouPredictions, tf.slice(both.iouPredictions, b, 1)))),
        ];
      });
      expect((one[0]!.arraySync() as number)).toBeLessThan(1e-5);
      expect((one[1]!.arraySync() as number)).toBeLessThan(1e-5);
      tf.dispose(one);
    }
    tf.dispose([both.masks, both.iouPredictions, p.points!.coords, p.points!.labels, p.boxes!, p.masks!]);
  });

  it('decode leaks no tensor inside tf.tidy and returns exactly its two outputs', () => {
    const p: Prompts = { points: points(), boxes: boxes(), masks: maskInput() };
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      head.decode(emb, p, true);
      head.decode(emb, { points: p.points }, false);
    });
    expect(tf.memory().numTensors).toBe(before);
    const out = head.decode(emb, p, false);
    expect(tf.memory().numTensors).toBe(before + 2);
    tf.dispose([out.masks, out.iouPredictions, p.points!.coords, p.points!.labels, p.boxes!, p.masks!]);
  });

  it('rejects prompts that do not fit the batch with a one-line PeftError', () => {
    const bx = tf.zeros([3, 4]) as tf.Tensor2D;
    expect(() => head.decode(emb, { boxes: bx }, false)).toThrow(PeftError);
    const m = tf.zeros([2, 16, 16, 1]) as tf.Tensor4D;
    expect(() => head.decode(emb, { masks: m }, false)).toThrow(/mask prompts must be \[2, 32, 32, 1\]/);
    tf.dispose([bx, m]);
  });

  it('registers prompt_encoder.* and mask_decoder.* under the official names', () => {
    const names = new Set([...root.namedTensors()].map(([n]) => n));
    const fx = new Fixture(FIXTURE);
    expect(names).toEqual(new Set(fx.keys('param/').map((k) => k.slice('param/'.length))));
  });
});

describe('defaultSamHeadConfig', () => {
  it('gives the official SAM sizes for 256 channels, 1024 px, patch 16', () => {
    expect(defaultSamHeadConfig(256, 1024, 16)).toEqual({
      embedDim: 256,
      imageEmbeddingSize: [64, 64],
      inputImageSize: [1024, 1024],
      maskInChans: 16,
      numMultimaskOutputs: 3,
      transformerDepth: 2,
      transformerMlpDim: 2048,
      transformerHeads: 8,
      iouHeadDepth: 3,
      iouHeadHiddenDim: 256,
    });
  });

  it('scales narrower heads and builds them', () => {
    for (const dim of [8, 16, 24, 32, 48, 64, 96, 128]) {
      const c = defaultSamHeadConfig(dim, 64, 8);
      expect(c.transformerMlpDim).toBe(8 * dim);
      expect(c.iouHeadHiddenDim).toBe(dim);
      expect(c.transformerHeads).toBeLessThanOrEqual(8);
      expect((dim / 2) % c.transformerHeads).toBe(0);
      const h = new SamHead(c);
      h.dispose();
    }
    expect(defaultSamHeadConfig(64, 64, 8).transformerHeads).toBe(4);
    expect(defaultSamHeadConfig(128, 64, 8).transformerHeads).toBe(8);
    expect(() => defaultSamHeadConfig(30, 64, 8)).toThrow(PeftError);
  });
});
