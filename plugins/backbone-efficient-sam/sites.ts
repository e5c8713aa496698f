// Where PEFT may attach in the EfficientSAM image encoder (paths relative to it).
import type { InjectionSite } from '../../src/index.js';

export function encoderSites(depth: number, dim: number, mlpHidden: number): InjectionSite[] {
  const sites: InjectionSite[] = [];
  for (let i = 0; i < depth; i++) {
    const p = `blocks.${i}`;
    sites.push(
      { kind: 'linear', path: `${p}.attn.qkv`, role: 'attn.qkv', in: dim, out: 3 * dim, groups: ['q', 'k', 'v'], block: i },
      { kind: 'linear', path: `${p}.attn.proj`, role: 'attn.proj', in: dim, out: dim, block: i },
      { kind: 'linear', path: `${p}.mlp.fc1`, role: 'mlp.fc1', in: dim, out: mlpHidden, block: i },
      { kind: 'linear', path: `${p}.mlp.fc2`, role: 'mlp.fc2', in: mlpHidden, out: dim, block: i },
      { kind: 'block', path: p, role: 'block', dim, hooks: ['post-attn', 'mlp-parallel'], block: i },
    );
  }
  return sites;
}
