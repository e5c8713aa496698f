// The registry with every built-in plugin loaded: what the CLI uses. Built-in
// plugins register through the same `register(registry)` contract an external
// package uses.
import { Registry, type RegisterFunction } from './core/registry/registry.js';
import { samMaskHeadParity } from './core/segment/sam-mask-head-parity.js';

const BUILT_INS: [string, () => Promise<{ register: RegisterFunction }>][] = [
  ['backbone-efficient-sam', () => import('../plugins/backbone-efficient-sam/index.js')],
  ['backbone-mobile-sam', () => import('../plugins/backbone-mobile-sam/index.js')],
  ['backbone-sam', () => import('../plugins/backbone-sam/index.js')],
  ['method-lora', () => import('../plugins/method-lora/index.js')],
  ['method-adapter', () => import('../plugins/method-adapter/index.js')],
  ['method-adalora', () => import('../plugins/method-adalora/index.js')],
];

export async function createDefaultRegistry(): Promise<Registry> {
  const registry = new Registry();
  // the SAM task head is core (SAM and MobileSAM share it); its fixture kind is registered here
  registry.registerParityKind(samMaskHeadParity);
  for (const [name, load] of BUILT_INS) {
    const plugin = await load();
    await registry.load(`built-in plugin '${name}'`, plugin.register);
  }
  return registry;
}
