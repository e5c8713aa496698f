// The registry with every built-in plugin loaded: what the CLI uses. Built-in
// plugins register through the same `register(registry, peftjs)` contract an
// external package uses, and the registry hands every plugin it loads
// (external ones too) the public API.
import * as api from './index.js';
import { BUILT_IN } from './core/registry/provenance.js';
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

/** The backbone `peft train` and `peft plan` use when none is given (a built-in; its `tiny` preset trains on a CPU). */
export const DEFAULT_BACKBONE = 'mobile_sam';
/** The method `peft train` and `peft plan` use when none is given. */
export const DEFAULT_METHOD = 'lora';

export async function createDefaultRegistry(): Promise<Registry> {
  const registry = new Registry({ api });
  // the SAM task head is core (SAM and MobileSAM share it); its fixture kind is registered here
  registry.registerParityKind(samMaskHeadParity);
  for (const [name, load] of BUILT_INS) {
    const plugin = await load();
    // recorded as { name, version: peftjs's, path: 'built-in' } in run.json and adapter files
    await registry.load({ name, path: BUILT_IN }, plugin.register);
  }
  return registry;
}
