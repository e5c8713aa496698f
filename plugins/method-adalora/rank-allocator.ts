// AdaLoRA's RankAllocator (Zhang et al., ICLR 2023), run once per optimiser
// step on the global step t:
// 1. while t < T - t_f: importance EMAs of every A, E, B entry (no bias
//    correction): ipt = |p * grad|, ema = b1 ema + (1-b1) ipt,
//    unc = b2 unc + (1-b2) |ipt - ema|;
// 2. budget: total while t <= t_i; target (mask every step, importance
//    frozen) when t > T - t_f; else the cubic schedule
//    int(target + (total - target) (1 - (t - t_i)/(T - t_f - t_i))^3), masking
//    when t % mask_interval == 0;
// 3. masking: element score s = ema * unc; triplet i's score =
//    s(E_i) + mean_j s(A_ij) + mean_k s(B_ki); one global threshold = the k-th
//    smallest triplet score, k = (triplets) - budget; E_i := 0 exactly where
//    its score <= threshold. A and B are never touched.
import { PeftError, tf, type Parameter } from '../../src/index.js';
import { ImportanceAverages } from './importance.js';

export interface ScheduleConfig {
  init_warmup: number;
  final_warmup: number;
  total_step: number;
  mask_interval: number;
}

export interface RankAllocatorConfig extends ScheduleConfig {
  beta1: number;
  beta2: number;
}

/** One SVD-form matrix the allocator prunes: its A, E, B, named by module path. */
export interface SvdTriplets {
  name: string;
  A: Parameter;
  E: Parameter;
  B: Parameter;
}

export interface AllocationResult {
  budget: number;
  /** The score threshold applied, or null when this step did not mask (or nothing needed pruning). */
  threshold: number | null;
  /** Per matrix: which triplets were kept (present only when the step masked). */
  kept?: Map<string, boolean[]>;
}

/** The budget (kept triplets over all matrices) at step `t`, and whether `t` masks. */
export function budgetSchedule(c: ScheduleConfig, totalRank: number, targetRank: number, t: number): { budget: number; mask: boolean } {
  const { init_warmup: ti, final_warmup: tf_, total_step: T } = c;
  if (t <= ti) return { budget: totalRank, mask: false };
  if (t > T - tf_) return { budget: targetRank, mask: true };
  const coeff = 1 - (t - ti) / (T - tf_ - ti);
  return { budget: Math.trunc(targetRank + (totalRank - targetRank) * coeff ** 3), mask: t % c.mask_interval === 0 };
}

export class RankAllocator {
  /** The importance averages (the training state a checkpoint saves). */
  private readonly importance: ImportanceAverages;

  /**
   * `totalRank` and `targetRank` are sums over all matrices (the reference's
   * `init_r * n` and `target_rank * n`).
   */
  constructor(
    readonly config: RankAllocatorConfig,
    readonly totalRank: number,
    readonly targetRank: number,
  ) {
    if (!(config.total_step > config.init_warmup + config.final_warmup)) {
      throw new PeftError(`RankAllocator: total_step must be > init_warmup + final_warmup`);
    }
    if (targetRank > totalRank) throw new PeftError(`RankAllocator: target rank ${targetRank} exceeds total rank ${totalRank}`);
    this.importance = new ImportanceAverages(config.beta1, config.beta2);
  }

  budgetAt(step: number): number {
    return budgetSchedule(this.config, this.totalRank, this.targetRank, step).budget;
  }

  masksAt(step: number): boolean {
    return budgetSchedule(this.config, this.totalRank, this.targetRank, step).mask;
  }

  /** Whether importance is still updated at `step` (frozen in the final phase). */
  updatesImportanceAt(step: number): boolean {
    return step < this.config.total_step - this.config.final_warmup;
  }

  /**
   * The allocator's update for step `step`: importance (from the parameters as
   * they are now and `grad(key)`), then the budget and, on mask steps, the mask.
   */
  update(step: number, layers: SvdTriplets[], grad: (key: string) => tf.Tensor | undefined): AllocationResult {
    if (this.updatesImportanceAt(step)) this.updateImportance(step, layers, grad);
    const { budget, mask } = budgetSchedule(this.config, this.totalRank, this.targetRank, step);
    if (!mask) return { budget, threshold: null };
    return { budget, ...this.mask(layers, budget) };
  }

  private updateImportance(step: number, layers: SvdTriplets[], grad: (key: string) => tf.Tensor | undefined): void {
    for (const layer of layers) {
      for (const [suffix, p] of [['lora_A', layer.A], ['lora_E', layer.E], ['lora_B', layer.B]] as const) {
        const key = `${layer.name}.${suffix}`;
        const g = grad(key);
        if (!g) throw new PeftError(`adalora: no gradient for '${key}' at step ${step} (the rank allocator needs it)`);
        this.importance.update(key, p, g);
      }
    }
  }

  /** The importance averages by `ipt/<key>` and `unc/<key>` (live tensors). */
  state(): Map<string, tf.Tensor> {
    return this.importance.state();
  }

  /** Restores what `state()` returned (copies the tensors). */
  loadState(state: Map<string, tf.Tensor>): void {
    this.importance.loadState(state);
  }

  /** Triplet scores of one matrix, `[r]`: s(E_i) + (mean_j s(A_ij) + mean_k s(B_ki)). */
  tripletScores(layer: SvdTriplets): Float32Array {
    const r = layer.E.shape[0]!;
    if (r === 0) return new Float32Array(0);
    return tf.tidy(() => {
      const sE = tf.reshape(this.importance.score(`${layer.name}.lora_E`, layer.E), [r]);
      const sA = tf.mean(this.importance.score(`${layer.name}.lora_A`, layer.A), 1);
      const sB = tf.mean(this.importance.score(`${layer.name}.lora_B`, layer.B), 0);
      return tf.add(sE, tf.add(sA, sB)).dataSync() as Float32Array;
    });
  }

  private mask(layers: SvdTriplets[], budget: number): { threshold: number | null; kept?: Map<string, boolean[]> } {
    const scores = layers.map((l) => this.tripletScores(l));
    const all = Float32Array.from(scores.flatMap((s) => [...s])).sort();
    const k = all.length - budget;
    if (k <= 0) return { threshold: null };
    const threshold = all[k - 1]!;
    const kept = new Map<string, boolean[]>();
    layers.forEach((layer, i) => {
      const keep = [...scores[i]!].map((s) => !(s <= threshold));
      kept.set(layer.name, keep);
      if (keep.every(Boolean)) return;
      tf.tidy(() => {
        const m = tf.tensor2d(keep, [keep.length, 1], 'bool');
        layer.E.assign(tf.where(m, layer.E.variable, tf.zeros(layer.E.shape)));
      });
    });
    return { threshold, kept };
  }

  dispose(): void {
    this.importance.dispose();
  }
}
