// The built-in `lora` method plugin.
import type { MethodDefinition, Registry } from '../../src/index.js';
import { loraSchema, type LoraConfig } from './config.js';
import { loraHfPeft } from './hf-peft.js';
import { LoraInjector } from './injector.js';
import { loraLinearParity, loraMergedLinearParity } from './parity.js';

export const loraMethod: MethodDefinition<LoraConfig> = {
  id: 'lora',
  summary: "LoRA (Microsoft loralib): a trainable low-rank update B A * alpha / r beside frozen linears; q,v of the fused qkv by grouped LoRA",
  aliases: ['sam_lora'],
  schema: loraSchema,
  create: (config) => new LoraInjector(config),
  display: { name: 'LoRA', mod: 'sam_lora' },
  flagKeys: { rank: 'r', alpha: 'alpha', targets: 'targets' },
  hfPeft: loraHfPeft,
};

export function register(registry: Registry): void {
  registry.registerMethod(loraMethod);
  registry.registerParityKind(loraLinearParity);
  registry.registerParityKind(loraMergedLinearParity);
}

export { loraSchema, loraScaling, type LoraConfig } from './config.js';
export { LoraInjector, enabledGroups } from './injector.js';
export { loraHfPeft, groupedToFullB, fullToGroupedB, detectGroups } from './hf-peft.js';
export { LoraLinear, GroupedLoraLinear, baseParamsOf, isLoraLayer } from './layer.js';
