// Random configs for any method, drawn from its zod schema: each scalar key
// (integer, number, boolean, enum) is either left to its default or drawn
// from a small range inside its bounds; lists and objects keep their defaults.
// Drawn configs may still be invalid (cross-key rules): the laws skip those.
import fc from 'fast-check';
import { z } from 'zod';
import type { ConfigSchema } from '../registry/config.js';

type JsonProp = Record<string, unknown>;

/** Up to `steps + 1` evenly spaced values in [lo, hi], dropping excluded ends. */
function evenly(lo: number, hi: number, loOpen: boolean, hiOpen: boolean, steps = 8): fc.Arbitrary<number> {
  const from = loOpen ? 1 : 0;
  const to = hiOpen ? steps - 1 : steps;
  return fc.integer({ min: from, max: Math.max(from, to) }).map((i) => lo + ((hi - lo) * i) / steps);
}

function propArbitrary(p: JsonProp): fc.Arbitrary<unknown> | undefined {
  if (Array.isArray(p.enum) && p.enum.length > 0) return fc.constantFrom(...(p.enum as unknown[]));
  const min = typeof p.minimum === 'number' ? p.minimum : undefined;
  const xmin = typeof p.exclusiveMinimum === 'number' ? p.exclusiveMinimum : undefined;
  const max = typeof p.maximum === 'number' && p.maximum < 1e15 ? p.maximum : undefined;
  const xmax = typeof p.exclusiveMaximum === 'number' ? p.exclusiveMaximum : undefined;
  switch (p.type) {
    case 'boolean':
      return fc.boolean();
    case 'integer': {
      const lo = min ?? (xmin !== undefined ? Math.floor(xmin) + 1 : 0);
      const hiBound = max ?? (xmax !== undefined ? Math.ceil(xmax) - 1 : Infinity);
      return fc.integer({ min: lo, max: Math.max(lo, Math.min(hiBound, lo + 6)) });
    }
    case 'number': {
      const lower = min ?? xmin;
      const upper = max ?? xmax;
      const lo = lower ?? (upper !== undefined ? upper - 4 : -2);
      const hi = upper ?? lo + 4;
      return evenly(lo, hi, min === undefined && xmin !== undefined, max === undefined && xmax !== undefined);
    }
    default:
      return undefined;
  }
}

/** Partial configs for `schema`: every drawn key within its declared bounds, others omitted (defaults). */
export function configArbitrary(schema: ConfigSchema<unknown>): fc.Arbitrary<Record<string, unknown>> {
  let json: { properties?: Record<string, JsonProp> };
  try {
    json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as typeof json;
  } catch {
    return fc.constant({});
  }
  const parts: Record<string, fc.Arbitrary<unknown>> = {};
  for (const [key, prop] of Object.entries(json.properties ?? {})) {
    const arb = propArbitrary(prop);
    if (arb) parts[key] = fc.option(arb, { nil: undefined, freq: 2 });
  }
  return fc.record(parts).map((r) => Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined)));
}
