// Where PEFT methods may attach in a SAM ViT block. Roles are the ones every
// backbone uses (`attn.qkv`, `attn.proj`, `mlp.fc1`, `mlp.fc2`, `block`), so a
// method's targets (`attn.qkv[q,v]`, `mlp.*`) mean the same everywhere; paths
// are SAM's own (`mlp.lin1`, `mlp.lin2`).
import type { InjectionSite } from '../../src/index.js';

/**
 * The sites of one block whose module path is `path` ('' when the block is
 * the root, as in the parity kinds), tagged with block index `block`.
 */
export function samBlockSites(path: string, dim: number, mlpDim: number, block?: number): InjectionSite[] {
  const at = (rel: string) => (path ? `${path}.${rel}` : rel);
  const tag = block === undefined ? {} : { block };
  return [
    { kind: 'linear', path: at('attn.qkv'), role: 'attn.qkv', in: dim, out: 3 * dim, groups: ['q', 'k', 'v'], ...tag },
    { kind: 'linear', path: at('attn.proj'), role: 'attn.proj', in: dim, out: dim, ...tag },
    { kind: 'linear', path: at('mlp.lin1'), role: 'mlp.fc1', in: dim, out: mlpDim, ...tag },
    { kind: 'linear', path: at('mlp.lin2'), role: 'mlp.fc2', in: mlpDim, out: dim, ...tag },
    { kind: 'block', path, role: 'block', dim, hooks: ['post-attn', 'mlp-parallel'], ...tag },
  ];
}
