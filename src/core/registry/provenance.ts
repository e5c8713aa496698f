// Provenance: which plugin (name, version, folder) provided a backbone or a
// method. The registry records it for every id it registers and for every
// backbone and injector it creates; run.json and adapter files write it down,
// so a command that later meets an id no loaded plugin registers can say which
// plugin to load and where it was (core/plugins/require-plugins.ts).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PeftError } from '../errors.js';

/** `path` of a plugin compiled into peftjs (its `version` is peftjs's own). */
export const BUILT_IN = 'built-in';

/** A plugin as run.json and adapter configs record it. */
export interface PluginProvenance {
  /** package.json `name`, else the folder or file name. */
  name: string;
  /** package.json `version` (peftjs's for a built-in), when there is one. */
  version?: string;
  /** The plugin's folder or file, absolute; `built-in` for a plugin compiled into peftjs. */
  path: string;
}

/** The plugins that provided a run's or an adapter's backbone and method (each absent when not known). */
export interface UsedPlugins {
  backbone?: PluginProvenance;
  method?: PluginProvenance;
}

let version: string | undefined;

/** peftjs's own version (its package.json, found above this file both in src/ and in dist/src/). */
export function peftjsVersion(): string {
  if (version !== undefined) return version;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const path = join(dir, 'package.json');
    if (existsSync(path)) {
      const pkg = JSON.parse(readFileSync(path, 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'peftjs' && typeof pkg.version === 'string') return (version = pkg.version);
    }
    const up = dirname(dir);
    if (up === dir) return (version = 'unknown');
    dir = up;
  }
}

// Objects (backbones, injectors) the registry created, and the plugin whose
// definition created them: saving an adapter asks here, so every caller of
// `saveAdapter` records provenance without being handed the registry.
const made = new WeakMap<object, PluginProvenance>();

/** Records that `plugin` created `object` (called by the registry). */
export function recordMaker(object: object, plugin: PluginProvenance | undefined): void {
  if (plugin) made.set(object, plugin);
}

/** The plugin whose definition created `object` through a registry, if any. */
export function pluginThatMade(object: object | undefined): PluginProvenance | undefined {
  return object ? made.get(object) : undefined;
}

/** The plugins that made a model's backbone and method (a PeftModel satisfies the argument). */
export function usedPluginsOf(source: { readonly method: object; readonly backbone?: object }): UsedPlugins {
  const out: UsedPlugins = {};
  const backbone = pluginThatMade(source.backbone);
  const method = pluginThatMade(source.method);
  if (backbone) out.backbone = { ...backbone };
  if (method) out.method = { ...method };
  return out;
}

/**
 * safetensors `__metadata__` keys that record which method and backbone an
 * adapter holds and which plugins provided them, for formats whose config
 * takes no keys of ours (Hugging Face PEFT's adapter_config.json).
 */
export const METADATA_KEYS = { method: 'peftjs.method', backbone: 'peftjs.backbone', plugins: 'peftjs.plugins' } as const;

/** What provenance metadata says (each part absent when not recorded). */
export interface ProvenanceRecord {
  method?: string;
  backbone?: string;
  plugins: UsedPlugins;
}

/**
 * The `__metadata__` entries for a model's method and backbone (a PeftModel
 * satisfies the argument): spread them into the metadata of the weights file.
 */
export function provenanceMetadata(source: { readonly method: { readonly id: string }; readonly backbone?: { readonly id: string } }): Record<string, string> {
  const used = usedPluginsOf(source);
  return {
    [METADATA_KEYS.method]: source.method.id,
    ...(source.backbone ? { [METADATA_KEYS.backbone]: source.backbone.id } : {}),
    ...(used.backbone || used.method ? { [METADATA_KEYS.plugins]: JSON.stringify(used) } : {}),
  };
}

/** Reads what `provenanceMetadata` wrote; `where` names the file in errors. */
export function readProvenanceMetadata(metadata: Readonly<Record<string, string>>, where: string): ProvenanceRecord {
  const out: ProvenanceRecord = { plugins: {} };
  if (metadata[METADATA_KEYS.method]) out.method = metadata[METADATA_KEYS.method];
  if (metadata[METADATA_KEYS.backbone]) out.backbone = metadata[METADATA_KEYS.backbone];
  const text = metadata[METADATA_KEYS.plugins];
  if (text !== undefined) {
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      throw new PeftError(`${where}: metadata '${METADATA_KEYS.plugins}' is not valid JSON`);
    }
    out.plugins = parseUsedPlugins(raw, `${where}: metadata '${METADATA_KEYS.plugins}'`);
  }
  return out;
}

/** Validates a `plugins` value read from a file: `{ backbone?, method? }`, each `{ name, version?, path }`. */
export function parseUsedPlugins(raw: unknown, where: string): UsedPlugins {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new PeftError(`${where} must be an object { "backbone"?, "method"? }`);
  const out: UsedPlugins = {};
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    if (key !== 'backbone' && key !== 'method') throw new PeftError(`${where}: unexpected key ${JSON.stringify(key.slice(0, 40))} (expected "backbone" and "method")`);
    const p = value as Partial<Record<keyof PluginProvenance, unknown>> | null;
    if (typeof p !== 'object' || p === null || typeof p.name !== 'string' || !p.name || typeof p.path !== 'string' || !p.path || (p.version !== undefined && typeof p.version !== 'string')) {
      throw new PeftError(`${where}.${key} must be { "name", "version"?, "path" } (strings)`);
    }
    out[key] = { name: p.name, ...(p.version !== undefined ? { version: p.version as string } : {}), path: p.path };
  }
  return out;
}
