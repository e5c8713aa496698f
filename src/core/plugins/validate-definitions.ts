// Checks what an external plugin registered before the host relies on it,
// once its register() has finished: a parity kind needs a `kind` name and a
// `run` function; methods and backbones pass registry/check-definition.ts
// (summary, create, a zod object schema, defaults that parse back to
// themselves, valid presets). The first problem is a PeftError naming the
// definition.
import { PeftError } from '../errors.js';
import { checkBackboneDefinition, checkMethodDefinition } from '../registry/check-definition.js';
import type { ParityKind } from '../parity/parity-kind.js';
import type { Registry } from '../registry/registry.js';

// The method and backbone checks already ran at registration, for built-in and
// external definitions alike; they run again here because a plugin may still
// change a definition object after registering it, within its register().
export { validateSchema } from '../registry/check-definition.js';
export { checkMethodDefinition as validateMethodDefinition, checkBackboneDefinition as validateBackboneDefinition };

export function validateParityKind(kind: ParityKind): void {
  if (typeof kind !== 'object' || kind === null || typeof kind.kind !== 'string' || !kind.kind) throw new PeftError("a parity kind needs a 'kind' name");
  if (typeof kind.run !== 'function') throw new PeftError(`parity kind '${kind.kind}': 'run' must be a function`);
}

/** Validates everything `origin` registered; the first problem is thrown. */
export function validateRegistered(registry: Registry, origin: string): void {
  const mine = registry.registeredBy(origin);
  for (const id of mine.methods) checkMethodDefinition(registry.methods().find((d) => d.id === id)!);
  for (const id of mine.backbones) checkBackboneDefinition(registry.backbones().find((d) => d.id === id)!);
  for (const k of mine.parityKinds) validateParityKind(registry.parityKind(k)!);
}
