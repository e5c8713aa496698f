// The `adapter` method's config (Medical-SAM-Adapter's Adapter): bottleneck
// width, where adapters attach, and whether the model equals its base at init.
import { z } from '../../src/index.js';

export const adapterSchema = z
  .strictObject({
    mlp_ratio: z.number().positive().default(0.25).describe('Hidden width of each adapter as a fraction of the block width: int(dim * mlp_ratio)'),
    mid_dim: z.number().int().positive().optional().describe('Hidden width of each adapter, overriding mlp_ratio'),
    zero_init: z
      .boolean()
      .default(true)
      .describe("Zero-initialise D_fc2 so the adapted model equals the base at init (false: the reference's PyTorch-default init)"),
    space_adapter: z.boolean().default(true).describe('Attach Space_Adapter (with skip) to each block\'s attention output'),
    mlp_adapter: z.boolean().default(true).describe('Attach MLP_Adapter (no skip) parallel to each block\'s MLP'),
    mlp_scale: z.number().finite().default(0.5).describe("Scale of the MLP adapter's output (the reference uses 0.5)"),
  })
  .superRefine((c, ctx) => {
    if (!c.space_adapter && !c.mlp_adapter) {
      ctx.addIssue({ code: 'custom', path: ['mlp_adapter'], message: 'space_adapter and mlp_adapter are both false: nothing to attach' });
    }
  });

export type AdapterConfig = z.output<typeof adapterSchema>;

/** The adapters' hidden width for a block of width `dim`. */
export function hiddenWidth(config: Pick<AdapterConfig, 'mlp_ratio' | 'mid_dim'>, dim: number): number {
  return config.mid_dim ?? Math.trunc(dim * config.mlp_ratio);
}
