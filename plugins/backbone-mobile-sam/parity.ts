// Parity kind `tinyvit.TinyViT` (see the fixtures' README): MobileSAM's image
// encoder, plain or with Medical-SAM-Adapter's PEFT variants. The variants are
// not implemented here: they compose the registered `lora`, `adapter` and
// `adalora` methods with this encoder's own sites, as `compose()` does.
import {
  PeftError,
  loadParamsExcept,
  dotLoss,
  gradsByName,
  tf,
  type Fixture,
  type Module,
  type ParityKind,
  type ParityOutput,
  type Registry,
} from '../../src/index.js';
import { parseTinyVitConfig } from './config.js';
import { TinyViT } from './model.js';

/** The reference's block variants. */
export type TinyVitMod = 'none' | 'sam_lora' | 'sam_adpt' | 'sam_adalora';

const MODS: TinyVitMod[] = ['none', 'sam_lora', 'sam_adpt', 'sam_adalora'];

/** Keys of the parity config that describe the variant, not the encoder. */
const VARIANT_KEYS = ['mod', 'lora_rank', 'batchnorm'];

/**
 * Injects into `encoder` the method that reproduces `mod`: `sam_lora` = LoRA
 * (r = rank, alpha 1) on the q and v thirds of qkv and on both MLP linears;
 * `sam_adpt` = Space and MLP adapters (mlp_ratio 0.25); `sam_adalora` =
 * AdaLoRA (r = rank) on qkv, proj, fc1, fc2.
 */
export function applyTinyVitMod(registry: Registry, mod: TinyVitMod, rank: number, encoder: TinyViT): void {
  if (mod === 'none') return;
  let method;
  if (mod === 'sam_lora') {
    method = registry.createMethod('lora', { r: rank, alpha: 1, targets: ['attn.qkv[q,v]', 'mlp.fc1', 'mlp.fc2'] });
  } else if (mod === 'sam_adpt') {
    method = registry.createMethod('adapter', { mlp_ratio: 0.25 });
  } else {
    method = registry.createMethod('adalora', {
      init_r: rank,
      target_r: rank,
      alpha: 1,
      targets: ['attn.qkv', 'attn.proj', 'mlp.fc1', 'mlp.fc2'],
    });
  }
  for (const site of method.select(encoder.sites())) method.inject(encoder, site);
}

/** Parameters the reference holds but never uses (its 3-D depth adapter). */
const UNUSED = /(^|\.)Depth_Adapter\./;

function loadParams(model: Module, fixture: Fixture): void {
  loadParamsExcept(model, fixture.group('param/'), fixture.name, UNUSED);
}

export const tinyVitKind: ParityKind = {
  kind: 'tinyvit.TinyViT',
  summary: "MobileSAM's TinyViT image encoder with its neck, plain or with the lora / adapter / adalora methods",
  run(fixture, { registry }): ParityOutput {
    const c = fixture.config;
    const mod = (c.mod ?? 'none') as TinyVitMod;
    if (!MODS.includes(mod)) throw new PeftError(`${fixture.name}: unknown mod '${String(mod)}' (known: ${MODS.join(', ')})`);
    if ((c.batchnorm ?? 'eval') !== 'eval') throw new PeftError(`${fixture.name}: only batchnorm 'eval' (running statistics) is supported`);
    const encoderConfig = Object.fromEntries(Object.entries(c).filter(([k]) => !VARIANT_KEYS.includes(k)));
    const encoder = new TinyViT(parseTinyVitConfig(encoderConfig, `${fixture.name}`));
    try {
      applyTinyVitMod(registry, mod, c.lora_rank ?? 4, encoder);
      loadParams(encoder, fixture);
      const x = fixture.tensor('input/x');
      // NCHW at the boundary, channels-last inside
      const forward = () => tf.tidy(() => tf.transpose(encoder.forward(tf.transpose(x, [0, 2, 3, 1]) as tf.Tensor4D), [0, 3, 1, 2]));
      const tensors = new Map<string, tf.Tensor>();
      if (fixture.keys('grad/').length === 0) {
        tensors.set('output/y', forward());
      } else {
        const upstream = fixture.tensor('input/upstream');
        let y: tf.Tensor | undefined;
        const { value, grads } = gradsByName(encoder, () => {
          y = tf.keep(forward());
          return dotLoss(y, upstream);
        });
        value.dispose();
        upstream.dispose();
        tensors.set('output/y', y!);
        for (const [key, g] of grads) tensors.set(key, g);
      }
      x.dispose();
      return { tensors };
    } finally {
      encoder.dispose();
    }
  },
};
