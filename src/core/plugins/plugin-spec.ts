// Where an external plugin's `register` lives. A spec is a path to a folder
// (with or without package.json), a path to a .js file, or the name of a
// package installed in a node_modules folder at or above the working
// directory. A package names its entry in package.json:
//   "peftjs": { "register": "./dist/index.js" }          (preferred), or
//   "oclif":  { "hooks": { "peft:register": "./dist/hooks/register.js" } },
// and otherwise its main entry ("exports" / "main" / index.js) is imported.
import { existsSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, extname, isAbsolute, join, resolve } from 'node:path';
import { PeftError } from '../errors.js';
import { checkRegularFile, readRegularTextFile } from '../io/read-regular-file.js';

/** The oclif hook event a plugin may implement instead of exporting `register`. */
export const PEFT_REGISTER_HOOK = 'peft:register';

/** How the entry's function is called. */
export type PluginContract =
  /** `register(registry, peftjs)`: a named export, the default export (a function), or the default export's `register`. */
  | 'register'
  /** An oclif hook: `hook.call(context, { registry, peftjs })`. */
  | 'hook';

export interface ResolvedPluginSpec {
  /** package.json name, else the folder or file name. */
  name: string;
  /** package.json version, when there is one. */
  version?: string;
  /** The package folder, when there is one. */
  root?: string;
  /** Absolute path of the module to import. */
  entry: string;
  contract: PluginContract;
  /** Export to call for a hook (oclif's `identifier`); default: the default export. */
  identifier?: string;
}

interface PackageJson {
  name?: unknown;
  version?: unknown;
  main?: unknown;
  exports?: unknown;
  peftjs?: { register?: unknown };
  oclif?: { hooks?: Record<string, unknown> };
}

function readPackageJson(dir: string): PackageJson | undefined {
  const path = join(dir, 'package.json');
  if (!existsSync(path)) return undefined;
  const text = readRegularTextFile(path, 'json');
  try {
    const pkg = JSON.parse(text) as unknown;
    if (typeof pkg !== 'object' || pkg === null || Array.isArray(pkg)) throw new Error('not a JSON object');
    return pkg as PackageJson;
  } catch (err) {
    throw new PeftError(`${path}: not a valid package.json (${(err as Error).message.split('\n')[0]})`);
  }
}

/** `./x` → `<dir>/x`, trying `.js` and `/index.js` when the path names no file. */
function moduleFile(dir: string, rel: string, what: string): string {
  const base = resolve(dir, rel);
  for (const candidate of [base, `${base}.js`, `${base}.mjs`, join(base, 'index.js')]) {
    if (!existsSync(candidate) || statSync(candidate).isDirectory()) continue;
    // a device or a FIFO under the entry's name is said to be one (import() would read it without end)
    checkRegularFile(candidate, 'plugin');
    return candidate;
  }
  throw new PeftError(`${what} '${rel}' names no file (looked for ${base}${extname(base) ? '' : '[.js]'})`);
}

/** The ESM entry of a package.json's "exports" (string, or the "." entry's import/default). */
function exportsEntry(exp: unknown): string | undefined {
  if (typeof exp === 'string') return exp;
  if (typeof exp !== 'object' || exp === null) return undefined;
  const rec = exp as Record<string, unknown>;
  const dot = '.' in rec ? rec['.'] : rec;
  if (typeof dot === 'string') return dot;
  if (typeof dot === 'object' && dot !== null) {
    const d = dot as Record<string, unknown>;
    for (const cond of ['import', 'node', 'default']) {
      const v = d[cond];
      if (typeof v === 'string') return v;
      const nested = exportsEntry(v);
      if (nested) return nested;
    }
  }
  return undefined;
}

/** The hook entries of `"oclif": { "hooks": { "peft:register": ... } }` (string, list, or {target, identifier}). */
function hookEntries(pkg: PackageJson): { target: string; identifier?: string }[] {
  const raw = pkg.oclif?.hooks?.[PEFT_REGISTER_HOOK];
  if (raw === undefined) return [];
  const list = Array.isArray(raw) ? raw : [raw];
  return list.map((h) => {
    if (typeof h === 'string') return { target: h };
    if (typeof h === 'object' && h !== null && typeof (h as { target?: unknown }).target === 'string') {
      const o = h as { target: string; identifier?: unknown };
      return { target: o.target, identifier: typeof o.identifier === 'string' ? o.identifier : undefined };
    }
    throw new PeftError(`package.json: "oclif.hooks.${PEFT_REGISTER_HOOK}" must be a path, a list of paths or {target, identifier}`);
  });
}

/** Resolves a plugin folder (with or without package.json). */
export function resolvePluginDir(dir: string): ResolvedPluginSpec[] {
  const pkg = readPackageJson(dir);
  const name = typeof pkg?.name === 'string' && pkg.name ? pkg.name : basename(dir);
  if (!pkg) return [{ name, root: dir, entry: moduleFile(dir, './index.js', `${name}: entry`), contract: 'register' }];
  const id = { name, ...(typeof pkg.version === 'string' && pkg.version ? { version: pkg.version } : {}), root: dir };
  const field = pkg.peftjs?.register;
  if (field !== undefined) {
    if (typeof field !== 'string') throw new PeftError(`${join(dir, 'package.json')}: "peftjs.register" must be a path like "./dist/index.js"`);
    return [{ ...id, entry: moduleFile(dir, field, `${name}: "peftjs.register"`), contract: 'register' }];
  }
  const hooks = hookEntries(pkg);
  if (hooks.length) {
    return hooks.map((h) => ({ ...id, entry: moduleFile(dir, h.target, `${name}: hook`), contract: 'hook' as const, identifier: h.identifier }));
  }
  const main = exportsEntry(pkg.exports) ?? (typeof pkg.main === 'string' ? pkg.main : './index.js');
  return [{ ...id, entry: moduleFile(dir, main, `${name}: entry`), contract: 'register' }];
}

/** The folder of an installed package `name`, looking in node_modules from `cwd` upwards. */
export function findInstalledPackage(name: string, cwd: string): string | undefined {
  let dir = resolve(cwd);
  for (;;) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    const up = dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}

const PACKAGE_NAME = /^(@[a-z0-9-~][a-z0-9-._~]*\/)?[a-z0-9-~][a-z0-9-._~]*$/i;

/** Resolves a spec: a folder, a .js file, or an installed package name. */
export function resolvePluginSpec(spec: string, cwd = process.cwd()): ResolvedPluginSpec[] {
  const text = spec.trim();
  if (!text) throw new PeftError('empty plugin spec');
  const expanded = text === '~' || text.startsWith('~/') ? join(homedir(), text.slice(1)) : text;
  const path = isAbsolute(expanded) ? expanded : resolve(cwd, expanded);
  if (existsSync(path)) {
    if (statSync(path).isDirectory()) return resolvePluginDir(path);
    return [{ name: basename(path, extname(path)), entry: path, contract: 'register' }];
  }
  const looksLikePath = /^(\.{1,2}([\\/]|$)|[\\/]|~|[A-Za-z]:[\\/])/.test(text) || !PACKAGE_NAME.test(text);
  if (!looksLikePath) {
    const dir = findInstalledPackage(text, cwd);
    if (dir) return resolvePluginDir(dir);
    throw new PeftError(`no file or folder '${text}', and no package '${text}' installed in node_modules at or above ${cwd}`);
  }
  throw new PeftError(`${path}: no such file or folder`);
}
