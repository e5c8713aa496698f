// The SAM ViT image encoder's config: schema (defaults = SAM ViT-B at 1024 px),
// validation with messages naming the key, and the presets.
import { PeftError, z } from '../../src/index.js';

const posInt = () => z.number().int().positive();

const baseSchema = z.strictObject({
  img_size: posInt().default(1024).describe('Input image side in pixels; a multiple of patch_size'),
  patch_size: posInt().default(16).describe('Patch side in pixels (the patch-embedding conv kernel and stride)'),
  in_chans: posInt().default(3).describe('Input image channels'),
  embed_dim: posInt().default(768).describe('Token width of the ViT'),
  depth: posInt().default(12).describe('Number of transformer blocks'),
  num_heads: posInt().default(12).describe('Attention heads per block; must divide embed_dim'),
  mlp_ratio: z.number().positive().default(4).describe('MLP hidden width as a multiple of embed_dim'),
  out_chans: posInt().default(256).describe('Channels of the neck, i.e. of the image embeddings'),
  qkv_bias: z.boolean().default(true).describe('Bias on the fused qkv projection'),
  use_abs_pos: z.boolean().default(true).describe('Add the absolute position embedding pos_embed'),
  use_rel_pos: z.boolean().default(true).describe('Decomposed relative-position bias in attention'),
  window_size: z.number().int().nonnegative().default(14).describe('Window side (tokens) of windowed blocks; 0 = all blocks global'),
  global_attn_indexes: z
    .array(z.number().int().nonnegative())
    .default([2, 5, 8, 11])
    .describe('Indexes of the blocks that use global attention'),
  layer_norm_eps: z.number().positive().default(1e-6).describe("Blocks' LayerNorm eps"),
  neck_layer_norm_eps: z.number().positive().default(1e-6).describe("The neck's LayerNorm2d eps"),
  pos_embed_grid: posInt()
    .nullable()
    .default(null)
    .describe('Token grid pos_embed is stored for (official checkpoints: 64); resized bicubically to the actual grid. null = img_size / patch_size'),
  rel_pos_grid: posInt()
    .nullable()
    .default(null)
    .describe(
      "Token grid global blocks' rel-pos tables are sized for (2*grid - 1 rows; official checkpoints: 64); resized linearly to the actual grid. null = pos_embed_grid",
    ),
});

export type SamEncoderInput = z.input<typeof baseSchema>;
export type SamEncoderConfig = z.output<typeof baseSchema>;

/** Problems of a parsed config as `[key, message]` pairs (empty when valid). */
export function samConfigProblems(c: SamEncoderConfig): [keyof SamEncoderConfig, string][] {
  const out: [keyof SamEncoderConfig, string][] = [];
  if (c.img_size % c.patch_size !== 0) {
    out.push(['img_size', `image size ${c.img_size} is not a multiple of the patch size ${c.patch_size}`]);
  }
  if (c.embed_dim % c.num_heads !== 0) {
    out.push(['num_heads', `embed_dim ${c.embed_dim} is not divisible by num_heads ${c.num_heads}`]);
  }
  const bad = c.global_attn_indexes.filter((i) => i >= c.depth);
  if (bad.length) out.push(['global_attn_indexes', `block index ${bad.join(', ')} is out of range for depth ${c.depth} (0..${c.depth - 1})`]);
  if (new Set(c.global_attn_indexes).size !== c.global_attn_indexes.length) {
    out.push(['global_attn_indexes', 'indexes are repeated']);
  }
  return out;
}

export const samConfigSchema = baseSchema.superRefine((c, ctx) => {
  for (const [key, message] of samConfigProblems(c)) ctx.addIssue({ code: 'custom', path: [key], message });
});

/** Parses and validates a config (defaults filled in); a PeftError naming the key otherwise. */
export function parseSamConfig(input: SamEncoderInput = {}): SamEncoderConfig {
  const r = samConfigSchema.safeParse(input);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  throw new PeftError(`SAM encoder: invalid config '${issue.path.join('.') || '(config)'}': ${issue.message}`);
}

/** Throws a PeftError when a (typed) config is inconsistent. */
export function checkSamConfig(c: SamEncoderConfig): void {
  const [first] = samConfigProblems(c);
  if (first) throw new PeftError(`SAM encoder: invalid config '${first[0]}': ${first[1]}`);
}

/** The token grid side (`img_size / patch_size`). */
export function tokenGrid(c: SamEncoderConfig): number {
  return c.img_size / c.patch_size;
}

const official = { patch_size: 16, window_size: 14, use_rel_pos: true, layer_norm_eps: 1e-6, pos_embed_grid: 64, rel_pos_grid: 64, out_chans: 256, img_size: 1024 };

/** Presets: the official SAM encoders and a small one that trains on a laptop CPU. */
export const samPresets: Record<string, SamEncoderInput> = {
  vit_b: { ...official, embed_dim: 768, depth: 12, num_heads: 12, global_attn_indexes: [2, 5, 8, 11] },
  vit_l: { ...official, embed_dim: 1024, depth: 24, num_heads: 16, global_attn_indexes: [5, 11, 17, 23] },
  vit_h: { ...official, embed_dim: 1280, depth: 32, num_heads: 16, global_attn_indexes: [7, 15, 23, 31] },
  /** 128 px, 8x8 tokens of width 96, 2x2 windows of 4x4 in blocks 0 and 2, neck 64: a training step at batch 2 takes ~0.15 s on wasm (2 cores), ~0.7 s on the pure-JS cpu backend. */
  tiny: {
    img_size: 128,
    patch_size: 16,
    embed_dim: 96,
    depth: 4,
    num_heads: 4,
    global_attn_indexes: [1, 3],
    window_size: 4,
    out_chans: 64,
    use_rel_pos: true,
    layer_norm_eps: 1e-6,
    pos_embed_grid: 8,
    rel_pos_grid: 8,
  },
};

export const DEFAULT_SAM_PRESET = 'vit_b';
