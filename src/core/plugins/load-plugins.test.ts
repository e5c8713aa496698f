import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { container as hostRootContainer } from 'tsyringe';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { registerToys } from '../../../test/support/toy-plugins.js';
import { PeftError } from '../errors.js';
import { Registry } from '../registry/registry.js';
import * as api from '../../index.js';
import { addLinkedPlugin, peftConfigDir, readLinkedPlugins, removeLinkedPlugin } from './linked-plugins.js';
import { linkPlugin } from './link.js';
import { loadExternalPlugins, loadPlugins, pluginRequests, pluginWarning, splitPluginList, type OclifPluginLike } from './load-plugins.js';
import { resolvePluginSpec } from './plugin-spec.js';
import { validateSchema } from './validate-definitions.js';

const tmp = mkdtempSync(join(tmpdir(), 'peftjs-plugins-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const nodeModules = fileURLToPath(new URL('../../../node_modules/', import.meta.url));

let n = 0;
/** A plugin folder: package.json + files. */
function pluginDir(pkg: Record<string, unknown> | undefined, files: Record<string, string>): string {
  const dir = join(tmp, `p${n++}`);
  mkdirSync(dir, { recursive: true });
  if (pkg) writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module', ...pkg }));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

/** Plugin source registering a method `id` with the host's zod (handed in as `peftjs.z`). */
const methodSource = (id: string, extra = '') => `
export function register(registry, peftjs) {
  registry.registerMethod({ id: '${id}', summary: 'test method ${id}', schema: peftjs.z.object({ k: peftjs.z.number().default(1) }), create: () => { throw new Error('unused'); } });
  ${extra}
}`;

/** The toys, in a registry that hands plugins the public API (as the host's does). */
async function toyRegistry(): Promise<Registry> {
  const r = new Registry({ api });
  await r.load('built-in toys', registerToys);
  return r;
}

describe('resolving a plugin spec', () => {
  it('a folder with "peftjs.register", a folder without package.json, a .js file, an installed package', () => {
    const a = pluginDir({ name: 'pa', peftjs: { register: './lib/reg.js' } }, { 'lib/reg.js': methodSource('a') });
    expect(resolvePluginSpec(a)).toEqual([{ name: 'pa', root: a, entry: join(a, 'lib/reg.js'), contract: 'register' }]);
    const b = pluginDir(undefined, { 'index.js': methodSource('b') });
    expect(resolvePluginSpec(b)[0]!.entry).toBe(join(b, 'index.js'));
    expect(resolvePluginSpec(join(b, 'index.js'))[0]).toMatchObject({ name: 'index', contract: 'register' });
    const c = pluginDir({ name: 'pc', exports: { '.': { import: './esm.js' } } }, { 'esm.js': methodSource('c') });
    expect(resolvePluginSpec(c)[0]!.entry).toBe(join(c, 'esm.js'));
    const project = join(tmp, 'project');
    mkdirSync(join(project, 'node_modules', '@me', 'pd'), { recursive: true });
    writeFileSync(join(project, 'node_modules', '@me', 'pd', 'package.json'), JSON.stringify({ name: '@me/pd', main: 'main.js' }));
    writeFileSync(join(project, 'node_modules', '@me', 'pd', 'main.js'), methodSource('d'));
    mkdirSync(join(project, 'sub'), { recursive: true });
    expect(resolvePluginSpec('@me/pd', join(project, 'sub'))[0]).toMatchObject({ name: '@me/pd', entry: join(project, 'node_modules/@me/pd/main.js') });
  });

  it('an oclif plugin with a peft:register hook', () => {
    const d = pluginDir({ name: 'po', oclif: { hooks: { 'peft:register': './hooks/reg' } } }, { 'hooks/reg.js': 'export default async function () {}' });
    expect(resolvePluginSpec(d)[0]).toMatchObject({ contract: 'hook', entry: join(d, 'hooks/reg.js') });
  });

  it('names what is missing', () => {
    expect(() => resolvePluginSpec('./nope', tmp)).toThrow(/nope: no such file or folder/);
    expect(() => resolvePluginSpec('not-installed-pkg', tmp)).toThrow(/no package 'not-installed-pkg' installed in node_modules/);
    const bad = pluginDir({ name: 'pb', peftjs: { register: './missing.js' } }, {});
    expect(() => resolvePluginSpec(bad)).toThrow(/"peftjs.register" '.\/missing.js' names no file/);
  });
});

describe('loading plugins', () => {
  it('loads a plugin through registry.load with the host API, attributed to the plugin', async () => {
    const registry = await toyRegistry();
    const dir = pluginDir({ name: 'good-plugin', peftjs: { register: './index.js' } }, { 'index.js': methodSource('good') });
    const [r] = await loadPlugins(registry, [{ spec: dir, source: 'flag' }], { api });
    expect(r).toMatchObject({ name: 'good-plugin', ok: true, registered: { methods: ['good'], backbones: [], parityKinds: [] }, root: dir });
    expect(registry.originOf('good')).toBe("plugin 'good-plugin'");
    expect(registry.methods().map((m) => m.id)).toEqual(['scale', 'good']);
  });

  it("records each id's plugin: package name and version and folder, or a file's name and path", async () => {
    const registry = await toyRegistry();
    const dir = pluginDir({ name: '@me/versioned', version: '1.2.3', peftjs: { register: './lib/index.js' } }, { 'lib/index.js': methodSource('versioned') });
    const bare = pluginDir(undefined, { 'solo.js': methodSource('solo') });
    const results = await loadPlugins(registry, [{ spec: dir, source: 'flag' }, { spec: join(bare, 'solo.js'), source: 'env' }]);
    expect(results.map((r) => [r.name, r.version, r.ok])).toEqual([['@me/versioned', '1.2.3', true], ['solo', undefined, true]]);
    expect(registry.provenance('method', 'versioned')).toEqual({ name: '@me/versioned', version: '1.2.3', path: dir });
    expect(registry.provenance('method', 'solo')).toEqual({ name: 'solo', path: join(bare, 'solo.js') });
    const oclif = await loadPlugins(await toyRegistry(), [], {
      oclif: { plugins: [{ name: 'oc', version: '0.0.9', root: bare, hooks: { 'peft:register': [{ target: './h', identifier: 'default' }] } }], load: async () => ({ default: (o: { registry: Registry; peftjs: typeof api }) => o.registry.registerMethod({ id: 'oc', summary: '', schema: o.peftjs.z.object({}), create() { throw new Error('unused'); } }) }) },
    });
    expect(oclif[0]).toMatchObject({ name: 'oc', version: '0.0.9', ok: true });
  });

  it('hands plugins the registry\'s API unless told another', async () => {
    const registry = await toyRegistry();
    const dir = pluginDir({ name: 'api-check' }, { 'index.js': 'export let got; export function register(r, peftjs) { got = peftjs; }' });
    await loadPlugins(registry, [{ spec: dir, source: 'flag' }]);
    const mod = (await import(join(dir, 'index.js'))) as { got: unknown };
    expect(mod.got).toBe(api);
    const other = { z: api.z } as never;
    await loadPlugins(await toyRegistry(), [{ spec: dir, source: 'flag' }], { api: other });
    expect(mod.got).toBe(other);
  });

  it('a default export, or a default export with register, works too', async () => {
    const registry = await toyRegistry();
    const body = (id: string) => `registry.registerMethod({ id: '${id}', summary: '', schema: peftjs.z.object({}), create() {} });`;
    const f = pluginDir(undefined, { 'index.js': `export default function (registry, peftjs) { ${body('deffn')} }` });
    const g = pluginDir(undefined, { 'index.js': `export default { register(registry, peftjs) { ${body('defobj')} } };` });
    const results = await loadPlugins(registry, [{ spec: f, source: 'flag' }, { spec: g, source: 'flag' }], { api });
    expect(results.map((r) => r.error)).toEqual([undefined, undefined]);
    expect(registry.methods().map((m) => m.id)).toEqual(['scale', 'deffn', 'defobj']);
  });

  it('a failing, duplicating or invalid plugin is reported by name, rolled back, and the others still load', async () => {
    const registry = await toyRegistry();
    const throws = pluginDir({ name: 'throws' }, { 'index.js': 'export function register() { throw new Error("boom\\nsecond line"); }' });
    const halfway = pluginDir({ name: 'halfway' }, { 'index.js': methodSource('half', "registry.registerMethod({ id: 'half2', summary: '', schema: peftjs.z.object({}), create() {} }); throw new Error('late failure');") });
    const dup = pluginDir({ name: 'dup' }, { 'index.js': methodSource('first_of_dup', "registry.registerMethod({ id: 'toy_scale', summary: '', schema: peftjs.z.object({}), create() {} });") });
    const badSchema = pluginDir({ name: 'bad-schema' }, { 'index.js': "export function register(r, p) { r.registerMethod({ id: 'badschema', summary: '', schema: p.z.string(), create() {} }); }" });
    const noSchema = pluginDir({ name: 'no-schema' }, { 'index.js': "export function register(r) { r.registerMethod({ id: 'noschema', summary: '', schema: {}, create() {} }); }" });
    const noRegister = pluginDir({ name: 'no-register' }, { 'index.js': 'export const x = 1;' });
    const syntax = pluginDir({ name: 'syntax' }, { 'index.js': 'export function register( {' });
    const good = pluginDir({ name: 'still-good' }, { 'index.js': methodSource('stillgood') });
    const results = await loadPlugins(
      registry,
      [throws, halfway, dup, badSchema, noSchema, noRegister, syntax, good, join(tmp, 'absent')].map((spec) => ({ spec, source: 'env' as const })),
      { api },
    );
    const by = Object.fromEntries(results.map((r) => [r.name, r]));
    expect(by.throws!.error).toBe('boom second line');
    expect(by.halfway!.error).toBe('late failure');
    expect(by.dup!.error).toBe("method 'toy_scale' from plugin 'dup' is already registered by built-in toys");
    expect(by['bad-schema']!.error).toMatch(/^method 'badschema': its config schema must be a zod object/);
    expect(by['no-schema']!.error).toBe("method 'noschema': 'schema' is not a zod schema (no safeParse)");
    expect(by['no-register']!.error).toMatch(/exports no register function/);
    expect(by.syntax!.ok).toBe(false);
    expect(by['still-good']!.ok).toBe(true);
    expect(results.find((r) => r.spec.endsWith('absent'))!.error).toMatch(/no such file or folder/);
    // nothing of a failed plugin stays: the built-ins and the good plugin only
    expect(registry.methods().map((m) => m.id)).toEqual(['scale', 'stillgood']);
    expect(registry.originOf('half')).toBeUndefined();
    expect(results.filter((r) => !r.ok).every((r) => r.registered.methods.length === 0)).toBe(true);
    expect(pluginWarning(by.throws!)).toBe("peft: warning: plugin 'throws' failed to load: boom second line");
  });

  it('a plugin with its own copy of tsyringe registers into the host registry', async () => {
    const dir = pluginDir({ name: 'own-tsyringe', peftjs: { register: './index.js' } }, {
      'index.js': `import { container } from 'tsyringe';
export const pluginContainer = container;
export function register(registry, peftjs) {
  // the plugin's own tsyringe root container is not the host's: it only ever uses the registry it is given
  registry.registerMethod({ id: 'owntsy', summary: 'registered through the host registry', schema: peftjs.z.object({}), create() {} });
}`,
    });
    mkdirSync(join(dir, 'node_modules'), { recursive: true });
    cpSync(join(nodeModules, 'tsyringe'), join(dir, 'node_modules', 'tsyringe'), { recursive: true });
    cpSync(join(nodeModules, 'tslib'), join(dir, 'node_modules', 'tslib'), { recursive: true });
    const registry = await toyRegistry();
    const [r] = await loadPlugins(registry, [{ spec: dir, source: 'flag' }], { api });
    expect(r!.error).toBeUndefined();
    expect(registry.method('owntsy').summary).toBe('registered through the host registry');
    const mod = (await import(join(dir, 'index.js'))) as { pluginContainer: unknown };
    expect(mod.pluginContainer).toBeDefined();
    expect(mod.pluginContainer).not.toBe(hostRootContainer);
  });

  it('an oclif-style peft:register hook, from a folder or from an installed oclif plugin', async () => {
    const hook = `export default async function (options) {
  this.debug('registering');
  options.registry.registerMethod({ id: options.registry === undefined ? 'x' : 'HOOKID', summary: '', schema: options.peftjs.z.object({}), create() {} });
}`;
    const dir = pluginDir({ name: 'oclif-hook', oclif: { hooks: { 'peft:register': './hook.js' } } }, { 'hook.js': hook.replace('HOOKID', 'fromhook') });
    const registry = await toyRegistry();
    const installed: OclifPluginLike = { name: 'installed-oclif', root: tmp, hooks: { 'peft:register': [{ target: './x', identifier: 'default' }] } };
    const rootPlugin: OclifPluginLike = { name: 'peftjs', root: tmp, isRoot: true, hooks: { 'peft:register': [{ target: './y', identifier: 'default' }] } };
    const hookFile = join(pluginDir(undefined, { 'h.js': hook.replace('HOOKID', 'fromoclif') }), 'h.js');
    const results = await loadPlugins(registry, [{ spec: dir, source: 'linked' }], {
      api,
      oclif: { plugins: [installed, rootPlugin], load: async () => (await import(hookFile)) as Record<string, unknown> },
    });
    expect(results.map((r) => [r.name, r.source, r.ok])).toEqual([
      ['oclif-hook', 'linked', true],
      ['installed-oclif', 'oclif', true],
    ]);
    expect(registry.originOf('fromhook')).toBe("plugin 'oclif-hook'");
    expect(registry.originOf('fromoclif')).toBe("plugin 'installed-oclif'");
  });

  it('the same plugin requested twice loads once', async () => {
    const registry = await toyRegistry();
    const dir = pluginDir({ name: 'twice' }, { 'index.js': methodSource('twice') });
    const results = await loadPlugins(registry, [{ spec: dir, source: 'linked' }, { spec: `${dir}/`, source: 'flag' }], { api });
    expect(results).toHaveLength(1);
    expect(results[0]!.ok).toBe(true);
  });
});

describe('plugin sources', () => {
  it('PEFT_PLUGINS splits on "," and ":"', () => {
    expect(splitPluginList('a,b:c, ./d ,,')).toEqual(['a', 'b', 'c', './d']);
    expect(splitPluginList(undefined)).toEqual([]);
  });

  it('linked (config dir), then PEFT_PLUGINS, then --plugin', () => {
    const configDir = join(tmp, 'cfg1');
    addLinkedPlugin(configDir, { name: 'l1', path: '/x/l1' });
    addLinkedPlugin(configDir, { name: 'l2', path: '/x/l2' });
    addLinkedPlugin(configDir, { name: 'l1', path: '/x/l1-new' });
    expect(readLinkedPlugins(configDir).map((p) => [p.name, p.path])).toEqual([['l2', '/x/l2'], ['l1', '/x/l1-new']]);
    const reqs = pluginRequests({ configDir, env: { PEFT_PLUGINS: 'e1,e2' }, flags: ['f1'] });
    expect(reqs).toEqual([
      { spec: '/x/l2', source: 'linked' },
      { spec: '/x/l1-new', source: 'linked' },
      { spec: 'e1', source: 'env' },
      { spec: 'e2', source: 'env' },
      { spec: 'f1', source: 'flag' },
    ]);
    expect(removeLinkedPlugin(configDir, 'l2').map((p) => p.name)).toEqual(['l2']);
    expect(() => removeLinkedPlugin(configDir, 'zz')).toThrow("no linked plugin 'zz' (linked: l1)");
    expect(peftConfigDir({ PEFT_CONFIG_DIR: '/c' })).toBe('/c');
    expect(peftConfigDir({ XDG_CONFIG_HOME: '/xdg' })).toBe('/xdg/peftjs');
  });

  it('a damaged plugins.json is reported like a failed plugin; --plugin still loads', async () => {
    const configDir = join(tmp, 'cfg-bad');
    mkdirSync(configDir, { recursive: true });
    writeFileSync(join(configDir, 'plugins.json'), '{ not json');
    const dir = pluginDir({ name: 'flagged' }, { 'index.js': methodSource('flagged') });
    const registry = await toyRegistry();
    const results = await loadExternalPlugins(registry, { configDir, env: {}, flags: [dir], api });
    expect(results[0]).toMatchObject({ name: 'plugins.json', ok: false });
    expect(results[0]!.error).toMatch(/plugins.json: not valid JSON/);
    expect(results[1]).toMatchObject({ name: 'flagged', ok: true });
  });

  it('link refuses a plugin that does not load, and remembers one that does', async () => {
    const configDir = join(tmp, 'cfg-link');
    const bad = pluginDir({ name: 'bad-link' }, { 'index.js': 'export function register() { throw new Error("nope"); }' });
    await expect(linkPlugin(await toyRegistry(), bad, configDir)).rejects.toThrow("plugin 'bad-link' was not linked: nope");
    await expect(linkPlugin(await toyRegistry(), bad, configDir)).rejects.toBeInstanceOf(PeftError);
    expect(readLinkedPlugins(configDir)).toEqual([]);
    const good = pluginDir({ name: 'good-link' }, { 'index.js': methodSource('goodlink') });
    const { plugin } = await linkPlugin(await toyRegistry(), good, configDir);
    expect(plugin).toEqual({ name: 'good-link', path: good });
    expect(readLinkedPlugins(configDir).map((p) => p.name)).toEqual(['good-link']);
  });

  it('link refuses an id another linked plugin registers, naming both plugins and the id, and leaves plugins.json alone', async () => {
    const configDir = join(tmp, 'cfg-dup');
    const first = pluginDir({ name: 'first-dora', version: '0.1.0' }, { 'index.js': methodSource('dora') });
    await linkPlugin(await toyRegistry(), first, configDir);
    const before = readFileSync(join(configDir, 'plugins.json'), 'utf8');
    const second = pluginDir({ name: 'second-dora' }, { 'index.js': methodSource('other', "registry.registerMethod({ id: 'DoRA', summary: '', schema: peftjs.z.object({}), create() {} });") });
    await expect(linkPlugin(await toyRegistry(), second, configDir)).rejects.toThrow(
      "plugin 'second-dora' was not linked: method 'DoRA' from plugin 'second-dora' is already registered by plugin 'first-dora'",
    );
    expect(readFileSync(join(configDir, 'plugins.json'), 'utf8')).toBe(before);
    // an alias counts as well
    const alias = pluginDir({ name: 'alias-dora' }, { 'index.js': "export function register(r, p) { r.registerMethod({ id: 'weight_decomposed', aliases: ['dora'], summary: '', schema: p.z.object({}), create() {} }); }" });
    await expect(linkPlugin(await toyRegistry(), alias, configDir)).rejects.toThrow("method 'dora' from plugin 'alias-dora' is already registered by plugin 'first-dora'");
    // linking the same plugin again (by path or by name) replaces it rather than conflicting with itself
    await linkPlugin(await toyRegistry(), first, configDir);
    const moved = join(tmp, 'moved-first');
    cpSync(first, moved, { recursive: true });
    await linkPlugin(await toyRegistry(), moved, configDir);
    expect(readLinkedPlugins(configDir).map((p) => [p.name, p.path])).toEqual([['first-dora', moved]]);
    // a linked plugin that no longer loads cannot conflict: the new one links beside it
    const broken = pluginDir({ name: 'broken' }, { 'index.js': 'export function register() { throw new Error("broken"); }' });
    addLinkedPlugin(configDir, { name: 'broken', path: broken });
    const third = pluginDir({ name: 'third' }, { 'index.js': methodSource('third') });
    await linkPlugin(await toyRegistry(), third, configDir);
    expect(readLinkedPlugins(configDir).map((p) => p.name)).toEqual(['first-dora', 'broken', 'third']);
  });
});

describe('schema validation', () => {
  it('accepts zod objects (also refined), rejects the rest by name', () => {
    expect(() => validateSchema(z.object({ a: z.number().default(1) }), 'method x')).not.toThrow();
    expect(() => validateSchema(z.strictObject({ a: z.number() }).superRefine(() => {}), 'method x')).not.toThrow();
    expect(() => validateSchema(z.array(z.string()), 'method x')).toThrow(/method x: its config schema must be a zod object/);
    const throwing = { safeParse: () => { throw new TypeError('kaputt'); } };
    expect(() => validateSchema(throwing, 'method y')).toThrow('method y: its config schema throws when validating {} (kaputt)');
  });
});
