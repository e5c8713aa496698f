// Registration refuses a method whose default config cannot be built or does
// not parse back to itself, and a backbone whose preset is one, naming the
// key (and the bound); through Registry.registerMethod / registerBackbone and
// through an external plugin's register(), which is rolled back.
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { PeftError } from '../errors.js';
import { ToyBackbone } from '../testing/toy-backbone.js';
import { checkDefaults, checkMethodDefinition } from './check-definition.js';
import type { BackboneDefinition, MethodDefinition } from './definitions.js';
import { Registry } from './registry.js';

/** A method definition with `schema`; nothing is ever created from it. */
function method(id: string, schema: z.ZodType, extra: Partial<MethodDefinition> = {}): MethodDefinition {
  return {
    id,
    summary: `test method ${id}`,
    schema,
    create: () => {
      throw new Error('unused');
    },
    ...extra,
  };
}

function backbone(id: string, schema: z.ZodType, presets: Record<string, Record<string, unknown>>): BackboneDefinition {
  return {
    id,
    summary: `test backbone ${id}`,
    schema,
    presets,
    defaultPreset: Object.keys(presets)[0]!,
    create: (c: { depth: number }) => new ToyBackbone({ depth: c.depth, dim: 4, hidden: 4, seed: 1 }),
  };
}

function refusal(f: () => void): string {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(PeftError);
    return (err as Error).message;
  }
  throw new Error('expected a PeftError, nothing was thrown');
}

describe('a method is refused at registration', () => {
  it('when a config key has no default, naming the key', () => {
    const r = new Registry();
    const msg = refusal(() => r.registerMethod(method('nodefault', z.strictObject({ scale: z.number().default(1), rank: z.number().int().min(1) }))));
    expect(msg).toBe("method 'nodefault': config key 'rank' has no default (every key needs one: .default(...) in the schema)");
    expect(r.methods()).toEqual([]);
  });

  it('when a default is outside its own bounds, naming the key, the value and the bound', () => {
    const r = new Registry();
    const msg = refusal(() => r.registerMethod(method('outofbounds', z.strictObject({ gain: z.number().min(1).default(0) }))));
    expect(msg).toMatch(/^method 'outofbounds': the default of config key 'gain' \(0\) is outside its own bounds: .*>=1/);
    const enumMsg = refusal(() => r.registerMethod(method('badenum', z.object({ mode: z.enum(['a', 'b']).default('c' as 'a') }))));
    expect(enumMsg).toMatch(/^method 'badenum': the default of config key 'mode' \("c"\) is outside its own bounds/);
    expect(r.methods()).toEqual([]);
  });

  it('when its default config breaks a rule across keys, naming the key', () => {
    const schema = z
      .strictObject({ lo: z.number().default(2), hi: z.number().default(1) })
      .refine((c) => c.lo <= c.hi, { message: 'lo must not exceed hi', path: ['lo'] });
    expect(refusal(() => checkMethodDefinition(method('crossed', schema)))).toBe("method 'crossed': its default config is invalid: 'lo': lo must not exceed hi");
  });

  it('when its default config does not parse back to itself (a transform)', () => {
    const schema = z.strictObject({ r: z.number().default(4).transform((v) => v * 2) });
    expect(refusal(() => checkMethodDefinition(method('doubling', schema)))).toBe(
      "method 'doubling': its default config does not parse back to itself: 'r' is 8, then 16 (a transform in the schema? configs are saved and read back)",
    );
  });

  it("when 'laws' is not a function", () => {
    const bad = method('badlaws', z.object({}), { laws: [] as unknown as MethodDefinition['laws'] });
    expect(refusal(() => new Registry().registerMethod(bad))).toBe("method 'badlaws': 'laws' must be a function (def, options) => Law[]");
  });

  it('but not when every default parses back to itself (nested objects and lists included)', () => {
    const r = new Registry();
    const schema = z.strictObject({
      r: z.number().int().min(1).default(4),
      targets: z.array(z.string()).default(['mlp.*']),
      nested: z.object({ a: z.boolean().default(true) }).default({ a: true }),
      maybe: z.number().nullable().default(null),
      optional: z.number().min(1).optional(),
    });
    r.registerMethod(method('fine', schema));
    expect(r.method('fine').id).toBe('fine');
  });

  it('in an external plugin: the plugin is refused by name and rolled back', async () => {
    const r = new Registry();
    const load = r.load("plugin 'broken-defaults'", (reg) => {
      reg.registerMethod(method('first_ok', z.object({ k: z.number().default(1) })));
      reg.registerMethod(method('second_bad', z.object({ k: z.number().max(1).default(2) })));
    });
    await expect(load).rejects.toThrow(/^method 'second_bad': the default of config key 'k' \(2\) is outside its own bounds/);
    expect(r.unregisterOrigin("plugin 'broken-defaults'")).toBe(1);
    expect(r.methods()).toEqual([]);
  });
});

