// The checks a method or backbone definition passes when it is registered,
// built-in or external alike (Registry.registerMethod / registerBackbone call
// them), so a plugin author learns of a mistake at load time, in one line
// naming the key, and not from a run that fails later:
// - the shape of the definition: a summary, a `create` function, aliases as
//   strings, `laws` a function, a config schema that is a zod object (its
//   keys are listed by `peft info` and drawn by `peft verify`);
// - a method's default config: `schema.parse({})` succeeds (every key has a
//   default: `peft train --method x` with no --set must work) and re-parses to
//   the same value (zod does not check a default against its own bounds, so
//   `z.number().min(1).default(0)` parses {} to 0, a value it refuses when a
//   saved adapter config is read back);
// - a backbone's presets: each parses, and re-parses to the same value.
import { isDeepStrictEqual } from 'node:util';
import { z } from 'zod';
import { PeftError } from '../errors.js';
import { describeConfig, type ConfigSchema } from './config.js';
import type { BackboneDefinition, BackboneFlag, MethodDefinition } from './definitions.js';
import { checkFlagKeys } from './method-config.js';

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]!;
}

/** A zod object schema: `safeParse` works on any input and its keys can be listed. */
export function validateSchema(schema: unknown, owner: string): void {
  const s = schema as Partial<ConfigSchema<unknown>> | undefined;
  if (!s || typeof s.safeParse !== 'function') throw new PeftError(`${owner}: 'schema' is not a zod schema (no safeParse)`);
  let result: unknown;
  try {
    result = s.safeParse({});
  } catch (err) {
    throw new PeftError(`${owner}: its config schema throws when validating {} (${firstLine(err)})`);
  }
  if (typeof (result as { success?: unknown })?.success !== 'boolean') throw new PeftError(`${owner}: its config schema's safeParse returned no result`);
  let json: { type?: unknown };
  try {
    json = z.toJSONSchema(schema as z.ZodType, { io: 'input', unrepresentable: 'any' }) as typeof json;
  } catch (err) {
    throw new PeftError(`${owner}: its config schema cannot be described (${firstLine(err)}); build it with the host's z (zod 4) as z.object({...})`);
  }
  if (json.type !== 'object') throw new PeftError(`${owner}: its config schema must be a zod object (z.object or z.strictObject), not ${String(json.type ?? 'that')}`);
}

type Issue = z.core.$ZodIssue;

function keyOf(issue: Issue): string {
  return issue.path.map(String).join('.') || '(config)';
}

/** The value at `issue.path` in `value`, for messages. */
function at(value: unknown, path: PropertyKey[]): unknown {
  return path.reduce<unknown>((v, k) => (v !== null && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[k] : undefined), value);
}

/** The first key whose value differs between two parsed configs (deeply), or undefined. */
function firstDifference(a: Record<string, unknown>, b: Record<string, unknown>): string | undefined {
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) if (!isDeepStrictEqual(a[k], b[k])) return k;
  return undefined;
}

/**
 * `input` parses (a key that is missing and has no default is named) and the
 * result re-parses to itself (a default outside its own bounds is named, with
 * the bound). Returns the parsed config.
 */
export function checkDefaults(schema: ConfigSchema<unknown>, input: Record<string, unknown>, owner: string): unknown {
  const first = schema.safeParse(input);
  if (!first.success) {
    const issue = first.error.issues[0]!;
    if (issue.code === 'invalid_type' && issue.path.length > 0 && at(input, issue.path) === undefined) {
      const unset = Object.keys(input).length > 0 ? 'is not set and ' : '';
      throw new PeftError(`${owner}: config key '${keyOf(issue)}' ${unset}has no default (every key needs one: .default(...) in the schema)`);
    }
    throw new PeftError(`${owner}: its default config is invalid: '${keyOf(issue)}': ${issue.message}`);
  }
  const value = first.data;
  const again = schema.safeParse(value);
  if (!again.success) {
    const issue = again.error.issues[0]!;
    throw new PeftError(
      `${owner}: the default of config key '${keyOf(issue)}' (${JSON.stringify(at(value, issue.path))}) is outside its own bounds: ${issue.message}`,
    );
  }
  if (!isDeepStrictEqual(again.data, value)) {
    const key = value && again.data && typeof value === 'object' ? firstDifference(value as Record<string, unknown>, again.data as Record<string, unknown>) : undefined;
    const what = key === undefined ? '' : `: '${key}' is ${JSON.stringify((value as Record<string, unknown>)[key])}, then ${JSON.stringify((again.data as Record<string, unknown>)[key])}`;
    throw new PeftError(`${owner}: its default config does not parse back to itself${what} (a transform in the schema? configs are saved and read back)`);
  }
  return value;
}

/** A method definition, at registration; the first problem is a PeftError naming the method. */
export function checkMethodDefinition(def: MethodDefinition): void {
  if (typeof def !== 'object' || def === null) throw new PeftError('a method definition must be an object');
  const owner = `method '${def.id}'`;
  if (typeof def.summary !== 'string') throw new PeftError(`${owner}: 'summary' must be a string`);
  if (typeof def.create !== 'function') throw new PeftError(`${owner}: 'create' must be a function (config) => LayerInjector`);
  if (def.aliases !== undefined && !(Array.isArray(def.aliases) && def.aliases.every((a) => typeof a === 'string'))) {
    throw new PeftError(`${owner}: 'aliases' must be a list of strings`);
  }
  if (def.laws !== undefined && typeof def.laws !== 'function') throw new PeftError(`${owner}: 'laws' must be a function (def, options) => Law[]`);
  validateSchema(def.schema, owner);
  checkDefaults(def.schema, {}, owner);
  checkFlagKeys(def);
}

/** A backbone definition, at registration; the first problem is a PeftError naming the backbone (and preset). */
export function checkBackboneDefinition(def: BackboneDefinition): void {
  if (typeof def !== 'object' || def === null) throw new PeftError('a backbone definition must be an object');
  const owner = `backbone '${def.id}'`;
  if (typeof def.summary !== 'string') throw new PeftError(`${owner}: 'summary' must be a string`);
  if (typeof def.create !== 'function') throw new PeftError(`${owner}: 'create' must be a function (config, preset) => Backbone`);
  if (def.aliases !== undefined && !(Array.isArray(def.aliases) && def.aliases.every((a) => typeof a === 'string'))) {
    throw new PeftError(`${owner}: 'aliases' must be a list of strings`);
  }
  if (typeof def.presets !== 'object' || def.presets === null) throw new PeftError(`${owner}: 'presets' must be an object of named configs`);
  validateSchema(def.schema, owner);
  for (const [name, preset] of Object.entries(def.presets)) {
    if (typeof preset !== 'object' || preset === null) throw new PeftError(`${owner} preset '${name}': must be an object of config values`);
    checkDefaults(def.schema, preset, `${owner} preset '${name}'`);
  }
  if (def.flagKeys !== undefined) {
    const keys = new Set(describeConfig(def.schema).map((k) => k.key));
    for (const [flag, key] of Object.entries(def.flagKeys ?? {})) {
      if (!BACKBONE_FLAGS.includes(flag as BackboneFlag)) throw new PeftError(`${owner}: flagKeys names '${flag}', not a common backbone flag (${BACKBONE_FLAGS.join(', ')})`);
      if (typeof key !== 'string' || !keys.has(key)) throw new PeftError(`${owner}: flagKeys binds --${flag} to '${String(key)}', which is not a key of its config`);
    }
  }
}

const BACKBONE_FLAGS: readonly BackboneFlag[] = ['image-size'];
