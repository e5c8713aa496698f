// The `adapter` LayerInjector: at every block site, a Space_Adapter (with
// skip) on the attention output and an MLP_Adapter (no skip, its output
// scaled by mlp_scale) beside the MLP, as Medical-SAM-Adapter does. Adapters are nonlinear: no merge.
import { PeftError, type BlockSite, type HookPoint, type InjectionSite, type LayerInjector, type Module } from '../../src/index.js';
import { hiddenWidth, type AdapterConfig } from './config.js';
import { Adapter } from './layer.js';

const OWNER = "method 'adapter'";

/** A block that accepts hooks (a core HookableBlock, or any module with the same method). */
interface HookTarget extends Module {
  attachHook(point: HookPoint, name: string, module: Adapter): void;
}

function asHookTarget(m: Module, site: BlockSite): HookTarget {
  if (typeof (m as unknown as Partial<HookTarget>).attachHook !== 'function') {
    throw new PeftError(`${OWNER}: block '${site.path}' does not accept hooks (it is not a HookableBlock)`);
  }
  return m as unknown as HookTarget;
}

export class AdapterInjector implements LayerInjector {
  readonly id = 'adapter';

  constructor(readonly config: AdapterConfig) {}

  select(sites: InjectionSite[]): InjectionSite[] {
    const blocks = sites.filter((s): s is BlockSite => s.kind === 'block');
    if (blocks.length === 0) throw new PeftError(`${OWNER}: the backbone declares no block sites`);
    for (const b of blocks) this.checkHooks(b);
    return blocks;
  }

  private checkHooks(site: BlockSite): void {
    const need: HookPoint[] = [];
    if (this.config.space_adapter) need.push('post-attn');
    if (this.config.mlp_adapter) need.push('mlp-parallel');
    for (const h of need) {
      if (!site.hooks.includes(h)) throw new PeftError(`${OWNER}: block '${site.path}' has no '${h}' hook point`);
    }
    if (hiddenWidth(this.config, site.dim) < 1) {
      throw new PeftError(`${OWNER}: hidden width int(${site.dim} * mlp_ratio ${this.config.mlp_ratio}) is 0 at '${site.path}'; raise mlp_ratio or set mid_dim`);
    }
  }

  inject(model: Module, site: InjectionSite): void {
    if (site.kind !== 'block') throw new PeftError(`${OWNER} attaches to blocks; '${site.path}' is a ${site.kind} site`);
    this.checkHooks(site);
    const block = asHookTarget(model.getModule(site.path), site);
    const hidden = hiddenWidth(this.config, site.dim);
    const zero = this.config.zero_init;
    if (this.config.space_adapter) block.attachHook('post-attn', 'Space_Adapter', new Adapter(site.dim, hidden, true, zero));
    if (this.config.mlp_adapter) {
      // the reference's 0.5: the adapter's own output scale (in its kernel), not the hook's (a multiply each way)
      block.attachHook('mlp-parallel', 'MLP_Adapter', new Adapter(site.dim, hidden, false, zero, this.config.mlp_scale));
    }
  }

  parameterCount(site: InjectionSite): number {
    if (site.kind !== 'block') return 0;
    const d = site.dim;
    const h = hiddenWidth(this.config, d);
    const one = d * h + h + h * d + d;
    return one * (Number(this.config.space_adapter) + Number(this.config.mlp_adapter));
  }
}
