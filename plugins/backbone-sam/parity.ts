// Parity kinds `sam.Block` and `sam.ImageEncoderViT` (see the fixtures'
// README). The PEFT variants are not implemented here: they compose the
// registered `lora` and `adapter` methods with this backbone's own sites, the
// same way `compose()` does for a whole model.
import {
  PeftError,
  loadParamsExcept,
  dotLoss,
  gradsByName,
  tf,
  type Fixture,
  type InjectionSite,
  type Module,
  type ParityKind,
  type ParityOutput,
  type Registry,
} from '../../src/index.js';
import { SamBlock } from './block.js';
import { parseSamConfig } from './config.js';
import { msaKeyToOfficial, officialKeyToMsa, renameKeys } from './keys.js';
import { ImageEncoderViT } from './model.js';
import { samBlockSites } from './sites.js';

/** The reference's block variants. */
export type SamMod = 'none' | 'sam_lora' | 'sam_adpt';

const MODS: SamMod[] = ['none', 'sam_lora', 'sam_adpt'];

function modOf(config: Record<string, unknown>, kind: string): SamMod {
  const mod = (config.mod ?? 'none') as SamMod;
  if (!MODS.includes(mod)) throw new PeftError(`${kind}: unknown mod '${String(mod)}' (known: ${MODS.join(', ')})`);
  return mod;
}

/**
 * Injects the method that reproduces `mod` at `sites` of `model`: `sam_lora`
 * = LoRA (r = rank, alpha 1) on q and v of qkv and on both MLP linears;
 * `sam_adpt` = Medical-SAM-Adapter's Space and MLP adapters (mlp_ratio 0.25).
 */
export function applyMod(registry: Registry, mod: SamMod, rank: number, model: Module, sites: InjectionSite[]): void {
  if (mod === 'none') return;
  const method =
    mod === 'sam_lora'
      ? registry.createMethod('lora', { r: rank, alpha: 1, targets: ['attn.qkv[q,v]', 'mlp.fc1', 'mlp.fc2'] })
      : registry.createMethod('adapter', { mlp_ratio: 0.25 });
  for (const site of method.select(sites)) method.inject(model, site);
}

/** Parameters the reference holds but never uses (its 3-D depth adapter). */
const UNUSED = /(^|\.)Depth_Adapter\./;

/** Loads a fixture's `param/` state dict (MSA names), tolerating only the reference's unused keys. */
function loadParams(model: Module, fixture: Fixture): void {
  loadParamsExcept(model, renameKeys(fixture.group('param/'), msaKeyToOfficial), fixture.name, UNUSED);
}

/** Runs `forward` with the fixture's `input/upstream` loss; grads (MSA names) only when the fixture holds some. */
function forwardAndGrads(model: Module, fixture: Fixture, forward: () => tf.Tensor): ParityOutput {
  const tensors = new Map<string, tf.Tensor>();
  if (fixture.keys('grad/').length === 0) {
    tensors.set('output/y', forward());
    return { tensors };
  }
  const upstream = fixture.tensor('input/upstream');
  let y: tf.Tensor | undefined;
  const { value, grads } = gradsByName(model, () => {
    y = tf.keep(forward());
    return dotLoss(y, upstream);
  });
  value.dispose();
  tensors.set('output/y', y!);
  for (const [key, g] of grads) tensors.set(`grad/${officialKeyToMsa(key.slice('grad/'.length))}`, g);
  return { tensors };
}

export const samBlockKind: ParityKind = {
  kind: 'sam.Block',
  summary: 'SAM ViT block (windowed / global, decomposed rel-pos), plain or with the lora / adapter methods',
  run(fixture, { registry }) {
    const c = fixture.config;
    const mod = modOf(c, 'sam.Block');
    const windowSize: number = c.window_size ?? 0;
    const block = new SamBlock({
      dim: c.dim,
      numHeads: c.num_heads,
      mlpRatio: c.mlp_ratio,
      qkvBias: c.qkv_bias,
      useRelPos: c.use_rel_pos,
      windowSize,
      inputSize: c.input_size,
      // The reference's LoRA block sizes global tables for a 64x64 grid.
      relPosSize: mod === 'sam_lora' && windowSize === 0 ? [64, 64] : undefined,
      layerNormEps: c.layer_norm_eps,
      padBeforeNorm: mod === 'sam_adpt',
    });
    try {
      applyMod(registry, mod, c.lora_rank, block, samBlockSites('', block.dim, block.mlpDim));
      loadParams(block, fixture);
      const x = fixture.tensor('input/x') as tf.Tensor4D;
      return forwardAndGrads(block, fixture, () => block.forward(x));
    } finally {
      block.dispose();
    }
  },
};

export const samEncoderKind: ParityKind = {
  kind: 'sam.ImageEncoderViT',
  summary: 'SAM ViT image encoder: patch embedding, resized pos_embed, blocks, neck',
  run(fixture, { registry }) {
    const c = fixture.config;
    const mod = modOf(c, 'sam.ImageEncoderViT');
    const config = parseSamConfig({
      img_size: c.img_size,
      patch_size: c.patch_size,
      in_chans: c.in_chans ?? 3,
      embed_dim: c.embed_dim,
      depth: c.depth,
      num_heads: c.num_heads,
      mlp_ratio: c.mlp_ratio,
      out_chans: c.out_chans,
      qkv_bias: c.qkv_bias ?? true,
      use_rel_pos: c.use_rel_pos,
      window_size: c.window_size,
      global_attn_indexes: c.global_attn_indexes,
      layer_norm_eps: c.layer_norm_eps,
      neck_layer_norm_eps: c.neck_layer_norm_eps ?? 1e-6,
      pos_embed_grid: c.pos_embed_grid,
      // Global tables: the token grid, but 64x64 in the reference's LoRA variant.
      rel_pos_grid: mod === 'sam_lora' ? 64 : c.img_size / c.patch_size,
    });
    const encoder = new ImageEncoderViT(config, { padBeforeNorm: mod === 'sam_adpt' });
    try {
      applyMod(registry, mod, c.lora_rank, encoder, encoder.sites());
      loadParams(encoder, fixture);
      // The reference is channels-first: [B, C, H, W] in and out.
      const x = tf.transpose(fixture.tensor('input/x'), [0, 2, 3, 1]) as tf.Tensor4D;
      return forwardAndGrads(encoder, fixture, () => tf.tidy(() => tf.transpose(encoder.forward(x), [0, 3, 1, 2])));
    } finally {
      encoder.dispose();
    }
  },
};
