// Loading external plugins into a registry. Sources, in order: linked plugins
// (`peft plugins link`), the PEFT_PLUGINS variable (paths or package names
// separated by ',' or ':'), `--plugin` flags, and installed oclif plugins
// with a `peft:register` hook. Each plugin is imported (ESM, by file URL), its
// `register` runs through `registry.load(origin, …)`, and what it registered
// is validated. A plugin that fails in any way is rolled back entirely (none
// of its registrations stay) and reported by name; the others still load.
//
// A plugin is handed the host's registry object and the host's public API
// (`register(registry, peftjs)`), so it builds on the host's copies of
// tfjs, zod and tsyringe whatever copies it could resolve itself. The API
// comes from the host (the registry's `api`, or the `api` option): this
// library never imports the public API it is part of.
//
// Each id a plugin registers is recorded with the plugin's name, version and
// folder (its provenance), which run.json and adapter files write down.
//
// Before its import, a plugin's entry must be a regular file (not a device, a
// FIFO or a folder: read-regular-file.ts), and it is probed in a worker with a
// time limit (probe.ts): a plugin that spins, never settles, exits the process
// or leaves a rejection behind while loading is skipped with a warning naming
// it, and never reaches the command's own thread.
import { existsSync, realpathSync, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { PeftError } from '../errors.js';
import { checkRegularFile } from '../io/read-regular-file.js';
import { printableLine, quoteName } from '../text.js';
import { pluginOrigin, type PeftjsApi, type RegisterFunction, type Registry } from '../registry/registry.js';
import type { PluginProvenance } from '../registry/provenance.js';
import { peftConfigDir, readLinkedPlugins } from './linked-plugins.js';
import { PEFT_REGISTER_HOOK, resolvePluginSpec, type ResolvedPluginSpec } from './plugin-spec.js';
import { pluginTimeoutMs, probePlugin, type ProbeEntry } from './probe.js';
import { validateRegistered } from './validate-definitions.js';

export type PluginSource = 'linked' | 'env' | 'flag' | 'oclif';

export interface PluginRequest {
  spec: string;
  source: PluginSource;
}

/** An installed oclif plugin that declares a `peft:register` hook (a structural subset of oclif's Plugin). */
export interface OclifPluginLike {
  name: string;
  version?: string;
  root: string;
  isRoot?: boolean;
  hooks: Record<string, { target: string; identifier: string }[]>;
}

export interface OclifHookSource {
  plugins: OclifPluginLike[];
  /** Imports a hook module the way oclif does (e.g. `ModuleLoader.load(plugin, target)`). */
  load(plugin: OclifPluginLike, target: string): Promise<Record<string, unknown>>;
  /** Passed to hooks as `config` (the oclif Config). */
  config?: unknown;
}

export interface PluginLoadResult {
  /** package name, file name, or the spec when it did not resolve. */
  name: string;
  /** package.json version, when there is one. */
  version?: string;
  source: PluginSource;
  spec: string;
  /** The imported module(s), when the spec resolved. */
  entry?: string;
  /** The plugin's folder (or file), when the spec resolved. */
  root?: string;
  ok: boolean;
  /** Why it failed (one line). */
  error?: string;
  registered: { backbones: string[]; methods: string[]; parityKinds: string[] };
}

export interface LoadPluginsOptions {
  /** Folder of plugins.json (default: `peftConfigDir(env)`). */
  configDir?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** `--plugin` values. */
  flags?: string[];
  /** Skip the linked plugins and PEFT_PLUGINS (only `flags` and `extra`). */
  only?: boolean;
  oclif?: OclifHookSource;
  /** The public API handed to plugins (default: the registry's `api`). */
  api?: PeftjsApi;
  /**
   * Probe each plugin in a worker before importing it (probe.ts; default
   * true). `timeoutMs` bounds the probe, the import and register() alike
   * (default: PEFT_PLUGIN_TIMEOUT_MS or 10 s); `cacheDir` holds remembered
   * probes (loadExternalPlugins: the config folder; default: none).
   */
  probe?: boolean | { timeoutMs?: number; cacheDir?: string };
}

/** `PEFT_PLUGINS` entries: split on ',' and the platform's path delimiter (':' on POSIX). */
export function splitPluginList(value: string | undefined): string[] {
  if (!value) return [];
  return value
    .split(',')
    .flatMap((part) => part.split(delimiter))
    .map((s) => s.trim())
    .filter(Boolean);
}

/** Every plugin requested by the linked list, PEFT_PLUGINS and --plugin, in that order. */
export function pluginRequests(options: Pick<LoadPluginsOptions, 'configDir' | 'env' | 'flags' | 'only'> = {}): PluginRequest[] {
  const env = options.env ?? process.env;
  const out: PluginRequest[] = [];
  if (!options.only) {
    for (const p of readLinkedPlugins(options.configDir ?? peftConfigDir(env))) out.push({ spec: p.path, source: 'linked' });
    for (const spec of splitPluginList(env.PEFT_PLUGINS)) out.push({ spec, source: 'env' });
  }
  for (const spec of options.flags ?? []) out.push({ spec, source: 'flag' });
  return out;
}

function oneLine(err: unknown): string {
  let text: string;
  try {
    text = err instanceof Error ? err.message : String(err);
  } catch {
    text = 'a value that cannot be printed';
  }
  // a plugin's message is printed: escaped and capped like every message
  return printableLine(text, 600) || (err instanceof Error ? err.name : 'unknown error');
}

/** The function to call in an imported plugin module. */
function registerOf(mod: Record<string, unknown>, spec: ResolvedPluginSpec, hookContext: () => unknown, api: PeftjsApi, config: unknown): (registry: Registry) => unknown {
  if (spec.contract === 'hook') {
    const id = spec.identifier ?? 'default';
    const fn = mod[id] ?? (id === 'default' ? Object.values(mod).find((v) => typeof v === 'function') : undefined);
    if (typeof fn !== 'function') throw new PeftError(`its ${PEFT_REGISTER_HOOK} hook module ${spec.entry} exports no function '${id}'`);
    return (registry) => (fn as (this: unknown, o: unknown) => unknown).call(hookContext(), { registry, peftjs: api, config });
  }
  const def = mod.default as { register?: unknown } | ((...a: unknown[]) => unknown) | undefined;
  const fn = mod.register ?? (typeof def === 'function' ? def : def?.register);
  if (typeof fn !== 'function') {
    throw new PeftError(`${spec.entry} exports no register function (export 'register', or a default export with 'register', or name the file in package.json "peftjs": { "register": "./index.js" })`);
  }
  return (registry) => (fn as RegisterFunction)(registry, api);
}

function hookContext(config: unknown, name: string) {
  return {
    config,
    debug: () => {},
    log: (...args: unknown[]) => process.stdout.write(`${args.map(String).join(' ')}\n`),
    warn: (m: unknown) => process.stderr.write(`${printableLine(`peft: warning: plugin ${quoteName(name)}: ${String(m)}`)}\n`),
    error: (m: unknown) => {
      throw new Error(String(m));
    },
    exit: (code = 0) => {
      throw new Error(`the plugin asked to exit (${code})`);
    },
  };
}

/** How long a plugin's `register` may take before it is reported as hung (by default; PEFT_PLUGIN_TIMEOUT_MS overrides). */
export const PLUGIN_REGISTER_TIMEOUT_MS = 10_000;

/** `promise`, or a rejection saying what did not finish within `ms`. The timer keeps the event loop alive meanwhile. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms / 1000} s`)), ms);
  });
  try {
    return await Promise.race([promise, hung]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs one plugin's register through the registry with rollback: on any
 * error (thrown, duplicate id, invalid definition) everything it registered is
 * removed and the error is returned.
 */
export async function loadOnePlugin(
  registry: Registry,
  plugin: PluginProvenance,
  register: (registry: Registry) => unknown,
  timeoutMs = PLUGIN_REGISTER_TIMEOUT_MS,
): Promise<string | undefined> {
  const origin = pluginOrigin(plugin);
  try {
    await registry.load(plugin, async (r) => {
      await within(Promise.resolve(register(r)), timeoutMs, 'register()');
    });
    validateRegistered(registry, origin);
    return undefined;
  } catch (err) {
    registry.unregisterOrigin(origin);
    return oneLine(err);
  }
}

/** The module an oclif hook target names, as a file (undefined when it cannot be found: oclif's loader then reports it). */
function hookFile(root: string, target: string): string | undefined {
  const base = join(root, target);
  for (const candidate of [base, `${base}.js`, `${base}.mjs`, join(base, 'index.js')]) {
    try {
      if (existsSync(candidate) && statSync(candidate).isFile()) return candidate;
    } catch {
      // not this one
    }
  }
  return undefined;
}

/**
 * Loads every requested plugin into `registry`, each isolated from the
 * others; returns one result per plugin (failures included, never thrown).
 */
export async function loadPlugins(registry: Registry, requests: PluginRequest[], options: Pick<LoadPluginsOptions, 'cwd' | 'api' | 'oclif' | 'probe'> = {}): Promise<PluginLoadResult[]> {
  const cwd = options.cwd ?? process.cwd();
  const results: PluginLoadResult[] = [];
  const seen = new Set<string>();
  const api = options.api ?? registry.api;
  const probing = options.probe ?? true;
  const timeoutMs = (typeof probing === 'object' ? probing.timeoutMs : undefined) ?? pluginTimeoutMs();
  const cacheDir = typeof probing === 'object' ? probing.cacheDir : undefined;
  const empty = () => ({ backbones: [], methods: [], parityKinds: [] });

  /** A plugin to load: who it is, its modules as the probe calls them, and how the loader imports them. */
  interface Planned {
    name: string;
    version?: string;
    source: PluginSource;
    spec: string;
    entry?: string;
    root: string;
    probe: ProbeEntry[];
    load: (api: PeftjsApi) => Promise<(r: Registry) => unknown>;
  }
  const planned: (Planned | PluginLoadResult)[] = [];
  for (const req of requests) {
    let specs: ResolvedPluginSpec[];
    let key: string;
    try {
      specs = resolvePluginSpec(req.spec, cwd);
      // a device, FIFO or folder as the entry would be read without end by import()
      for (const s of specs) checkRegularFile(s.entry, 'plugin');
      key = specs.map((s) => realpathSync(s.entry)).join('|');
    } catch (err) {
      planned.push({ name: req.spec, source: req.source, spec: req.spec, ok: false, error: oneLine(err), registered: empty() });
      continue;
    }
    if (seen.has(key)) continue;
    seen.add(key);
    const name = specs[0]!.name;
    planned.push({
      name,
      version: specs[0]!.version,
      source: req.source,
      spec: req.spec,
      entry: specs.map((s) => s.entry).join(', '),
      root: specs[0]!.root ?? specs[0]!.entry,
      probe: specs.map((s) => ({ entry: s.entry, contract: s.contract, identifier: s.identifier })),
      load: async (hostApi) => {
        const fns: ((r: Registry) => unknown)[] = [];
        for (const s of specs) {
          const mod = await within(import(pathToFileURL(s.entry).href) as Promise<Record<string, unknown>>, timeoutMs, 'its import');
          fns.push(registerOf(mod, s, () => hookContext(options.oclif?.config, name), hostApi, options.oclif?.config));
        }
        return async (r) => {
          for (const f of fns) await f(r);
        };
      },
    });
  }
  for (const p of options.oclif?.plugins ?? []) {
    const hooks = p.isRoot ? [] : (p.hooks[PEFT_REGISTER_HOOK] ?? []);
    if (hooks.length === 0 || seen.has(`oclif:${p.name}`)) continue;
    seen.add(`oclif:${p.name}`);
    const files = hooks.map((h) => hookFile(p.root, h.target));
    planned.push({
      name: p.name,
      version: p.version,
      source: 'oclif',
      spec: p.name,
      entry: hooks.map((h) => h.target).join(', '),
      root: p.root,
      // hooks oclif resolves in its own way (TypeScript sources, ...) are not probed
      probe: files.every((f) => f !== undefined) ? hooks.map((h, i) => ({ entry: files[i]!, contract: 'hook' as const, identifier: h.identifier })) : [],
      load: async (hostApi) => {
        const fns: ((r: Registry) => unknown)[] = [];
        for (const h of hooks) {
          const mod = await within(options.oclif!.load(p, h.target), timeoutMs, 'its import');
          const spec: ResolvedPluginSpec = { name: p.name, root: p.root, entry: h.target, contract: 'hook', identifier: h.identifier };
          fns.push(registerOf(mod, spec, () => hookContext(options.oclif?.config, p.name), hostApi, options.oclif?.config));
        }
        return async (r) => {
          for (const f of fns) await f(r);
        };
      },
    });
  }
  // every probe at once: a command waits for the slowest plugin, not for their sum
  const probes = await Promise.all(
    planned.map((p) => ('probe' in p && probing !== false && p.probe.length ? probePlugin(p.probe, { timeoutMs, cacheDir, root: p.root }) : Promise.resolve(undefined))),
  );
  for (const [i, p] of planned.entries()) {
    if (!('probe' in p)) {
      results.push(p);
      continue;
    }
    const plugin: PluginProvenance = { name: p.name, ...(p.version ? { version: p.version } : {}), path: p.root };
    let error = probes[i];
    if (error === undefined) {
      try {
        const register = await p.load(api);
        error = await loadOnePlugin(registry, plugin, register, timeoutMs);
      } catch (err) {
        error = oneLine(err);
      }
    }
    results.push({ name: p.name, version: p.version, source: p.source, spec: p.spec, entry: p.entry, root: p.root, ok: !error, error, registered: error ? empty() : registry.registeredBy(pluginOrigin(plugin)) });
  }
  return results;
}

/** The options with the probe cache in the config folder (unless probing is off or a cache folder is given). */
function withCache(options: LoadPluginsOptions): LoadPluginsOptions {
  if (options.probe === false || (typeof options.probe === 'object' && options.probe.cacheDir !== undefined)) return options;
  const cacheDir = options.configDir ?? peftConfigDir(options.env ?? process.env);
  return { ...options, probe: { ...(typeof options.probe === 'object' ? options.probe : {}), cacheDir } };
}

/** Every configured source (linked, PEFT_PLUGINS, --plugin, oclif hooks) loaded into `registry`. */
export async function loadExternalPlugins(registry: Registry, options: LoadPluginsOptions = {}): Promise<PluginLoadResult[]> {
  let requests: PluginRequest[];
  try {
    requests = pluginRequests(options);
  } catch (err) {
    // a damaged plugins.json must not stop the CLI: report it like a failed plugin
    const failed: PluginLoadResult = { name: 'plugins.json', source: 'linked', spec: '', ok: false, error: oneLine(err), registered: { backbones: [], methods: [], parityKinds: [] } };
    return [failed, ...(await loadPlugins(registry, pluginRequests({ ...options, only: true }), withCache(options)))];
  }
  return loadPlugins(registry, requests, withCache(options));
}

/** `peft: warning: plugin 'x' failed to load: …` */
export function pluginWarning(r: PluginLoadResult): string {
  return `peft: warning: plugin ${quoteName(r.name)} failed to load: ${r.error ?? 'unknown error'}`;
}
