// The law suite of a method: the general laws for any method, plus the
// rank-budget laws for a method that allocates ranks (AdaLoRA). Used by the
// test suite and by `peft verify <method>` (any registered method, built-in
// or from an external package).
import { PeftError } from '../errors.js';
import { parseConfig } from '../registry/config.js';
import type { MethodDefinition } from '../registry/definitions.js';
import type { Registry } from '../registry/registry.js';
import { adaloraLaws, isRankBudgetMethod } from './adalora-laws.js';
import type { Law, LawParams, LawResult } from './law.js';
import { methodLaws, type MethodLawOptions } from './method-laws.js';

export { adaloraLaws, methodLaws };

/** Whether the method's default injector allocates ranks (has `budgetAt` and `afterStep`). */
function allocatesRanks(def: MethodDefinition, config?: Record<string, unknown>): boolean {
  try {
    const inj = def.create(parseConfig(def.schema, config ?? {}, `method '${def.id}'`));
    const yes = isRankBudgetMethod(inj) && typeof inj.afterStep === 'function';
    (inj as { dispose?: () => void }).dispose?.();
    return yes;
  } catch (err) {
    if (err instanceof PeftError) return false;
    throw err;
  }
}

/** Every law that applies to `def`. */
export function lawsFor(def: MethodDefinition, options: MethodLawOptions = {}): Law[] {
  return [...methodLaws(def, options), ...(allocatesRanks(def, options.config) ? adaloraLaws(def) : [])];
}

export interface NamedLawResult extends LawResult {
  law: string;
  ms: number;
}

/** Runs laws one after another; `onResult` sees each result as it comes (for printing). */
export async function runLaws(
  laws: Law[],
  params: LawParams,
  onResult: (r: NamedLawResult) => void = () => {},
): Promise<{ ok: boolean; results: NamedLawResult[] }> {
  const results: NamedLawResult[] = [];
  for (const law of laws) {
    const start = performance.now();
    let r: LawResult;
    try {
      r = await law.run(params);
    } catch (err) {
      r = { ok: false, error: `the law itself crashed: ${(err as Error).message}` };
    }
    const named = { law: law.name, ...r, ms: performance.now() - start };
    results.push(named);
    onResult(named);
  }
  return { ok: results.every((r) => r.ok), results };
}

/** `peft verify <method>`: every law of a registered method. */
export async function verifyMethod(
  registry: Registry,
  id: string,
  params: LawParams & MethodLawOptions,
  onResult?: (r: NamedLawResult) => void,
): Promise<{ method: string; ok: boolean; results: NamedLawResult[] }> {
  const def = registry.method(id);
  const { numRuns, seed, timeLimitMs, ...options } = params;
  const out = await runLaws(lawsFor(def, options), { numRuns, seed, timeLimitMs }, onResult);
  return { method: def.id, ...out };
}

/** One line per law: `✓ name (n cases)`, `- name: skipped (reason)`, `✗ name: error` + counterexample. */
export function formatLawResult(r: NamedLawResult): string {
  if (r.skipped) return `- ${r.law}: skipped (${r.skipped})`;
  if (r.ok) return `✓ ${r.law} (${r.runs ?? 0} cases, ${Math.round(r.ms)} ms)`;
  const lines = [`✗ ${r.law}: ${r.error ?? 'failed'}`];
  if (r.counterexample) lines.push(`    counterexample: ${r.counterexample}`);
  return lines.join('\n');
}