describe('a backbone is refused at registration', () => {
  const schema = z.strictObject({ depth: z.number().int().min(1), width: z.number().int().min(1).default(8) });

  it('when a preset leaves a key without a default unset', () => {
    const msg = refusal(() => new Registry().registerBackbone(backbone('nodepth', schema, { tiny: { width: 4 } })));
    expect(msg).toBe("backbone 'nodepth' preset 'tiny': config key 'depth' is not set and has no default (every key needs one: .default(...) in the schema)");
  });

  it('when a preset is outside the bounds, or its defaults are', () => {
    expect(refusal(() => new Registry().registerBackbone(backbone('zero', schema, { tiny: { depth: 0 } })))).toMatch(
      /^backbone 'zero' preset 'tiny': its default config is invalid: 'depth': .*>=1/,
    );
    const lowDefault = z.strictObject({ depth: z.number().int().min(1).default(1), width: z.number().min(2).default(1) });
    expect(refusal(() => new Registry().registerBackbone(backbone('thin', lowDefault, { tiny: {} })))).toMatch(
      /^backbone 'thin' preset 'tiny': the default of config key 'width' \(1\) is outside its own bounds: .*>=2/,
    );
  });

  it('when its flagKeys names a flag it cannot bind, or a key its config lacks', () => {
    const odd = { ...backbone('odd', schema, { tiny: { depth: 1 } }), flagKeys: { 'img-size': 'width' } } as unknown as BackboneDefinition;
    expect(refusal(() => new Registry().registerBackbone(odd))).toBe("backbone 'odd': flagKeys names 'img-size', not a common backbone flag (image-size)");
    const missing = { ...backbone('missing', schema, { tiny: { depth: 1 } }), flagKeys: { 'image-size': 'img_size' } };
    expect(refusal(() => new Registry().registerBackbone(missing))).toBe("backbone 'missing': flagKeys binds --image-size to 'img_size', which is not a key of its config");
    const methodOdd = method('oddflags', z.strictObject({ r: z.number().default(4) }), { flagKeys: { rank: 'rank' } });
    expect(refusal(() => new Registry().registerMethod(methodOdd))).toMatch(/^method 'oddflags': flagKeys binds --rank to 'rank', which is not a key of its config/);
  });

  it('but not when every preset parses back to itself (keys without a default set by every preset)', () => {
    const r = new Registry();
    r.registerBackbone(backbone('fine', schema, { tiny: { depth: 1 }, deep: { depth: 3, width: 16 } }));
    expect(r.backbone('fine').id).toBe('fine');
  });
});

describe('checkDefaults', () => {
  it('returns the parsed config', () => {
    expect(checkDefaults(z.object({ a: z.number().default(1), b: z.string().default('x') }), { b: 'y' }, 'o')).toEqual({ a: 1, b: 'y' });
  });
});
