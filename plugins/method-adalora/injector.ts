// The `adalora` LayerInjector: SVDLinear at every targeted linear, the
// orthogonal regulariser, the RankAllocator after every optimiser step (on the
// global step), merge/unmerge, and the rank pattern in saved adapters (saved
// tensors are pruned to it; loading rebuilds those shapes).
import {
  PeftError,
  selectLinearSites,
  tf,
  type InjectionSite,
  type LayerInjector,
  type Module,
  type StepContext,
} from '../../src/index.js';
import type { AdaloraConfig } from './config.js';
import { SVDLinear, svdLayers } from './layer.js';
import { RankAllocator, budgetSchedule, type AllocationResult, type SvdTriplets } from './rank-allocator.js';
import { orthogonalRegulariser } from './regulariser.js';

const OWNER = "method 'adalora'";

/** Per adapted layer path: which of its `init_r` triplets a saved adapter keeps. */
export type RankPattern = Record<string, boolean[]>;

function triplets(model: Module): SvdTriplets[] {
  return svdLayers(model).map(([name, l]) => ({ name, A: l.param('lora_A'), E: l.param('lora_E'), B: l.param('lora_B') }));
}

export class AdaloraInjector implements LayerInjector {
  readonly id = 'adalora';
  private injected = 0;
  private allocator?: RankAllocator;
  /** The latest mask's kept triplets per layer (over the layer's current rows). */
  private readonly lastKept = new Map<string, boolean[]>();
  /** The latest allocation (budget, threshold), for logging. */
  lastAllocation?: AllocationResult & { step: number };

  constructor(readonly config: AdaloraConfig) {}

  select(sites: InjectionSite[]): InjectionSite[] {
    return selectLinearSites(sites, this.config.targets, OWNER).map((s) => {
      if (s.groups) throw new PeftError(`${OWNER}: '${s.site.path}': AdaLoRA adapts whole layers, not output groups`);
      return s.site;
    });
  }

  inject(model: Module, site: InjectionSite): void {
    if (site.kind !== 'linear') throw new PeftError(`${OWNER} adapts linear layers; '${site.path}' is a ${site.kind} site`);
    const base = model.getModule(site.path);
    if (!base.hasParam('weight') || base.param('weight').shape.length !== 2) {
      throw new PeftError(`${OWNER}: '${site.path}' is not a linear layer (no 2-D 'weight')`);
    }
    const weight = base.param('weight');
    const [out, inF] = weight.shape as [number, number];
    if (out !== site.out || inF !== site.in) {
      throw new PeftError(`${OWNER}: '${site.path}' is declared ${site.in}->${site.out} but its weight is [${out}, ${inF}]`);
    }
    const bias = base.hasParam('bias') ? base.param('bias') : undefined;
    const layer = new SVDLinear({ weight, bias }, { r: this.config.init_r, alpha: this.config.alpha, dropout: this.config.dropout });
    model.setModule(site.path, layer);
    this.injected++;
  }

  parameterCount(site: InjectionSite): number {
    if (site.kind !== 'linear') return 0;
    return this.config.init_r * (site.in + site.out + 1);
  }

  /** The number of adapted matrices the budget is for. */
  private matrices(model?: Module): number {
    return model ? svdLayers(model).length : this.injected;
  }

  /** The rank budget (triplets kept over all adapted matrices) scheduled at global step `step`. */
  budgetAt(step: number): number {
    const n = this.allocator ? this.allocator.totalRank / this.config.init_r : this.matrices();
    return budgetSchedule(this.config, this.config.init_r * n, this.config.target_r * n, step).budget;
  }

  regulariser(model: Module): tf.Scalar {
    const factors = svdLayers(model).map(([, l]) => ({ A: l.param('lora_A').variable, B: l.param('lora_B').variable }));
    return orthogonalRegulariser(factors, this.config.orth_reg_weight);
  }

  afterStep(ctx: StepContext): void {
    const layers = triplets(ctx.model);
    if (layers.length === 0) return;
    this.allocator ??= new RankAllocator(this.config, this.config.init_r * layers.length, this.config.target_r * layers.length);
    const result = this.allocator.update(ctx.step, layers, (key) => ctx.grads.get(key));
    if (result.kept) for (const [name, keep] of result.kept) this.lastKept.set(name, keep);
    this.lastAllocation = { step: ctx.step, ...result };
  }

