// Where a PEFT method may attach, described by the backbone in its own terms.

/** A block's hook points: `post-attn` transforms the attention output before
 * the residual add; `mlp-parallel` adds a branch beside the MLP that receives
 * the MLP's input. */
export type HookPoint = 'post-attn' | 'mlp-parallel';

export interface LinearSite {
  kind: 'linear';
  /** Dotted module path from the model root, e.g. `image_encoder.blocks.3.attn.qkv`. */
  path: string;
  /** What the layer is, e.g. `attn.qkv`, `attn.proj`, `mlp.fc1`, `mlp.fc2`. */
  role: string;
  in: number;
  out: number;
  /** For fused projections: the names of the equal, contiguous output groups (`['q','k','v']`). */
  groups?: string[];
  /** Index of the block the layer belongs to. */
  block?: number;
}

export interface BlockSite {
  kind: 'block';
  path: string;
  role: 'block';
  /** The token width at this block. */
  dim: number;
  hooks: HookPoint[];
  block?: number;
}

export type InjectionSite = LinearSite | BlockSite;
