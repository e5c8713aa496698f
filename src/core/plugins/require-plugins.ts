// Before a command rebuilds a model from a file (run.json, an adapter), every
// backbone and method id the file names must be registered. When one is not,
// the file's provenance says which plugin provided it and where it was, and
// the message says how to load it, instead of guessing a near id
// ("did you mean 'ia3'") among the ones that happen to be loaded.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { PeftError } from '../errors.js';
import { ADAPTER_CONFIG_FILE, ADAPTER_FORMAT, ADAPTER_WEIGHTS_FILE, readAdapterConfig } from '../io/adapter-files.js';
import { readRegularTextFile } from '../io/read-regular-file.js';
import { readSafetensors } from '../io/safetensors.js';
import { BUILT_IN, peftjsVersion, readProvenanceMetadata, type PluginProvenance, type UsedPlugins } from '../registry/provenance.js';
import type { Registry } from '../registry/registry.js';

/** An id a file needs, with the plugin that provided it when the file recorded one. */
export interface PluginNeed {
  type: 'backbone' | 'method';
  id: string;
  plugin?: PluginProvenance;
}

/** The needs of a file that names a backbone and a method (either may be absent) and recorded `used` (older files: nothing). */
export function pluginNeeds(ids: { backbone?: string; method?: string }, used: UsedPlugins = {}): PluginNeed[] {
  const out: PluginNeed[] = [];
  if (ids.backbone) out.push({ type: 'backbone', id: ids.backbone, ...(used.backbone ? { plugin: used.backbone } : {}) });
  if (ids.method) out.push({ type: 'method', id: ids.method, ...(used.method ? { plugin: used.method } : {}) });
  return out;
}

/** The plugins that provide `ids` in `registry` now (what run.json records at training). */
export function usedPlugins(registry: Registry, ids: { backbone?: string; method?: string }): UsedPlugins {
  const out: UsedPlugins = {};
  const backbone = ids.backbone ? registry.provenance('backbone', ids.backbone) : undefined;
  const method = ids.method ? registry.provenance('method', ids.method) : undefined;
  if (backbone) out.backbone = backbone;
  if (method) out.method = method;
  return out;
}

/** How to load an external plugin found at `path`. */
function howToLoad(path: string): string {
  const where = existsSync(path) ? path : '<its folder>';
  const gone = existsSync(path) ? '' : `${path} no longer exists: install the plugin, then `;
  return `${gone}add --plugin ${where}, set PEFT_PLUGINS, or run 'peft plugins link ${where}'`;
}

/** One clause per missing id. */
function missing(registry: Registry, need: PluginNeed): string {
  const what = `${need.type} '${need.id}'`;
  const p = need.plugin;
  if (!p) {
    const known = (need.type === 'backbone' ? registry.backbones() : registry.methods()).map((d) => d.id).sort();
    return `${what}, which no loaded plugin registers (loaded ${need.type}s: ${known.join(', ') || 'none'}); load the plugin that provides it: add --plugin <its folder>, set PEFT_PLUGINS, or run 'peft plugins link <its folder>'`;
  }
  if (p.path === BUILT_IN) {
    return `${what} from the built-in plugin '${p.name}' of peftjs ${p.version ?? '(version unknown)'}, which this peftjs (${peftjsVersion()}) does not have`;
  }
  return `${what} from plugin '${p.name}'${p.version ? ` ${p.version}` : ''} (${p.path}), which is not loaded: ${howToLoad(p.path)}`;
}

/**
 * Throws one PeftError line when an id in `needs` is not registered:
 * `run 'runs/x' needs method 'dora' from plugin 'peftjs-dora' 0.1.0 (/x/peftjs-dora), which is not loaded: add --plugin /x/peftjs-dora, …`.
 * `what` names the file's owner (`run 'runs/x'`, `adapter 'out/a'`). An id
 * that is registered passes, whichever plugin registered it now.
 */
export function requirePlugins(registry: Registry, what: string, needs: readonly PluginNeed[]): void {
  const absent = needs.filter((n) => !registry.has(n.type, n.id));
  if (absent.length === 0) return;
  throw new PeftError(`${what} needs ${absent.map((n) => missing(registry, n)).join('; and ')}`);
}

/**
 * `requirePlugins` for an adapter folder: a peftjs adapter names its method
 * and backbone (and, since provenance, their plugins) in adapter_config.json;
 * a Hugging Face PEFT one written by peftjs names them in its weights' metadata.
 * Anything else (or a folder that is no adapter) passes: loading it reports it.
 */
export function requireAdapterPlugins(registry: Registry, dir: string): void {
  const configPath = join(dir, ADAPTER_CONFIG_FILE);
  if (!existsSync(configPath)) return;
  // a device or FIFO in its place is refused here; a file that is not JSON passes (loading it reports it)
  const text = readRegularTextFile(configPath, 'json');
  let raw: { format?: unknown; peft_type?: unknown } | null;
  try {
    raw = JSON.parse(text) as typeof raw;
  } catch {
    return;
  }
  if (raw?.format === ADAPTER_FORMAT) {
    const cfg = readAdapterConfig(dir);
    // the adapter is loaded into a model of its own method; its backbone may be another preset's or the run's
    requirePlugins(registry, `adapter '${dir}'`, pluginNeeds({ method: cfg.method }, cfg.plugins));
    return;
  }
  const weights = join(dir, ADAPTER_WEIGHTS_FILE);
  if (typeof raw?.peft_type !== 'string' || !existsSync(weights)) return;
  const record = readProvenanceMetadata(readSafetensors(weights).metadata, weights);
  requirePlugins(registry, `adapter '${dir}'`, pluginNeeds({ method: record.method }, record.plugins));
}