  trainingState(): Map<string, tf.Tensor> {
    return this.allocator?.state() ?? new Map();
  }

  loadTrainingState(model: Module, state: Map<string, tf.Tensor>): void {
    const layers = triplets(model);
    this.allocator?.dispose();
    this.allocator = new RankAllocator(this.config, this.config.init_r * layers.length, this.config.target_r * layers.length);
    this.allocator.loadState(state);
  }

  merge(model: Module): void {
    for (const [, l] of svdLayers(model)) l.merge();
  }

  unmerge(model: Module): void {
    for (const [, l] of svdLayers(model)) l.unmerge();
  }

  /**
   * Per layer, which current triplets a saved adapter keeps: those the latest
   * mask kept and any whose E is non-zero (so dropping the others, whose E is
   * exactly 0, never changes the output). Undefined when nothing is pruned.
   */
  private keptRows(model: Module): Map<string, { layer: SVDLinear; keep: boolean[] }> | undefined {
    const layers = svdLayers(model);
    const pruned = layers.some(([, l]) => l.rank < l.initialRank);
    if (!pruned && this.lastKept.size === 0) return undefined;
    const out = new Map<string, { layer: SVDLinear; keep: boolean[] }>();
    for (const [path, layer] of layers) {
      const e = layer.param('lora_E').variable.dataSync();
      const last = this.lastKept.get(path);
      const keep = Array.from({ length: layer.rank }, (_, i) => (last && last.length === layer.rank ? last[i]! : true) || e[i] !== 0);
      out.set(path, { layer, keep });
    }
    return out;
  }

  adapterState(model: Module): Record<string, unknown> {
    const rows = this.keptRows(model);
    if (!rows) return { rank_pattern: null };
    const pattern: RankPattern = {};
    for (const [path, { layer, keep }] of rows) {
      pattern[path] = [...keep, ...new Array<boolean>(Math.max(0, layer.initialRank - keep.length)).fill(false)];
    }
    return { rank_pattern: pattern };
  }

  /** The tensors a saved adapter holds: A, E, B pruned to the rank pattern (see adapter files). */
  exportAdapterTensors(model: Module, tensors: Map<string, tf.Tensor>): Map<string, tf.Tensor> {
    const rows = this.keptRows(model);
    if (!rows) return tensors;
    const out = new Map(tensors);
    for (const [path, { keep }] of rows) {
      if (keep.every(Boolean)) continue;
      const idx = keep.flatMap((k, i) => (k ? [i] : []));
      for (const [name, axis] of [['lora_A', 0], ['lora_E', 0], ['lora_B', 1]] as const) {
        const key = `${path}.${name}`;
        const t = tensors.get(key);
        if (t) out.set(key, tf.tidy(() => tf.gather(t, tf.tensor1d(idx, 'int32'), axis)));
      }
    }
    return out;
  }

  loadAdapterState(model: Module, state: Record<string, unknown>): void {
    const rp = state.rank_pattern;
    if (rp === null || rp === undefined) return;
    if (typeof rp !== 'object' || Array.isArray(rp)) throw new PeftError(`${OWNER}: 'rank_pattern' must be an object of layer paths to boolean lists`);
    for (const [path, pattern] of Object.entries(rp as Record<string, unknown>)) {
      if (!Array.isArray(pattern) || !pattern.every((b) => typeof b === 'boolean')) {
        throw new PeftError(`${OWNER}: 'rank_pattern.${path}' must be a list of booleans`);
      }
      let layer: Module;
      try {
        layer = model.getModule(path);
      } catch {
        throw new PeftError(`${OWNER}: 'rank_pattern.${path}' names no layer of the model`);
      }
      if (!(layer instanceof SVDLinear)) throw new PeftError(`${OWNER}: 'rank_pattern.${path}' is not an AdaLoRA layer`);
      const kept = pattern.filter(Boolean).length;
      if (layer.rank === pattern.length) layer.prune(pattern as boolean[]);
      else if (layer.rank !== kept) {
        throw new PeftError(`${OWNER}: 'rank_pattern.${path}' has ${pattern.length} entries but the layer has rank ${layer.rank}`);
      }
    }
    this.lastKept.clear();
  }

  /** Releases the allocator's importance state. */
  dispose(): void {
    this.allocator?.dispose();
    this.allocator = undefined;
  }
}
