// A method's config as a user asks for it: the common flags (`--rank`,
// `--alpha`…) through the keys the method binds them to (`flagKeys`), keys set
// by name, and the values that follow the run's length (`bindRun`), applied
// only where the user set nothing. The mechanisms here never name a method.
import { PeftError } from '../errors.js';
import { describeConfig, parseConfig } from './config.js';
import type { MethodDefinition, MethodFlag, RunBinding } from './definitions.js';

/** Every common method flag, in the order help and messages list them. */
export const METHOD_FLAGS: readonly MethodFlag[] = ['rank', 'target-rank', 'alpha', 'mid-dim', 'targets'];

/** Values of the common method flags (already parsed), and keys set by name (`--set key=value`). */
export type MethodFlagValues = Partial<Record<MethodFlag, unknown>> & { set?: Record<string, unknown> };

/** The flags a method binds, as `--rank (init_r), --alpha (alpha)`, or `no flags`. */
export function describeFlagKeys(def: MethodDefinition): string {
  const bound = METHOD_FLAGS.filter((f) => def.flagKeys?.[f] !== undefined);
  return bound.length ? bound.map((f) => `--${f} (${def.flagKeys![f]})`).join(', ') : 'no flags';
}

/**
 * Checks a method's `flagKeys`: only common flags, each bound to a key of its
 * schema. A plugin's mistake, named in one line (registration may call this;
 * `methodConfigFromFlags` does before it binds anything).
 */
export function checkFlagKeys(def: Pick<MethodDefinition, 'id' | 'schema' | 'flagKeys'>): void {
  if (def.flagKeys === undefined) return;
  const owner = `method '${def.id}'`;
  if (typeof def.flagKeys !== 'object' || def.flagKeys === null) throw new PeftError(`${owner}: 'flagKeys' must be an object of flag names to config keys`);
  const keys = new Set(describeConfig(def.schema).map((k) => k.key));
  for (const [flag, key] of Object.entries(def.flagKeys)) {
    if (!METHOD_FLAGS.includes(flag as MethodFlag)) throw new PeftError(`${owner}: flagKeys names '${flag}', not a common flag (${METHOD_FLAGS.join(', ')})`);
    if (typeof key !== 'string' || !keys.has(key)) throw new PeftError(`${owner}: flagKeys binds --${flag} to '${String(key)}', which is not a key of its config (${[...keys].join(', ')})`);
  }
}

/**
 * The config keys the flags set, by the method's `flagKeys`; a flag the
 * method does not bind, or a `set` key its schema lacks, is an error naming
 * the flag (or key), the method and what it does accept. `set` wins over a
 * flag that names the same key.
 */
export function methodConfigFromFlags(def: MethodDefinition, values: MethodFlagValues): Record<string, unknown> {
  checkFlagKeys(def);
  const config: Record<string, unknown> = {};
  for (const flag of METHOD_FLAGS) {
    const value = values[flag];
    if (value === undefined) continue;
    const key = def.flagKeys?.[flag];
    if (key === undefined) {
      throw new PeftError(`--${flag} does not apply to method '${def.id}' (it binds ${describeFlagKeys(def)}; any key with --set key=value)`);
    }
    config[key] = value;
  }
  const set = values.set ?? {};
  if (Object.keys(set).length) {
    const keys = new Set(describeConfig(def.schema).map((k) => k.key));
    for (const [key, value] of Object.entries(set)) {
      if (!keys.has(key)) throw new PeftError(`--set '${key}': method '${def.id}' has no such key (its keys: ${[...keys].join(', ')})`);
      config[key] = value;
    }
  }
  return config;
}

/** A method config fitted to a run: validated, with the keys `bindRun` filled in. */
export interface BoundMethodConfig<C = Record<string, unknown>> {
  config: C;
  /** The keys the run's length set (those the user left unset), for messages and `peft plan`. */
  bound: Record<string, unknown>;
}

/**
 * Validates what the user set, after filling in, for a training run of
 * `run.totalSteps` steps, the keys the method's `bindRun` derives from the
 * run's length and the user did not set. `base` lies under both (an adapter's
 * saved config: it fixes the method's shape, not the next run's length, so a
 * bound key replaces its value). Without `run` (nothing is trained) the
 * config is validated as it is.
 */
export function bindMethodConfig<C>(
  def: MethodDefinition<C>,
  userConfig: Readonly<Record<string, unknown>>,
  run?: RunBinding,
  base: Readonly<Record<string, unknown>> = {},
): BoundMethodConfig<C> {
  const owner = `method '${def.id}'`;
  if (run !== undefined && !(Number.isSafeInteger(run.totalSteps) && run.totalSteps >= 1)) {
    throw new PeftError(`${owner}: a run must have at least 1 step, got ${run.totalSteps}`);
  }
  const derived = run && def.bindRun ? def.bindRun(userConfig, run) : {};
  const bound: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(derived)) if (userConfig[key] === undefined) bound[key] = value;
  const keys = Object.keys(bound);
  const context = keys.length ? ` (${keys.map((k) => `${k}=${JSON.stringify(bound[k])}`).join(', ')} from the run's ${run!.totalSteps} steps)` : '';
  return { config: parseConfig(def.schema, { ...base, ...bound, ...userConfig }, `${owner}${context}`), bound };
}
