// The built-in `adapter` method plugin (Medical-SAM-Adapter).
import type { MethodDefinition, Registry } from '../../src/index.js';
import { adapterSchema, type AdapterConfig } from './config.js';
import { AdapterInjector } from './injector.js';
import { msaAdapterParity } from './parity.js';

export const adapterMethod: MethodDefinition<AdapterConfig> = {
  id: 'adapter',
  summary: "Medical-SAM-Adapter: bottleneck adapters after each block's attention (with skip) and beside its MLP (x0.5)",
  aliases: ['sam_adpt'],
  schema: adapterSchema,
  create: (config) => new AdapterInjector(config),
  display: { name: 'Adapter', mod: 'sam_adpt' },
  flagKeys: { 'mid-dim': 'mid_dim' },
};

export function register(registry: Registry): void {
  registry.registerMethod(adapterMethod);
  registry.registerParityKind(msaAdapterParity);
}

export { adapterSchema, hiddenWidth, type AdapterConfig } from './config.js';
export { AdapterInjector } from './injector.js';
export { Adapter } from './layer.js';
