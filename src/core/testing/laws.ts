// The law suite of a method: the core laws every method must satisfy, then
// the laws the method brings itself (`MethodDefinition.laws`, e.g. AdaLoRA's
// rank budget). Used by the test suite and by `peft verify <method>` (any
// registered method, built-in or from an external package).
import type { MethodDefinition } from '../registry/definitions.js';
import type { Registry } from '../registry/registry.js';
import type { Law, LawParams, LawResult, MethodLawOptions } from './law.js';
import { methodLaws } from './method-laws.js';

export { methodLaws };

/** A law that reports `error` when run: how a method's broken `laws()` shows in `peft verify`. */
function failingLaw(name: string, error: string): Law {
  return { name, run: () => Promise.resolve({ ok: false, error }) };
}

/** The method's own laws, checked: a `laws()` that throws or returns something else is one failing law naming the method. */
export function ownLaws(def: MethodDefinition, options: MethodLawOptions = {}): Law[] {
  if (def.laws === undefined) return [];
  const name = `method '${def.id}': its own laws`;
  if (typeof def.laws !== 'function') return [failingLaw(name, "'laws' must be a function (def, options) => Law[]")];
  let laws: unknown;
  try {
    laws = def.laws(def, options);
  } catch (err) {
    return [failingLaw(name, `laws() threw: ${err instanceof Error ? err.message : String(err)}`)];
  }
  if (!Array.isArray(laws)) return [failingLaw(name, 'laws() must return a list of laws')];
  const bad = laws.findIndex((l: Partial<Law> | null) => typeof l?.name !== 'string' || typeof l.run !== 'function');
  if (bad >= 0) return [failingLaw(name, `laws()[${bad}] is not a law ({ name: string, run(params) })`)];
  return laws as Law[];
}

/** Every law of `def`: the core laws, then its own. */
export function lawsFor(def: MethodDefinition, options: MethodLawOptions = {}): Law[] {
  return [...methodLaws(def, options), ...ownLaws(def, options)];
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

/** `peft verify <method>`: the core laws, then the method's own, of a registered method (by id or alias). */
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
