// The `lora` method's config: rank, scaling, dropout, where to inject, and
// which biases train. Defaults reproduce Medical-SAM-Adapter's `sam_lora`
// (q and v of the fused qkv, both MLP linears, alpha 1).
import { z } from '../../src/index.js';

export const loraSchema = z.strictObject({
  r: z.number().int().min(1).default(4).describe('Rank of the low-rank update (rows of lora_A, columns of lora_B)'),
  alpha: z.number().positive().default(1).describe('Scaling numerator: the update is multiplied by alpha / r (alpha / sqrt(r) with rslora)'),
  dropout: z.number().min(0).lt(1).default(0).describe('Dropout probability on the input of the low-rank branch (training only)'),
  rslora: z.boolean().default(false).describe('Rank-stabilised scaling alpha / sqrt(r) instead of alpha / r'),
  targets: z
    .array(z.string().min(1))
    .min(1)
    .default(['attn.qkv[q,v]', 'mlp.fc1', 'mlp.fc2'])
    .describe("Sites to adapt: roles ('attn.proj'), roles with groups ('attn.qkv[q,v]'), globs ('mlp.*') or /regex/ over paths"),
  bias: z
    .enum(['none', 'all', 'lora_only'])
    .default('none')
    .describe("Which biases train: none, all biases of the model, or only those of the adapted layers ('lora_only')"),
});

export type LoraConfig = z.output<typeof loraSchema>;

/** The factor applied to the low-rank product: alpha / r, or alpha / sqrt(r) with rsLoRA. */
export function loraScaling(config: Pick<LoraConfig, 'r' | 'alpha' | 'rslora'>): number {
  return config.rslora ? config.alpha / Math.sqrt(config.r) : config.alpha / config.r;
}
