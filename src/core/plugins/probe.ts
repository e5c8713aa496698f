// Probing an external plugin before it is loaded. JavaScript cannot stop a
// synchronous loop in its own thread: a plugin that spins at import or in
// `register()` would hang every command, and a top-level await that never
// settles leaves the CLI to exit 13 without a word. So each external plugin is
// first imported, and its register function called, in a worker thread with a
// time limit (PEFT_PLUGIN_TIMEOUT_MS, default 10 s); a worker can be
// terminated whatever it runs. Only a plugin whose probe finished in time is
// then imported in the command's own thread.
//
// In the probe, `register` receives stand-ins for the registry and the public
// API: objects that accept any property access, call or construction and
// return another stand-in (never a thenable); the host's global polyfill
// (reflect-metadata, which tsyringe needs) is loaded first, as in the host.
// The probe asks only whether loading terminates: an error, thrown or
// rejected, counts as finished (the real load reports the real error, and a
// rejection left behind is the command's warning: src/cli/base-command.ts).
// What fails a probe: the time limit, `process.exit()` during the load or
// PROBE_GRACE_MS after it, or running out of memory.
//
// A probe costs a worker start and the plugin's import (tens of ms for a
// small plugin); a successful probe is remembered in `plugin-probes.json` in
// the config folder, keyed by the entry modules' real paths and a fingerprint
// of the files of the plugin's folder (path, size, mtime; node_modules and
// dot-folders left out), so commands after the first import each plugin once.
// Failures are not remembered: a plugin that timed out is probed (and its
// time limit spent) again by the next command, which warns again.
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { existsSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { PeftError } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { makeDir } from '../io/make-dir.js';
import { readRegularTextFile } from '../io/read-regular-file.js';
import type { PluginContract } from './plugin-spec.js';

/** How long a plugin may take to import and register, in the probe and in the command's thread (PEFT_PLUGIN_TIMEOUT_MS overrides). */
export const PLUGIN_LOAD_TIMEOUT_MS = 10_000;
/** How long the probe keeps watching after `register` settled, for a `process.exit()` it scheduled. */
export const PROBE_GRACE_MS = 100;
/** The probe worker's heap limit (MB): a plugin that allocates without end fails its probe instead of the command. */
export const PROBE_HEAP_MB = 2048;
/** File of remembered probes, in the config folder. */
export const PROBE_CACHE_FILE = 'plugin-probes.json';
/** Most files of a plugin folder the fingerprint looks at. */
const FINGERPRINT_FILES = 2000;
/** Changes when what a probe checks changes, so older records are not trusted. */
const PROBE_VERSION = 1;

/** The time limit in force: PEFT_PLUGIN_TIMEOUT_MS (milliseconds, a positive integer) or PLUGIN_LOAD_TIMEOUT_MS. */
export function pluginTimeoutMs(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.PEFT_PLUGIN_TIMEOUT_MS;
  if (raw === undefined || raw === '') return PLUGIN_LOAD_TIMEOUT_MS;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 1) throw new PeftError(`PEFT_PLUGIN_TIMEOUT_MS must be a positive whole number of milliseconds, got '${raw.slice(0, 40)}'`);
  return n;
}

/** One module of a plugin and how its function is called. */
export interface ProbeEntry {
  /** Absolute path of the module. */
  entry: string;
  contract: PluginContract;
  /** The export a hook calls (default: the default export). */
  identifier?: string;
}

export interface ProbeOptions {
  timeoutMs: number;
  /** Folder of the probe cache (none: no cache). */
  cacheDir?: string;
  /** The plugin's folder (or file), for the fingerprint. */
  root?: string;
}

/** Undefined when the plugin loaded in time in the probe; else why not (one line). */
export type ProbeResult = string | undefined;

