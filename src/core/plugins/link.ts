// `peft plugins link <dir>`: the plugin must load into a registry (with the
// built-ins and the plugins linked before it) before it is remembered, so a
// broken link, or one that registers an id another linked plugin already
// registers, is refused at once and plugins.json is left as it was.
import { existsSync, realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { PeftError } from '../errors.js';
import type { Registry } from '../registry/registry.js';
import { addLinkedPlugin, readLinkedPlugins, type LinkedPlugin } from './linked-plugins.js';
import { loadPlugins, type PluginLoadResult } from './load-plugins.js';
import { resolvePluginSpec } from './plugin-spec.js';

/** The path with symlinks resolved (the same folder linked twice under two names is one plugin). */
function real(path: string): string {
  const abs = resolve(path);
  return existsSync(abs) ? realpathSync(abs) : abs;
}

export interface LinkResult {
  plugin: LinkedPlugin;
  result: PluginLoadResult;
}

/**
 * Loads the linked plugins, then `spec`, into `registry` (a fresh one with the
 * built-ins) and, if `spec` loads beside them, links it. A plugin already
 * linked under the same name or path is the one being replaced: it is not
 * loaded first. The others are loaded as they are; one that fails to load
 * cannot conflict and is not this command's business (`peft plugins` reports
 * it).
 */
export async function linkPlugin(registry: Registry, spec: string, configDir: string, cwd = process.cwd()): Promise<LinkResult> {
  const linked = readLinkedPlugins(configDir);
  let replaced: (p: LinkedPlugin) => boolean = () => false;
  try {
    const [first] = resolvePluginSpec(spec, cwd);
    const path = real(first!.root ?? first!.entry);
    replaced = (p) => p.name === first!.name || real(p.path) === path;
  } catch {
    // an unresolvable spec fails below, with loadPlugins' message
  }
  await loadPlugins(registry, linked.filter((p) => !replaced(p)).map((p) => ({ spec: p.path, source: 'linked' as const })), { cwd });
  const [result] = await loadPlugins(registry, [{ spec, source: 'linked' }], { cwd });
  // the registry's duplicate message names the id and both plugins:
  //   method 'dora' from plugin 'b' is already registered by plugin 'a'
  if (!result || !result.ok) throw new PeftError(`plugin '${result?.name ?? spec}' was not linked: ${result?.error ?? 'it did not load'}`);
  const plugin: LinkedPlugin = { name: result.name, path: result.root ?? resolve(cwd, spec) };
  addLinkedPlugin(configDir, plugin);
  return { plugin, result };
}
