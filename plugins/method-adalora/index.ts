// The built-in `adalora` method plugin.
import type { MethodDefinition, Registry } from '../../src/index.js';
import { adaloraSchema, type AdaloraConfig } from './config.js';
import { adaloraHfPeft } from './hf-peft.js';
import { AdaloraInjector } from './injector.js';
import { adaloraLaws } from './laws.js';
import { rankAllocatorParity, svdLinearParity } from './parity.js';
import { adaloraRunBindingRule, bindAdaloraRun, describeAdaloraSchedule } from './run-binding.js';

export const adaloraMethod: MethodDefinition<AdaloraConfig> = {
  id: 'adalora',
  summary: 'AdaLoRA: SVD-form low-rank updates whose ranks a RankAllocator prunes to a budget by importance, with an orthogonal regulariser',
  aliases: ['sam_adalora'],
  schema: adaloraSchema,
  create: (config) => new AdaloraInjector(config),
  display: { name: 'AdaLoRA', mod: 'sam_adalora' },
  flagKeys: { rank: 'init_r', 'target-rank': 'target_r', alpha: 'alpha', targets: 'targets' },
  bindRun: bindAdaloraRun,
  runBindingRule: adaloraRunBindingRule,
  describeSchedule: describeAdaloraSchedule,
  laws: (def) => adaloraLaws(def),
  hfPeft: adaloraHfPeft,
};

export function register(registry: Registry): void {
  registry.registerMethod(adaloraMethod);
  registry.registerParityKind(svdLinearParity);
  registry.registerParityKind(rankAllocatorParity);
}

export { adaloraSchema, type AdaloraConfig } from './config.js';
export { AdaloraInjector, type RankPattern } from './injector.js';
export { adaloraHfPeft } from './hf-peft.js';
export { SVDLinear, svdLayers } from './layer.js';
export { RankAllocator, budgetSchedule, type AllocationResult, type RankAllocatorConfig, type ScheduleConfig, type SvdTriplets } from './rank-allocator.js';
export { orthogonalRegulariser } from './regulariser.js';
export { adaloraRunBindingRule, bindAdaloraRun, describeAdaloraSchedule } from './run-binding.js';
export { ImportanceAverages } from './importance.js';
export { adaloraLaws, referenceBudget, scheduleCases, type ScheduleCase } from './laws.js';
