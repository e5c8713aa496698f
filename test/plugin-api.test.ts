// The plugin contract's types match what the loader does: `register(registry,
// peftjs)` with `peftjs` the public API, as `RegisterFunction` and `PeftjsApi`
// of src/index.ts say. The type-level checks fail `npm run typecheck`
// (tsconfig.test.json) when the types drift; the run-time ones check that a
// plugin loaded by the host receives exactly that API.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, expectTypeOf, it } from 'vitest';
import { createDefaultRegistry } from '../src/builtins.js';
import * as peftjs from '../src/index.js';
import type { PeftjsApi, Registry, RegisterFunction } from '../src/index.js';
import { loadPlugins } from '../src/core/plugins/load-plugins.js';

const tmp = mkdtempSync(join(tmpdir(), 'peftjs-plugin-api-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('the plugin API types', () => {
  it('RegisterFunction is (registry, peftjs: PeftjsApi), and PeftjsApi is the public API', () => {
    expectTypeOf<Parameters<RegisterFunction>>().toEqualTypeOf<[Registry, PeftjsApi]>();
    expectTypeOf<ReturnType<RegisterFunction>>().toEqualTypeOf<void | Promise<void>>();
    // the API's members keep their own types (not `unknown` or `{}`)
    expectTypeOf<PeftjsApi['z']>().toEqualTypeOf<typeof peftjs.z>();
    expectTypeOf<PeftjsApi['tf']>().toEqualTypeOf<typeof peftjs.tf>();
    expectTypeOf<PeftjsApi['Registry']>().toEqualTypeOf<typeof peftjs.Registry>();
    expectTypeOf<PeftjsApi['compose']>().toEqualTypeOf<typeof peftjs.compose>();
    // the module namespace is one (what the host hands over)
    expectTypeOf(peftjs).toExtend<PeftjsApi>();
    // what the registry and the loader call is that type, and what they hand over is the API
    expectTypeOf<Parameters<Registry['load']>[1]>().toEqualTypeOf<RegisterFunction>();
    expectTypeOf<Registry['api']>().toEqualTypeOf<PeftjsApi>();
    expectTypeOf<NonNullable<Parameters<typeof loadPlugins>[2]>['api']>().toEqualTypeOf<PeftjsApi | undefined>();
  });

  it('a plugin written against the types compiles; a wrong second argument does not', async () => {
    const good: RegisterFunction = (registry, api) => {
      registry.registerMethod({ id: 'typed', summary: 'typed', schema: api.z.object({ k: api.z.number().default(1) }), create: () => { throw new api.PeftError('unused'); } });
    };
    // @ts-expect-error the second argument is the public API, not a string
    const wrongApi: RegisterFunction = (_registry, api: string) => void api;
    // @ts-expect-error the API has no such member
    const unknownMember: RegisterFunction = (_registry, api) => void api.noSuchExport;
    void wrongApi;
    void unknownMember;
    const registry = await createDefaultRegistry();
    await registry.load({ name: 'typed-plugin', path: tmp }, good);
    expect(registry.method('typed').summary).toBe('typed');
  });
});

describe('the API a plugin receives', () => {
  it('is the public API module itself, for built-in and external plugins alike', async () => {
    const registry = await createDefaultRegistry();
    expect(registry.api).toBe(peftjs);
    let seen: unknown;
    await registry.load({ name: 'inline', path: tmp }, (_r, api) => void (seen = api));
    expect(seen).toBe(peftjs);
    const dir = join(tmp, 'external');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'external', type: 'module' }));
    writeFileSync(join(dir, 'index.js'), 'export let got; export function register(registry, peftjs) { got = peftjs; }');
    const [result] = await loadPlugins(registry, [{ spec: dir, source: 'flag' }]);
    expect(result!.error).toBeUndefined();
    const mod = (await import(join(dir, 'index.js'))) as { got: unknown };
    expect(mod.got).toBe(peftjs);
  });
});
