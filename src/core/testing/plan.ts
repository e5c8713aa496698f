// The plan of a method on a backbone, without injecting anything: the sites
// it selects and the parameters its formula adds at each (`peft plan`).
import type { InjectionSite } from '../peft/injection-site.js';
import type { LayerInjector } from '../peft/layer-injector.js';

export interface SitePlan {
  path: string;
  kind: InjectionSite['kind'];
  role: string;
  /** Parameters the method adds here (`parameterCount(site)`). */
  parameters: number;
}

export interface MethodPlan {
  method: string;
  config: Readonly<Record<string, unknown>>;
  sites: SitePlan[];
  /** Sum over the selected sites. */
  parameters: number;
}

/** Selects `method`'s sites among `sites` (PeftError when a target matches nothing) and counts its parameters. */
export function planMethod(sites: InjectionSite[], method: LayerInjector): MethodPlan {
  const chosen = method.select(sites).map((s) => ({ path: s.path, kind: s.kind, role: s.role, parameters: method.parameterCount(s) }));
  return { method: method.id, config: method.config, sites: chosen, parameters: chosen.reduce((n, s) => n + s.parameters, 0) };
}
