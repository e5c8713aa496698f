// Plugins linked with `peft plugins link <dir>`: a JSON list in the user's
// config folder ($PEFT_CONFIG_DIR, else $XDG_CONFIG_HOME/peftjs, else
// ~/.config/peftjs), file `plugins.json`:
//   { "version": 1, "plugins": [ { "name": "peftjs-ia3", "path": "/abs/dir", "linkedAt": "..." } ] }
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { PeftError } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { readRegularTextFile } from '../io/read-regular-file.js';

export const LINKED_PLUGINS_FILE = 'plugins.json';

export interface LinkedPlugin {
  name: string;
  /** Absolute path of the plugin folder or file. */
  path: string;
  linkedAt?: string;
}

/** The user config folder of peftjs. */
export function peftConfigDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.PEFT_CONFIG_DIR) return resolve(env.PEFT_CONFIG_DIR);
  return join(env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'peftjs');
}

export function linkedPluginsPath(configDir: string): string {
  return join(configDir, LINKED_PLUGINS_FILE);
}

/** The linked plugins ([] when nothing was linked); a PeftError naming the file when it is damaged. */
export function readLinkedPlugins(configDir: string): LinkedPlugin[] {
  const path = linkedPluginsPath(configDir);
  if (!existsSync(path)) return [];
  const text = readRegularTextFile(path, 'json');
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new PeftError(`${path}: not valid JSON (${(err as Error).message.split('\n')[0]}); fix or delete it`);
  }
  const list = (raw as { plugins?: unknown } | null)?.plugins;
  if (!Array.isArray(list)) throw new PeftError(`${path}: expected { "plugins": [ { "name", "path" } ] }`);
  return list.map((p, i) => {
    const e = p as Partial<LinkedPlugin> | null;
    if (!e || typeof e.name !== 'string' || typeof e.path !== 'string') throw new PeftError(`${path}: plugins[${i}] needs a "name" and a "path"`);
    return { name: e.name, path: e.path, ...(typeof e.linkedAt === 'string' ? { linkedAt: e.linkedAt } : {}) };
  });
}

export function writeLinkedPlugins(configDir: string, plugins: LinkedPlugin[]): void {
  writeFileAtomic(linkedPluginsPath(configDir), `${JSON.stringify({ version: 1, plugins }, null, 2)}\n`);
}

/** Adds (or replaces, by name or path) a linked plugin. */
export function addLinkedPlugin(configDir: string, plugin: LinkedPlugin): LinkedPlugin[] {
  const rest = readLinkedPlugins(configDir).filter((p) => p.name !== plugin.name && resolve(p.path) !== resolve(plugin.path));
  const list = [...rest, { ...plugin, path: resolve(plugin.path), linkedAt: plugin.linkedAt ?? new Date().toISOString() }];
  writeLinkedPlugins(configDir, list);
  return list;
}

/** Removes the linked plugins named `nameOrPath` (a name, or the linked path); a PeftError when none is. */
export function removeLinkedPlugin(configDir: string, nameOrPath: string, cwd = process.cwd()): LinkedPlugin[] {
  const all = readLinkedPlugins(configDir);
  const abs = resolve(cwd, nameOrPath);
  const gone = all.filter((p) => p.name === nameOrPath || resolve(p.path) === abs);
  if (gone.length === 0) {
    const known = all.map((p) => p.name);
    throw new PeftError(`no linked plugin '${nameOrPath}' (linked: ${known.length ? known.join(', ') : 'none'})`);
  }
  writeLinkedPlugins(configDir, all.filter((p) => !gone.includes(p)));
  return gone;
}
