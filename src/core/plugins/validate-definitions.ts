// Checks what an external plugin registered before the host relies on it:
// a method or backbone needs a summary, a `create` function, and a config
// schema that is a zod object (its keys are listed by `peft list`/`peft info`
// and drawn by `peft verify`); a backbone's presets must be valid configs; a
// parity kind needs a `kind` name and a `run` function. The first problem is
// a PeftError naming the definition.
import { z } from 'zod';
import { PeftError } from '../errors.js';
import { parseConfig, type ConfigSchema } from '../registry/config.js';
import type { BackboneDefinition, MethodDefinition } from '../registry/definitions.js';
import type { ParityKind } from '../parity/parity-kind.js';
import type { Registry } from '../registry/registry.js';

function message(err: unknown): string {
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
    throw new PeftError(`${owner}: its config schema throws when validating {} (${message(err)})`);
  }
  if (typeof (result as { success?: unknown })?.success !== 'boolean') throw new PeftError(`${owner}: its config schema's safeParse returned no result`);
  let json: { type?: unknown };
  try {
    json = z.toJSONSchema(schema as z.ZodType, { io: 'input', unrepresentable: 'any' }) as typeof json;
  } catch (err) {
    throw new PeftError(`${owner}: its config schema cannot be described (${message(err)}); build it with the host's z (zod 4) as z.object({...})`);
  }
  if (json.type !== 'object') throw new PeftError(`${owner}: its config schema must be a zod object (z.object or z.strictObject), not ${String(json.type ?? 'that')}`);
}

export function validateMethodDefinition(def: MethodDefinition): void {
  const owner = `method '${def?.id}'`;
  if (typeof def !== 'object' || def === null) throw new PeftError('a method definition must be an object');
  if (typeof def.summary !== 'string') throw new PeftError(`${owner}: 'summary' must be a string`);
  if (typeof def.create !== 'function') throw new PeftError(`${owner}: 'create' must be a function (config) => LayerInjector`);
  if (def.aliases !== undefined && !(Array.isArray(def.aliases) && def.aliases.every((a) => typeof a === 'string'))) {
    throw new PeftError(`${owner}: 'aliases' must be a list of strings`);
  }
  validateSchema(def.schema, owner);
}

export function validateBackboneDefinition(def: BackboneDefinition): void {
  const owner = `backbone '${def?.id}'`;
  if (typeof def !== 'object' || def === null) throw new PeftError('a backbone definition must be an object');
  if (typeof def.summary !== 'string') throw new PeftError(`${owner}: 'summary' must be a string`);
  if (typeof def.create !== 'function') throw new PeftError(`${owner}: 'create' must be a function (config, preset) => Backbone`);
  if (typeof def.presets !== 'object' || def.presets === null) throw new PeftError(`${owner}: 'presets' must be an object of named configs`);
  validateSchema(def.schema, owner);
  for (const [name, preset] of Object.entries(def.presets)) parseConfig(def.schema, preset, `${owner} preset '${name}'`);
}

export function validateParityKind(kind: ParityKind): void {
  if (typeof kind !== 'object' || kind === null || typeof kind.kind !== 'string' || !kind.kind) throw new PeftError("a parity kind needs a 'kind' name");
  if (typeof kind.run !== 'function') throw new PeftError(`parity kind '${kind.kind}': 'run' must be a function`);
}

/** Validates everything `origin` registered; the first problem is thrown. */
export function validateRegistered(registry: Registry, origin: string): void {
  const mine = registry.registeredBy(origin);
  for (const id of mine.methods) validateMethodDefinition(registry.methods().find((d) => d.id === id)!);
  for (const id of mine.backbones) validateBackboneDefinition(registry.backbones().find((d) => d.id === id)!);
  for (const k of mine.parityKinds) validateParityKind(registry.parityKind(k)!);
}
