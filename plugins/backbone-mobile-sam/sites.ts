// Where PEFT methods may attach in TinyViT: every attention block of stages
// 1.. (stage 0 is convolutional). Paths are relative to the encoder.
//
// `attn.qkv`'s groups ['q','k','v'] are the CONTIGUOUS THIRDS of its output
// features, as the reference's loralib MergedLinear splits them. TinyViT lays
// qkv out per head ([q_h, k_h, v_h] for each head h), so these thirds are not
// the true q/k/v projections; we keep the reference's behaviour so that
// `attn.qkv[q,v]` means exactly what Medical-SAM-Adapter's `sam_lora` does.
import type { InjectionSite } from '../../src/index.js';
import type { TinyVitConfig } from './config.js';

export function tinyVitSites(c: TinyVitConfig): InjectionSite[] {
  const sites: InjectionSite[] = [];
  let block = 0;
  for (let i = 1; i < c.embed_dims.length; i++) {
    const dim = c.embed_dims[i]!;
    const hidden = Math.floor(dim * c.mlp_ratio);
    for (let j = 0; j < c.depths[i]!; j++, block++) {
      const path = `layers.${i}.blocks.${j}`;
      sites.push(
        { kind: 'linear', path: `${path}.attn.qkv`, role: 'attn.qkv', in: dim, out: 3 * dim, groups: ['q', 'k', 'v'], block },
        { kind: 'linear', path: `${path}.attn.proj`, role: 'attn.proj', in: dim, out: dim, block },
        { kind: 'linear', path: `${path}.mlp.fc1`, role: 'mlp.fc1', in: dim, out: hidden, block },
        { kind: 'linear', path: `${path}.mlp.fc2`, role: 'mlp.fc2', in: hidden, out: dim, block },
        { kind: 'block', path, role: 'block', dim, hooks: ['post-attn', 'mlp-parallel'], block },
      );
    }
  }
  return sites;
}
