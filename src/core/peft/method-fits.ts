// Whether a method's size fits the backbone it is applied to, checked on the
// sites it selects before anything is allocated (`peft train`, `peft plan`).
import { PeftError } from '../errors.js';
import type { InjectionSite } from './injection-site.js';
import type { LayerInjector } from './layer-injector.js';
import type { MethodDefinition } from '../registry/definitions.js';

/** A site's adapter may hold at most this many times the parameters of the layer it adapts. */
export const MAX_ADAPTER_TO_LAYER = 4;

/**
 * Checks, when the method selects its sites and before it allocates anything,
 * that its size fits the backbone: the rank (the key the method binds to
 * `--rank` in its `flagKeys`) no larger than min(in, out) of each adapted
 * linear layer (per output group for fused projections), and no site given
 * more than MAX_ADAPTER_TO_LAYER times the parameters of its layer. A rank of
 * 100000 is a clear error, not hours of allocation.
 */
export function checkMethodFits(method: LayerInjector, sites: InjectionSite[], def?: Pick<MethodDefinition, 'flagKeys'>): void {
  const config = method.config as Record<string, unknown>;
  const rankKey = def?.flagKeys?.rank;
  const rank = rankKey === undefined ? undefined : config[rankKey];
  for (const site of sites) {
    if (site.kind === 'linear' && typeof rank === 'number') {
      const out = site.groups?.length ? site.out / site.groups.length : site.out;
      const bound = Math.min(site.in, out);
      if (rank > bound) {
        throw new PeftError(`method '${method.id}': ${rankKey}=${rank} is larger than min(in, out) = ${bound} of '${site.path}' (${site.in} -> ${out})`);
      }
    }
    const layer = site.kind === 'linear' ? site.in * site.out : 12 * site.dim * site.dim; // a transformer block: ~12 dim^2
    const added = method.parameterCount(site);
    if (added > MAX_ADAPTER_TO_LAYER * layer) {
      throw new PeftError(
        `method '${method.id}' would add ${added.toLocaleString('en')} parameters to '${site.path}', more than ${MAX_ADAPTER_TO_LAYER}x the ${layer.toLocaleString('en')} of the layer (check its size keys: ${Object.keys(config).join(', ')})`,
      );
    }
  }
}
