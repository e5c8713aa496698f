// The `lora` LayerInjector: selects linear sites by target, replaces each
// with a LoraLinear (or a GroupedLoraLinear when the target names groups),
// marks biases trainable per the bias mode, merges and unmerges.
import {
  PeftError,
  parseTarget,
  selectLinearSites,
  type InjectionSite,
  type LayerInjector,
  type LinearSite,
  type Module,
} from '../../src/index.js';
import { loraScaling, type LoraConfig } from './config.js';
import { GroupedLoraLinear, LoraLinear, baseParamsOf, isLoraLayer } from './layer.js';

const OWNER = "method 'lora'";

/**
 * Which output groups of `site` the targets enable (undefined: the whole
 * layer). A site that no target names is adapted whole.
 */
export function enabledGroups(site: LinearSite, targets: string[], owner = OWNER): boolean[] | undefined {
  const hits = targets.filter((t) => parseTarget(t).test(site));
  if (hits.length === 0) return undefined;
  return selectLinearSites([site], hits, owner)[0]!.groups;
}

function asLinear(site: InjectionSite): LinearSite {
  if (site.kind !== 'linear') throw new PeftError(`${OWNER} adapts linear layers; '${site.path}' is a ${site.kind} site`);
  return site;
}

export class LoraInjector implements LayerInjector {
  readonly id = 'lora';
  readonly scaling: number;

  constructor(readonly config: LoraConfig) {
    this.scaling = loraScaling(config);
  }

  select(sites: InjectionSite[]): InjectionSite[] {
    const chosen = selectLinearSites(sites, this.config.targets, OWNER);
    for (const { site, groups } of chosen) {
      if (groups && site.out % groups.length !== 0) {
        throw new PeftError(`${OWNER}: '${site.path}' has ${site.out} outputs, not divisible into ${groups.length} groups`);
      }
    }
    return chosen.map((c) => c.site);
  }

  inject(model: Module, site: InjectionSite): void {
    const linear = asLinear(site);
    const base = baseParamsOf(model.getModule(linear.path), linear.path);
    const [out, inF] = base.weight.shape as [number, number];
    if (out !== linear.out || inF !== linear.in) {
      throw new PeftError(`${OWNER}: '${linear.path}' is declared ${linear.in}->${linear.out} but its weight is [${out}, ${inF}]`);
    }
    const options = { r: this.config.r, scaling: this.scaling, dropout: this.config.dropout };
    const groups = enabledGroups(linear, this.config.targets);
    const layer = groups ? new GroupedLoraLinear(base, { ...options, enabled: groups }) : new LoraLinear(base, options);
    model.setModule(linear.path, layer);
    if (this.config.bias === 'lora_only' && base.bias) base.bias.trainable = true;
    if (this.config.bias === 'all') {
      for (const [name, p] of model.namedParameters()) if (name === 'bias' || name.endsWith('.bias')) p.trainable = true;
    }
  }

  /** The biases the bias mode trains (the law suite checks nothing else of the base trains): every bias for `all`, the adapted layers' for `lora_only`. */
  trainableExtras(model: Module): string[] {
    if (this.config.bias === 'all') return model.namedParameters().filter(([name]) => name === 'bias' || name.endsWith('.bias')).map(([name]) => name);
    if (this.config.bias === 'lora_only') {
      return [...model.namedModules()].filter(([, m]) => isLoraLayer(m) && m.hasParam('bias')).map(([path]) => (path ? `${path}.bias` : 'bias'));
    }
    return [];
  }

  parameterCount(site: InjectionSite): number {
    if (site.kind !== 'linear') return 0;
    const r = this.config.r;
    const groups = enabledGroups(site, this.config.targets);
    if (!groups) return r * (site.in + site.out);
    const k = groups.filter(Boolean).length;
    return r * k * site.in + (site.out / groups.length) * k * r;
  }

  merge(model: Module): void {
    for (const [, m] of model.namedModules()) if (isLoraLayer(m)) m.merge();
  }

  unmerge(model: Module): void {
    for (const [, m] of model.namedModules()) if (isLoraLayer(m)) m.unmerge();
  }
}
