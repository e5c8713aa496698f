// The TinyViT image encoder's config (MobileSAM's encoder): schema with
// defaults = MobileSAM at 1024 px, cross-key validation with messages naming
// the key, the presets, and the stride rule of patch merging.
import { PeftError, z } from '../../src/index.js';

const posInt = () => z.number().int().positive();
const widths = () => z.array(posInt()).min(1);

export const tinyVitSchema = z
  .strictObject({
    img_size: posInt().default(1024).describe('Input image side in pixels (the encoder runs at any size; this sets the SAM head\'s frame)'),
    in_chans: posInt().default(3).describe('Input image channels'),
    embed_dims: widths().default([64, 128, 160, 320]).describe('Channel width of each stage (stage 0 is MBConv, the rest attention)'),
    depths: z.array(z.number().int().nonnegative()).min(1).default([2, 2, 6, 2]).describe('Blocks per stage'),
    num_heads: widths().default([2, 4, 5, 10]).describe('Attention heads per stage (unused in stage 0); must divide the stage width'),
    window_sizes: widths().default([7, 7, 14, 7]).describe('Attention window side (tokens) per stage (unused in stage 0)'),
    mlp_ratio: z.number().positive().default(4).describe('MLP hidden width as a multiple of the stage width'),
    mbconv_expand_ratio: z.number().positive().default(4).describe('Hidden width of the MBConv blocks as a multiple of the stage width'),
    local_conv_size: posInt().default(3).describe('Kernel of the depthwise conv between attention and MLP (odd)'),
    out_chans: posInt().default(256).describe('Channels of the neck, i.e. of the image embeddings'),
    num_classes: z
      .number()
      .int()
      .nonnegative()
      .default(0)
      .describe('Width of TinyViT\'s unused classifier `head` (official MobileSAM checkpoints hold a 1000-class one; 0 = none)'),
  })
  .superRefine((c, ctx) => {
    const n = c.embed_dims.length;
    for (const key of ['depths', 'num_heads', 'window_sizes'] as const) {
      if (c[key].length !== n) {
        ctx.addIssue({ code: 'custom', path: [key], message: `has ${c[key].length} entries but embed_dims has ${n} stages` });
      }
    }
    for (let i = 1; i < Math.min(n, c.num_heads.length); i++) {
      if (c.embed_dims[i]! % c.num_heads[i]! !== 0) {
        ctx.addIssue({
          code: 'custom',
          path: ['num_heads', i],
          message: `stage ${i} width ${c.embed_dims[i]} is not divisible by ${c.num_heads[i]} heads`,
        });
      }
    }
    if (c.local_conv_size % 2 !== 1) ctx.addIssue({ code: 'custom', path: ['local_conv_size'], message: 'must be odd' });
    if (c.embed_dims[0]! < 2) ctx.addIssue({ code: 'custom', path: ['embed_dims', 0], message: 'stage 0 needs at least 2 channels' });
  });

export type TinyVitInput = z.input<typeof tinyVitSchema>;
export type TinyVitConfig = z.output<typeof tinyVitSchema>;

/** Parses and validates a TinyViT config (defaults filled in); a PeftError naming the key otherwise. */
export function parseTinyVitConfig(input: unknown = {}, owner = 'TinyViT'): TinyVitConfig {
  const r = tinyVitSchema.safeParse(input ?? {});
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  let detail = issue.message;
  if (issue.code === 'unrecognized_keys') detail = `unknown key(s) ${(issue as { keys: string[] }).keys.join(', ')}`;
  throw new PeftError(`${owner}: invalid config '${issue.path.join('.') || '(config)'}': ${detail}`);
}

/**
 * The stride of a patch merging's depthwise conv: MobileSAM keeps the
 * resolution (stride 1) when the merging's output width is 320, 448 or 576
 * (the last stage of its TinyViT-5M/11M/21M), so the encoder's output is 1/16
 * of the input instead of 1/32.
 */
export function mergeStride(outDim: number): 1 | 2 {
  return outDim === 320 || outDim === 448 || outDim === 576 ? 1 : 2;
}

/** Input pixels per output token: 4 (the patch embedding) times the merging strides. */
export function encoderPatchSize(c: TinyVitConfig): number {
  let p = 4;
  for (let i = 0; i + 1 < c.embed_dims.length; i++) p *= mergeStride(c.embed_dims[i + 1]!);
  return p;
}

/** Presets: partial configs over the defaults. */
export const MOBILE_SAM_PRESETS: Record<string, Partial<TinyVitInput>> = {
  /** MobileSAM's TinyViT-5M encoder, as in the official `mobile_sam.pt` (1000-class head included). */
  tiny_vit: {
    img_size: 1024,
    embed_dims: [64, 128, 160, 320],
    depths: [2, 2, 6, 2],
    num_heads: [2, 4, 5, 10],
    window_sizes: [7, 7, 14, 7],
    num_classes: 1000,
  },
  /**
   * A small encoder for CPU experiments at 128 px (output 8x8x64, patch 16):
   * three stages (MBConv at 32x32, attention at 16x16 and 8x8). The windows
   * are as small, relative to the feature map, as MobileSAM's at 1024 px (7 of
   * 128, 14 and 7 of 64 tokens): with 8-token windows a randomly initialised
   * encoder averages each window away and its features lose where the
   * structures are. The 64-channel neck (as sam's tiny) keeps the mask
   * decoder small. See docs/results.md.
   */
  tiny: {
    img_size: 128,
    embed_dims: [32, 64, 128],
    depths: [1, 1, 2],
    num_heads: [1, 2, 4],
    window_sizes: [8, 2, 1],
    mlp_ratio: 2,
    mbconv_expand_ratio: 2,
    out_chans: 64,
    num_classes: 0,
  },
};
