import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  Fixture,
  Linear,
  Module,
  PeftError,
  Registry,
  checkpointToTensors,
  describeConfig,
  loadCheckpoint,
  selectLinearSites,
  seedEverything,
  tf,
  valueAndGrads,
  z,
  type BlockSite,
  type InjectionSite,
  type LayerInjector,
  type LinearLike,
} from '../../src/index.js';
import { attentionBiasIdxs } from './attention.js';
import { TinyVitBlock } from './block.js';
import { MOBILE_SAM_PRESETS, encoderPatchSize, parseTinyVitConfig, tinyVitSchema } from './config.js';
import { register } from './index.js';
import { TinyViT } from './model.js';
import { applyTinyVitMod } from './parity.js';
import { FIXTURES } from '../../test/support/fixtures.js';



/** The encoder config of the tinyvit fixture (the same architecture as mobile_sam_tiny's checkpoint). */
function fixtureEncoderConfig() {
  const { mod: _m, lora_rank: _r, batchnorm: _b, ...rest } = JSON.parse(readFileSync(join(FIXTURES, 'tinyvit_plain.json'), 'utf8')).config;
  return parseTinyVitConfig(rest);
}

async function registry(): Promise<Registry> {
  const r = new Registry();
  await r.load('mobile_sam', register);
  return r;
}

function peftError(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(PeftError);
    return (err as Error).message;
  }
  throw new Error('expected a PeftError');
}

describe('TinyViT encoder', () => {
  it('loads mobile_sam_tiny .pt and .safetensors strictly (prefix image_encoder.) and both give the same output', () => {
    const cfg = fixtureEncoderConfig();
    const outs: tf.Tensor[] = [];
    const x = tf.randomUniform([1, 64, 64, 3], -1, 1, 'float32', 7) as tf.Tensor4D;
    for (const file of ['mobile_sam_tiny.pt', 'mobile_sam_tiny.safetensors']) {
      const enc = new TinyViT(cfg);
      const state = checkpointToTensors(loadCheckpoint(join(FIXTURES, file)), { prefix: 'image_encoder.' });
      const report = enc.loadStateDict(state, { strict: true, source: file });
      expect(report.loaded).toBe(file.endsWith('.pt') ? 132 + 17 : 132);
      tf.dispose([...state.values()]);
      outs.push(enc.forward(x));
      enc.dispose();
    }
    expect(outs[0]!.shape).toEqual([1, 4, 4, 256]);
    expect(tf.max(tf.abs(tf.sub(outs[0]!, outs[1]!))).dataSync()[0]).toBe(0);
    tf.dispose([...outs, x]);
  });

  it('a forward leaks no tensor', () => {
    const enc = new TinyViT(fixtureEncoderConfig());
    const x = tf.zeros([1, 40, 56, 3]) as tf.Tensor4D;
    const before = tf.memory().numTensors;
    const y = enc.forward(x);
    expect(y.shape).toEqual([1, 3, 4, 256]);
    y.dispose();
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
    enc.dispose();
  });

  it('an official checkpoint\'s classifier head is accepted but optional', () => {
    const enc = new TinyViT({ ...fixtureEncoderConfig(), num_classes: 10 });
    const fx = new Fixture(join(FIXTURES, 'tinyvit_plain.json'));
    const params = fx.group('param/');
    expect(enc.loadStateDict(params).missing).toEqual([]);
    params.set('head.weight', tf.ones([10, 320]));
    params.set('head.bias', tf.ones([10]));
    expect(enc.loadStateDict(params).loaded).toBe(params.size);
    tf.dispose([...params.values()]);
    enc.dispose();
  });

  it('attention_bias_idxs: offsets numbered as TinyViT (|dy| * w + |dx| for a square window)', () => {
    for (const ws of [1, 2, 3, 7]) {
      const { idxs, offsets } = attentionBiasIdxs(ws, ws);
      expect(offsets).toBe(ws * ws);
      const n = ws * ws;
      for (let a = 0; a < n; a++) {
        for (let b = 0; b < n; b++) {
          const dy = Math.abs(Math.floor(a / ws) - Math.floor(b / ws));
          const dx = Math.abs((a % ws) - (b % ws));
          expect(idxs[a * n + b]).toBe(dy * ws + dx);
        }
      }
    }
  });

  it('one-window grid: attention on all tokens, then local_conv and the MLP; padded grids keep their shape', () => {
    seedEverything(3);
    const block = new TinyVitBlock({ dim: 8, numHeads: 2, windowSize: 3, mlpRatio: 2, localConvSize: 3 });
    tf.tidy(() => block.attn.param('attention_biases').assign(tf.randomNormal([2, 9], 0, 1, 'float32', 1)));
    const x = tf.randomNormal([2, 3, 3, 8], 0, 1, 'float32', 2) as tf.Tensor4D;
    const got = block.forward(x);
    const want = tf.tidy(() => {
      const a = tf.reshape(block.attn.forward(tf.reshape(x, [2, 9, 8]) as tf.Tensor3D), [2, 3, 3, 8]);
      const y = (block.child('local_conv') as Module & { forward(t: tf.Tensor): tf.Tensor }).forward(tf.add(x, a));
      return tf.add(y, block.mlp.forward(y));
    });
    expect(tf.max(tf.abs(tf.sub(got, want))).dataSync()[0]).toBeLessThan(1e-6);
    // 5x4 grid, window 3: padded to 6x6 (4 windows), cropped back
    const odd = block.forward(tf.randomNormal([1, 5, 4, 8], 0, 1, 'float32', 4) as tf.Tensor4D);
    expect(odd.shape).toEqual([1, 5, 4, 8]);
    expect(Number.isFinite(tf.sum(odd).dataSync()[0]!)).toBe(true);
    tf.dispose([got, want, odd, x]);
    block.dispose();
  });

  it('config validation: clear PeftErrors naming the key', () => {
    expect(peftError(() => parseTinyVitConfig({ num_heads: [2, 4, 7, 10] }))).toMatch(/'num_heads\.2'.*not divisible/);
    expect(peftError(() => parseTinyVitConfig({ depths: [2, 2, 6] }))).toMatch(/'depths'.*3 entries.*4 stages/);
    expect(peftError(() => parseTinyVitConfig({ local_conv_size: 4 }))).toMatch(/'local_conv_size'.*odd/);
    expect(peftError(() => parseTinyVitConfig({ window: 7 }))).toMatch(/unknown key\(s\) window/);
    expect(peftError(() => parseTinyVitConfig({ embed_dims: [64, -1, 160, 320] }))).toMatch(/'embed_dims\.1'/);
    const keys = describeConfig(tinyVitSchema);
    expect(keys.find((k) => k.key === 'window_sizes')).toMatchObject({ type: 'integer[]', default: [7, 7, 14, 7] });
    expect(keys.every((k) => k.description)).toBe(true);
  });

  it('patch size follows the merging strides (16 for MobileSAM widths)', () => {
    expect(encoderPatchSize(parseTinyVitConfig({}))).toBe(16);
    expect(encoderPatchSize(parseTinyVitConfig(MOBILE_SAM_PRESETS.tiny))).toBe(16);
    expect(encoderPatchSize(parseTinyVitConfig({ embed_dims: [8, 16, 32, 64], num_heads: [1, 1, 1, 1] }))).toBe(32);
  });
});