// The worker's code (run with `eval`, so it needs no file of its own and runs
// the same from src/ under the tests and from dist/).
const WORKER = String.raw`
const { parentPort, workerData } = require('node:worker_threads');
let sent = false;
const send = (m) => { if (!sent) { sent = true; parentPort.postMessage(m); } };
// a plugin that ends the process would end the command: say so before the worker goes
const exit = process.exit.bind(process);
process.exit = (code) => { send({ failed: 'it called process.exit(' + (code ?? '') + ') while loading' }); exit(code); };
// errors end nothing here: only whether loading terminates is asked
process.on('unhandledRejection', () => {});
process.on('uncaughtException', () => {});
// a stand-in for anything: every property, call and construction gives another; never a thenable
const stand = () => {
  const target = function () {};
  const proxy = new Proxy(target, {
    get(t, key) {
      if (key === 'then') return undefined;
      if (key === Symbol.toPrimitive) return (hint) => (hint === 'number' ? 0 : '');
      if (key === Symbol.iterator) return function* () {};
      if (key === Symbol.asyncIterator || key === Symbol.hasInstance) return undefined;
      if (key === 'prototype') return t.prototype;
      if (key === 'length') return 0;
      if (key === 'name' || key === 'toString' || key === 'valueOf') return key === 'name' ? 'stand-in' : () => '';
      return stand();
    },
    apply: () => stand(),
    construct: () => stand(),
    set: () => true,
    has: () => false,
    deleteProperty: () => true,
    defineProperty: () => true,
  });
  return proxy;
};
(async () => {
  for (const url of workerData.preload) await import(url);
  const fns = [];
  for (const e of workerData.entries) {
    let mod;
    try {
      mod = await import(e.url);
    } catch {
      continue; // a module that fails to import has finished; the real load reports it
    }
    let fn;
    if (e.contract === 'hook') {
      const id = e.identifier || 'default';
      fn = mod[id] ?? (id === 'default' ? Object.values(mod).find((v) => typeof v === 'function') : undefined);
    } else {
      const def = mod.default;
      fn = mod.register ?? (typeof def === 'function' ? def : def && def.register);
    }
    if (typeof fn === 'function') fns.push([fn, e.contract]);
  }
  for (const [fn, contract] of fns) {
    try {
      const r = contract === 'hook' ? fn.call(stand(), { registry: stand(), peftjs: stand(), config: stand() }) : fn(stand(), stand());
      if (r && typeof r.then === 'function') await r;
    } catch {
      // finished (by an error): the real load reports it
    }
  }
  setTimeout(() => send({ ok: true }), workerData.graceMs);
})();
`;

/** The modules the host loads for their global effect before any plugin (reflect-metadata's Reflect API), as URLs. */
function hostPreload(): string[] {
  try {
    return [pathToFileURL(createRequire(import.meta.url).resolve('reflect-metadata')).href];
  } catch {
    return [];
  }
}

/** Runs the probe worker over `entries`; resolves with why it failed, or undefined. */
function runProbe(entries: readonly ProbeEntry[], timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let settled = false;
    const worker = new Worker(WORKER, {
      eval: true,
      workerData: {
        entries: entries.map((e) => ({ url: pathToFileURL(e.entry).href, contract: e.contract, identifier: e.identifier })),
        preload: hostPreload(),
        graceMs: Math.min(PROBE_GRACE_MS, timeoutMs),
      },
      // what the plugin prints while probed is not the user's to read (it prints again when really loaded)
      stdout: true,
      stderr: true,
      resourceLimits: { maxOldGenerationSizeMb: PROBE_HEAP_MB },
    });
    worker.stdout.resume();
    worker.stderr.resume();
    const finish = (result: ProbeResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      void worker.terminate();
      resolve(result);
    };
    const timer = setTimeout(
      () => finish(`it did not finish loading within ${timeoutMs / 1000} s (a loop at import or in register(), or a top-level await that never settles); set PEFT_PLUGIN_TIMEOUT_MS to allow longer`),
      timeoutMs + Math.min(PROBE_GRACE_MS, timeoutMs),
    );
    worker.on('message', (m: { ok?: boolean; failed?: string }) => finish(m.ok ? undefined : (m.failed ?? 'its probe failed')));
    worker.on('error', (err: Error & { code?: string }) =>
      finish(err.code === 'ERR_WORKER_OUT_OF_MEMORY' ? `it ran out of memory while loading (over ${PROBE_HEAP_MB} MB)` : `it failed while loading (${err.message.split('\n')[0]})`),
    );
    // the worker's event loop emptied before loading finished: something it awaited can never settle
    worker.on('exit', () => finish('it never finished loading: a top-level await or a promise from register() that can never settle'));
  });
}

