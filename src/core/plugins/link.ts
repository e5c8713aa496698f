// `peft plugins link <dir>`: the plugin must load into a registry (with the
// built-ins) before it is remembered, so a broken link is refused at once.
import { resolve } from 'node:path';
import { PeftError } from '../errors.js';
import type { Registry } from '../registry/registry.js';
import { addLinkedPlugin, type LinkedPlugin } from './linked-plugins.js';
import { loadPlugins, type PluginLoadResult } from './load-plugins.js';

export interface LinkResult {
  plugin: LinkedPlugin;
  result: PluginLoadResult;
}

/** Loads `spec` into `registry` (a fresh one with the built-ins) and, if it loads, links it. */
export async function linkPlugin(registry: Registry, spec: string, configDir: string, cwd = process.cwd()): Promise<LinkResult> {
  const [result] = await loadPlugins(registry, [{ spec, source: 'linked' }], { cwd });
  if (!result || !result.ok) throw new PeftError(`plugin '${result?.name ?? spec}' was not linked: ${result?.error ?? 'it did not load'}`);
  const plugin: LinkedPlugin = { name: result.name, path: result.root ?? resolve(cwd, spec) };
  addLinkedPlugin(configDir, plugin);
  return { plugin, result };
}