describe('mobile_sam backbone', () => {
  it('tiny_vit preset at 256 px: encoder output [1, 16, 16, 256]; alias mobilesam', async () => {
    const reg = await registry();
    const bb = reg.createBackbone('mobilesam', 'tiny_vit', { img_size: 256 });
    expect(bb.id).toBe('mobile_sam');
    const x = tf.zeros([1, 256, 256, 3]) as tf.Tensor4D;
    const y = bb.encode(x);
    expect(y.shape).toEqual([1, 16, 16, 256]);
    expect(bb.model.namedParameters().some(([k]) => k === 'image_encoder.layers.2.blocks.5.attn.attention_biases')).toBe(true);
    tf.dispose([x, y]);
    bb.model.dispose();
  });

  it('tiny preset at 128 px: encode, decode a point, and gradients reach a stage-1 qkv weight', async () => {
    const reg = await registry();
    const bb = reg.createBackbone('mobile_sam', 'tiny');
    expect(bb.imageSize).toBe(128);
    const x = tf.randomNormal([1, 128, 128, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
    const emb = bb.encode(x);
    expect(emb.shape).toEqual([1, 8, 8, 64]);
    const prompts = { points: { coords: tf.tensor3d([[[64, 64]]]), labels: tf.tensor2d([[1]]) } };
    const out = bb.decode(emb, prompts, false);
    expect(out.masks.shape).toEqual([1, 32, 32, 1]);
    const w = bb.model.getModule('image_encoder.layers.1.blocks.0.attn.qkv').param('weight').variable;
    const { value, grads } = valueAndGrads(() => tf.sum(tf.square(bb.encode(x))), [w]);
    expect(tf.sum(tf.abs(grads[0]!)).dataSync()[0]).toBeGreaterThan(0);
    tf.dispose([x, emb, out.masks, out.iouPredictions, prompts.points.coords, prompts.points.labels, value, ...grads]);
    bb.model.dispose();
  });

  it('sites: qkv (groups q,k,v), proj, fc1, fc2 and the block of every attention block', async () => {
    const reg = await registry();
    const bb = reg.createBackbone('mobile_sam', 'tiny_vit', { img_size: 256 });
    const sites = bb.sites();
    expect(sites.length).toBe((2 + 6 + 2) * 5);
    expect(sites.slice(0, 5)).toEqual([
      { kind: 'linear', path: 'image_encoder.layers.1.blocks.0.attn.qkv', role: 'attn.qkv', in: 128, out: 384, groups: ['q', 'k', 'v'], block: 0 },
      { kind: 'linear', path: 'image_encoder.layers.1.blocks.0.attn.proj', role: 'attn.proj', in: 128, out: 128, block: 0 },
      { kind: 'linear', path: 'image_encoder.layers.1.blocks.0.mlp.fc1', role: 'mlp.fc1', in: 128, out: 512, block: 0 },
      { kind: 'linear', path: 'image_encoder.layers.1.blocks.0.mlp.fc2', role: 'mlp.fc2', in: 512, out: 128, block: 0 },
      { kind: 'block', path: 'image_encoder.layers.1.blocks.0', role: 'block', dim: 128, hooks: ['post-attn', 'mlp-parallel'], block: 0 },
    ]);
    for (const s of sites) {
      const m = bb.model.getModule(s.path);
      if (s.kind === 'linear') {
        expect(m).toBeInstanceOf(Linear);
        expect([(m as Linear).inFeatures, (m as Linear).outFeatures]).toEqual([s.in, s.out]);
      } else {
        expect(m).toBeInstanceOf(TinyVitBlock);
        expect((m as TinyVitBlock).dim).toBe(s.dim);
      }
    }
    expect(sites.at(-1)!.path).toBe('image_encoder.layers.3.blocks.1');
    bb.model.dispose();
  });
});

// --- stand-ins for the method plugins (written elsewhere): enough to check the wiring
class Tracing extends Module implements LinearLike {
  calls = 0;
  constructor(readonly base: LinearLike) {
    super();
    this.registerModule('base', base);
  }
  get inFeatures() {
    return this.base.inFeatures;
  }
  get outFeatures() {
    return this.base.outFeatures;
  }
  forward(x: tf.Tensor): tf.Tensor {
    this.calls++;
    return this.base.forward(x);
  }
}

class Hook extends Module {
  shapes: number[][] = [];
  constructor(readonly f: (x: tf.Tensor) => tf.Tensor) {
    super();
  }
  forward(x: tf.Tensor): tf.Tensor {
    this.shapes.push(x.shape);
    return this.f(x);
  }
}

function stubRegistry(base: Registry, log: { id: string; groups?: boolean[]; path: string }[]): Registry {
  const linearMethod = (id: string) => ({
    id,
    summary: 'stub',
    // every key needs a default (registration checks it); the variants always pass targets
    schema: z.object({ targets: z.array(z.string()).default(['attn.qkv']) }).passthrough(),
    create: (c: { targets: string[] }): LayerInjector => {
      let chosen: ReturnType<typeof selectLinearSites> = [];
      return {
        id,
        config: c,
        select(sites: InjectionSite[]) {
          chosen = selectLinearSites(sites, c.targets, id);
          return chosen.map((s) => s.site);
        },
        inject(model, site) {
          log.push({ id, path: site.path, groups: chosen.find((s) => s.site.path === site.path)?.groups });
          model.setModule(site.path, new Tracing(model.getModule(site.path) as LinearLike));
        },
        parameterCount: () => 0,
      };
    },
  });
  base.registerMethod(linearMethod('lora'));
  base.registerMethod(linearMethod('adalora'));
  base.registerMethod({
    id: 'adapter',
    summary: 'stub',
    schema: z.object({ mlp_ratio: z.number().default(0.25) }),
    create: (c): LayerInjector => ({
      id: 'adapter',
      config: c,
      select: (sites) => sites.filter((s): s is BlockSite => s.kind === 'block'),
      inject(model, site) {
        log.push({ id: 'adapter', path: site.path });
        const block = model.getModule(site.path) as TinyVitBlock;
        block.attachHook('post-attn', 'Space_Adapter', new Hook((x) => x));
        block.attachHook('mlp-parallel', 'MLP_Adapter', new Hook((x) => tf.zerosLike(x)), 0.5);
      },
      parameterCount: () => 0,
    }),
  });
  return base;
}

describe('PEFT variants compose through the registry (stand-in methods)', () => {
  const cfg = () => ({ ...fixtureEncoderConfig(), window_sizes: [2, 2, 4, 4] }); // stages 2 and 3: one window (4x4 grid)

  it('sam_lora: q,v thirds of qkv and both MLP linears, looked up at forward time', async () => {
    const log: { id: string; groups?: boolean[]; path: string }[] = [];
    const reg = stubRegistry(await registry(), log);
    const enc = new TinyViT(parseTinyVitConfig(cfg()));
    applyTinyVitMod(reg, 'sam_lora', 4, enc);
    expect(log.map((l) => l.path).sort()).toEqual(
      [1, 2, 3].flatMap((i) => [`layers.${i}.blocks.0.attn.qkv`, `layers.${i}.blocks.0.mlp.fc1`, `layers.${i}.blocks.0.mlp.fc2`]),
    );
    expect(log[0]!.groups).toEqual([true, false, true]);
    const y = enc.forward(tf.zeros([1, 64, 64, 3]) as tf.Tensor4D);
    for (const l of log) expect((enc.getModule(l.path) as Tracing).calls, l.path).toBe(1);
    y.dispose();
    enc.dispose();
  });

  it('sam_adalora: qkv, proj, fc1, fc2', async () => {
    const log: { id: string; path: string }[] = [];
    const reg = stubRegistry(await registry(), log);
    const enc = new TinyViT(parseTinyVitConfig(cfg()));
    applyTinyVitMod(reg, 'sam_adalora', 4, enc);
    expect(log.length).toBe(3 * 4);
    expect(log.filter((l) => l.path.endsWith('attn.proj')).length).toBe(3);
    enc.dispose();
  });

  it('sam_adpt: post-attn only on the windowed path (before the reverse), mlp-parallel on the un-normalised x', async () => {
    const log: { id: string; path: string }[] = [];
    const reg = stubRegistry(await registry(), log);
    const fx = new Fixture(join(FIXTURES, 'tinyvit_plain.json'));
    const params = fx.group('param/');
    const plain = new TinyViT(parseTinyVitConfig(cfg()));
    const adapted = new TinyViT(parseTinyVitConfig(cfg()));
    plain.loadStateDict(params, { strict: false });
    applyTinyVitMod(reg, 'sam_adpt', 4, adapted);
    adapted.loadStateDict(params, { strict: false });
    expect(log.map((l) => l.path)).toEqual(['layers.1.blocks.0', 'layers.2.blocks.0', 'layers.3.blocks.0']);
    const x = fx.tensor('input/x');
    const xl = tf.transpose(x, [0, 2, 3, 1]) as tf.Tensor4D;
    const a = plain.forward(xl);
    const b = adapted.forward(xl);
    // identity space adapter and zero MLP adapter leave the output unchanged
    expect(tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]).toBe(0);
    const hook = (i: number, name: string) => enc(adapted, i).child(name) as Hook;
    // stage 1: 8x8 grid, window 2 -> 16 windows of 4 tokens, width 32
    expect(hook(1, 'Space_Adapter').shapes).toEqual([[16, 4, 32]]);
    // stages 2 and 3: the grid (4x4) is one window: no space adapter
    expect(hook(2, 'Space_Adapter').shapes).toEqual([]);
    expect(hook(3, 'Space_Adapter').shapes).toEqual([]);
    expect(hook(3, 'MLP_Adapter').shapes).toEqual([[1, 4, 4, 320]]);
    expect(adapted.namedParameters().some(([k]) => k.startsWith('layers.1.blocks.0.Space_Adapter'))).toBe(false); // stand-in has none
    tf.dispose([...params.values(), x, xl, a, b]);
    plain.dispose();
    adapted.dispose();
  });
});

function enc(model: TinyViT, stage: number): TinyVitBlock {
  return model.getModule(`layers.${stage}.blocks.0`) as TinyVitBlock;
}