/** Size and mtime of the files of a plugin's folder (or its one file), hashed. */
function fingerprint(root: string | undefined, entries: readonly ProbeEntry[]): string {
  const hash = createHash('sha256');
  const add = (path: string) => {
    try {
      const st = statSync(path);
      hash.update(`${path}\u0000${st.size}\u0000${st.mtimeMs}\u0000${st.ino}\n`);
    } catch {
      hash.update(`${path}\u0000missing\n`);
    }
  };
  for (const e of entries) add(e.entry);
  let seen = 0;
  const walk = (dir: string, depth: number) => {
    if (depth > 8 || seen >= FINGERPRINT_FILES) return;
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch {
      return;
    }
    for (const name of names) {
      if (seen >= FINGERPRINT_FILES) return;
      if (name === 'node_modules' || name.startsWith('.')) continue;
      const path = join(dir, name);
      let st;
      try {
        st = statSync(path);
      } catch {
        continue;
      }
      if (st.isDirectory()) walk(path, depth + 1);
      else if (st.isFile()) {
        seen++;
        add(path);
      }
    }
  };
  if (root && existsSync(root) && statSync(root).isDirectory()) walk(root, 0);
  return hash.digest('hex');
}

interface ProbeCache {
  version: number;
  probes: Record<string, string>;
}

function cachePath(dir: string): string {
  return join(dir, PROBE_CACHE_FILE);
}

function readCache(dir: string | undefined): ProbeCache {
  const empty: ProbeCache = { version: PROBE_VERSION, probes: {} };
  if (!dir || !existsSync(cachePath(dir))) return empty;
  try {
    const j = JSON.parse(readRegularTextFile(cachePath(dir), 'json')) as Partial<ProbeCache>;
    if (j.version !== PROBE_VERSION || typeof j.probes !== 'object' || j.probes === null || Array.isArray(j.probes)) return empty;
    return { version: PROBE_VERSION, probes: Object.fromEntries(Object.entries(j.probes).filter(([, v]) => typeof v === 'string')) };
  } catch {
    // a damaged cache is only a cache: probe again
    return empty;
  }
}

function remember(dir: string | undefined, key: string, print: string): void {
  if (!dir) return;
  try {
    const cache = readCache(dir);
    cache.probes[key] = print;
    // keep it small: the newest 200 plugins
    const keys = Object.keys(cache.probes);
    for (const k of keys.slice(0, Math.max(0, keys.length - 200))) delete cache.probes[k];
    makeDir(dir);
    writeFileAtomic(cachePath(dir), `${JSON.stringify(cache, null, 2)}\n`);
  } catch {
    // a read-only config folder: no cache, every command probes
  }
}

/**
 * Probes a plugin (its entry modules, called as the loader will) in a worker
 * with a time limit. Undefined: it loads in time, load it for real; else the
 * one-line reason to skip it.
 */
export async function probePlugin(entries: readonly ProbeEntry[], options: ProbeOptions): Promise<ProbeResult> {
  let key: string;
  try {
    key = entries.map((e) => `${realpathSync(e.entry)}|${e.contract}|${e.identifier ?? ''}`).join(';');
  } catch {
    return undefined; // an entry that vanished: the real load reports it
  }
  const print = `${process.version}:${fingerprint(options.root, entries)}`;
  if (readCache(options.cacheDir).probes[key] === print) return undefined;
  const result = await runProbe(entries, options.timeoutMs);
  if (result === undefined) remember(options.cacheDir, key, print);
  return result;
}
