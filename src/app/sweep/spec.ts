// What a sweep is: a grid of `peft train` runs — backbones x methods x grid
// values x seeds — from flags or a sweep file (JSON or YAML), and its
// expansion into jobs. A job's id and its `peft train` flags are fixed once,
// when the sweep folder is created (sweep.json), so a restart, a local pool
// and a worker on another machine all run exactly the same command.
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { PeftError } from '../../core/errors.js';
import { readRegularTextFile } from '../../core/io/read-regular-file.js';
import { describeConfig } from '../../core/registry/config.js';
import type { MethodFlag } from '../../core/registry/definitions.js';
import { METHOD_FLAGS } from '../../core/registry/method-config.js';
import type { Registry } from '../../core/registry/registry.js';
import { briefValue, quoteName } from '../../core/text.js';

/** A value of one setting: a `peft train` flag's value, or a method config value. */
export type SettingValue = string | number | boolean;
export type Settings = Record<string, SettingValue>;

/** The most jobs one sweep expands to: a grid beyond this is a typo, not a plan. */
export const MAX_SWEEP_JOBS = 10_000;

const key = z.string().regex(/^[A-Za-z][A-Za-z0-9_-]{0,63}$/, 'a setting is a flag name or a config key: a letter, then letters, digits, _ or -');
const value = z.union([z.string().max(4096), z.number().refine(Number.isFinite, 'must be finite'), z.boolean()]);
const settings = z.record(key, value);
const id = z.string().min(1).max(64);

/** A sweep as a file holds it (and as flags build it). */
export const SweepSpecSchema = z.strictObject({
  /** The sweep's name (default: its folder's). */
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'a name is letters, digits, _ . or -').optional(),
  backbones: z.array(id).min(1).max(64),
  methods: z.array(id).min(1).max(64),
  /** A count n (seeds 0..n-1) or the seeds themselves. */
  seeds: z.union([z.number().int().min(1).max(1000), z.array(z.number().int().min(0).max(2 ** 31 - 1)).min(1).max(1000)]).default(1),
  /** Settings varied over: every combination of the values is a job (per backbone, method and seed). */
  grid: z.record(key, z.array(value).min(1).max(100)).default({}),
  /** Settings every job gets: `peft train` flags (`steps`, `lr-schedule`, `augment`…) or method config keys (`lora_dropout`). */
  train: settings.default({}),
  /** Settings for some jobs only, over `train`: keyed by a backbone id, a method id, or `backbone/method` (most specific wins). */
  pairs: z.record(z.string().min(1).max(130), settings).default({}),
});
export type SweepSpec = z.infer<typeof SweepSpecSchema>;
export type SweepSpecInput = z.input<typeof SweepSpecSchema>;

/** One run of the sweep (see docs/scaling.md for the folder). */
export interface SweepJob {
  /** e.g. `sam-lora-s0`, `sam-lora-rank=8-s0`: a plain folder name, unique in the sweep. */
  id: string;
  /** The id without the seed: the jobs of a group differ only by their seed. */
  group: string;
  backbone: string;
  method: string;
  seed: number;
  /** This job's grid values ({} without a grid). */
  values: Settings;
  /** Its `peft train` flags, without --out, --exp-name and --resume. */
  args: string[];
}

/** What the sweep needs to know about one `peft train` flag (the command's flags, handed in: the library does not import commands). */
export interface TrainFlagInfo {
  boolean: boolean;
  /** A boolean that has a `--no-` form. */
  allowNo?: boolean;
}

/** Flags the sweep sets itself, per job. */
const RESERVED = new Set(['backbone', 'method', 'seed', 'out', 'exp-name', 'resume', 'set', 'help', 'plugin', 'backend']);
/** Flags whose values are paths: made absolute against the file (or the working folder) they came from. */
const PATH_FLAGS = new Set(['data-path', 'val-path', 'checkpoint', 'adapter']);
/** How often a job writes its last checkpoint when the sweep does not say: what a restarted or re-queued job resumes from. */
export const DEFAULT_SAVE_EVERY = 200;

/** Reads a sweep file (`.json`, `.yaml`, `.yml`), validated; relative paths in it are relative to the file. */
export function readSweepFile(path: string): SweepSpec {
  const text = readRegularTextFile(path, 'json');
  let raw: unknown;
  try {
    raw = /\.ya?ml$/i.test(path) ? parseYaml(text, { maxAliasCount: 100 }) : JSON.parse(text);
  } catch (err) {
    throw new PeftError(`${quoteName(path)}: not valid ${/\.ya?ml$/i.test(path) ? 'YAML' : 'JSON'} (${briefValue((err as Error).message, 160)})`);
  }
  return absolutePaths(parseSweepSpec(raw, quoteName(path)), dirname(resolve(path)));
}

/** Validates a spec (from a file or flags); the message names the first wrong key and where it came from. */
export function parseSweepSpec(raw: unknown, source: string): SweepSpec {
  const r = SweepSpecSchema.safeParse(raw);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const at = issue.path.length ? issue.path.map(String).join('.') : '(the whole spec)';
  throw new PeftError(`${source}: ${quoteName(at)}: ${issue.message}`);
}

/** Relative path settings made absolute against `base`, so every worker and every restart sees the same files. */
export function absolutePaths(spec: SweepSpec, base: string): SweepSpec {
  const fix = (s: Settings) => absoluteSettings(s, base);
  const grid = Object.fromEntries(Object.entries(spec.grid).map(([k, vs]) => [k, PATH_FLAGS.has(k) ? vs.map((v) => fix({ [k]: v })[k]!) : vs]));
  return { ...spec, grid, train: fix(spec.train), pairs: Object.fromEntries(Object.entries(spec.pairs).map(([k, s]) => [k, fix(s)])) };
}

/** Path settings (data-path, checkpoint…) made absolute against `base`. */
export function absoluteSettings(s: Settings, base: string): Settings {
  return Object.fromEntries(Object.entries(s).map(([k, v]) => [k, PATH_FLAGS.has(k) && typeof v === 'string' && v !== '' && !isAbsolute(v) ? resolve(base, v) : v]));
}

/** `0,1,7` or `3` (seeds 0..2). */
export function parseSeeds(text: string): number | number[] {
  const parts = text.split(',').map((s) => s.trim());
  if (parts.some((p) => !/^\d{1,10}$/.test(p))) throw new PeftError(`--seeds ${quoteName(text)}: give a count (3) or the seeds (0,1,7)`);
  return parts.length === 1 ? Number(parts[0]) : parts.map(Number);
}

/** A setting's value as written on a command line: JSON when it parses (numbers, booleans), else the text. */
export function parseSettingValue(text: string): SettingValue {
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'string') return v;
  } catch {
    // not JSON: a plain string
  }
  return text;
}

/** `--set key=v1,v2`: a grid dimension. */
export function parseGridFlag(text: string): [string, SettingValue[]] {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new PeftError(`--set ${quoteName(text)}: write key=value or key=v1,v2,…`);
  const values = text.slice(eq + 1).split(',').map((v) => parseSettingValue(v.trim()));
  if (values.some((v) => v === '')) throw new PeftError(`--set ${quoteName(text)}: an empty value`);
  return [text.slice(0, eq), values];
}

/**
 * `peft train` flags written after `--` (`--steps 100 --augment --lr=3e-3`) as
 * settings; booleans by the command's own flag table.
 */
export function parseTrainArgs(argv: readonly string[], flags: Readonly<Record<string, TrainFlagInfo>>): Settings {
  const out: Settings = {};
  for (let i = 0; i < argv.length; i++) {
    const tok = argv[i]!;
    const m = /^--(no-)?([A-Za-z][A-Za-z0-9_-]*)(?:=(.*))?$/s.exec(tok);
    if (!m) throw new PeftError(`after --: ${quoteName(tok)} is not a --flag (peft train's flags go there: --steps 100 --lr 3e-3)`);
    const [, no, name, inline] = m as unknown as [string, string | undefined, string, string | undefined];
    const info = flags[name];
    if (!info) throw new PeftError(`after --: --${quoteName(name).slice(1, -1)} is not a flag of peft train`);
    if (info.boolean) {
      if (inline !== undefined) throw new PeftError(`after --: --${name} takes no value`);
      out[name] = !no;
    } else {
      if (no) throw new PeftError(`after --: --no-${name} is not a flag of peft train`);
      const v = inline ?? argv[++i];
      if (v === undefined) throw new PeftError(`after --: --${name} needs a value`);
      out[name] = name === 'set' ? v : parseSettingValue(v);
      if (name === 'set') {
        // --set key=value after --: a method config key every job gets
        const eq = v.indexOf('=');
        if (eq <= 0) throw new PeftError(`after --: --set ${quoteName(v)}: write key=value`);
        delete out.set;
        out[v.slice(0, eq)] = parseSettingValue(v.slice(eq + 1));
      }
    }
  }
  return out;
}

/** A folder-name-safe rendering of a grid value. */
function slugValue(v: SettingValue): string {
  return String(v).replace(/[^A-Za-z0-9_.-]+/g, '_').slice(0, 24) || '_';
}

function seedList(seeds: SweepSpec['seeds']): number[] {
  return typeof seeds === 'number' ? Array.from({ length: seeds }, (_, i) => i) : [...new Set(seeds)];
}

/** Every combination of the grid's values, keys in the spec's order. */
function combinations(grid: Record<string, SettingValue[]>): Settings[] {
  let out: Settings[] = [{}];
  for (const [k, vs] of Object.entries(grid)) out = out.flatMap((c) => vs.map((v) => ({ ...c, [k]: v })));
  return out;
}

/**
 * The jobs of a sweep: backbones x methods x grid combinations x seeds, each
 * with its `peft train` flags. Every backbone and method must be registered,
 * and every setting must be a `peft train` flag or a config key of the
 * job's method (a method flag such as --alpha only where the method binds
 * it): a mistake is found here, for the whole grid, before anything runs.
 */
export function expandSweep(spec: SweepSpec, registry: Registry, trainFlags: Readonly<Record<string, TrainFlagInfo>>): SweepJob[] {
  for (const b of spec.backbones) registry.backbone(b);
  for (const m of spec.methods) registry.method(m);
  for (const k of [...Object.keys(spec.train), ...Object.keys(spec.grid), ...Object.values(spec.pairs).flatMap((s) => Object.keys(s))]) {
    if (RESERVED.has(k)) throw new PeftError(`setting ${quoteName(k)}: the sweep sets it itself (use backbones, methods and seeds)`);
  }
  for (const pair of Object.keys(spec.pairs)) {
    const [b, m, extra] = pair.split('/');
    const known = m === undefined ? spec.backbones.includes(b!) || spec.methods.includes(b!) : spec.backbones.includes(b!) && spec.methods.includes(m) && extra === undefined;
    if (!known) throw new PeftError(`pairs: ${quoteName(pair)} names no backbone, method or backbone/method of this sweep`);
  }
  const seeds = seedList(spec.seeds);
  const combos = combinations(spec.grid);
  const total = spec.backbones.length * spec.methods.length * combos.length * seeds.length;
  if (total > MAX_SWEEP_JOBS) throw new PeftError(`the sweep expands to ${total} jobs, more than ${MAX_SWEEP_JOBS}: check the grid`);
  const jobs: SweepJob[] = [];
  const taken = new Set<string>();
  for (const backbone of spec.backbones) {
    for (const method of spec.methods) {
      const def = registry.method(method);
      const configKeys = new Set(describeConfig(def.schema).map((k) => k.key));
      const pairSettings = { ...spec.pairs[backbone], ...spec.pairs[method], ...spec.pairs[`${backbone}/${method}`] };
      for (const values of combos) {
        for (const k of Object.keys(values)) {
          if (k in pairSettings) throw new PeftError(`setting ${quoteName(k)} is both swept (grid) and fixed for ${backbone}/${method} (pairs): keep one`);
        }
        const all: Settings = { 'save-every': DEFAULT_SAVE_EVERY, ...spec.train, ...pairSettings, ...values };
        const args = [...trainArgs(all, trainFlags, configKeys, def.flagKeys ?? {}, `${backbone}/${method}`)];
        const valuePart = Object.entries(values).map(([k, v]) => `-${k}=${slugValue(v)}`).join('');
        const group = uniqueGroup(`${backbone}-${method}${valuePart}`, jobs, values, backbone, method);
        for (const seed of seeds) {
          const jobId = `${group}-s${seed}`;
          if (taken.has(jobId)) throw new PeftError(`two jobs would share the id ${quoteName(jobId)}: grid values differ only in characters a folder name cannot hold`);
          taken.add(jobId);
          jobs.push({ id: jobId, group, backbone, method, seed, values, args: ['--backbone', backbone, '--method', method, '--seed', String(seed), ...args] });
        }
      }
    }
  }
  return jobs;
}

/** A group id not taken by a different combination (slugs can collide: `a/b` and `a_b`). */
function uniqueGroup(base: string, jobs: readonly SweepJob[], values: Settings, backbone: string, method: string): string {
  const same = (j: SweepJob) => j.backbone === backbone && j.method === method && JSON.stringify(j.values) === JSON.stringify(values);
  let group = base;
  for (let i = 2; jobs.some((j) => j.group === group && !same(j)); i++) group = `${base}-${i}`;
  return group;
}

/** Settings as `peft train` flags: flags by the command's table, other keys as `--set key=<JSON>` on the method. */
function* trainArgs(
  all: Settings,
  flags: Readonly<Record<string, TrainFlagInfo>>,
  configKeys: ReadonlySet<string>,
  flagKeys: Partial<Record<MethodFlag, string>>,
  pair: string,
): Generator<string> {
  for (const [k, v] of Object.entries(all)) {
    const info = flags[k];
    if (METHOD_FLAGS.includes(k as MethodFlag) && flagKeys[k as MethodFlag] === undefined) {
      throw new PeftError(`setting ${quoteName(k)} does not apply to ${pair}: the method binds no --${k} (set it under pairs for the methods that do)`);
    }
    if (info) {
      if (info.boolean) {
        if (typeof v !== 'boolean') throw new PeftError(`setting ${quoteName(k)} is a switch: true or false, got ${briefValue(v)}`);
        if (v) yield `--${k}`;
        else if (info.allowNo) yield `--no-${k}`;
      } else {
        if (typeof v === 'boolean') throw new PeftError(`setting ${quoteName(k)} takes a value, got ${v}`);
        yield `--${k}`;
        yield String(v);
      }
    } else if (configKeys.has(k)) {
      yield '--set';
      yield `${k}=${JSON.stringify(v)}`;
    } else {
      throw new PeftError(`setting ${quoteName(k)} is neither a flag of peft train nor a config key of ${pair.split('/')[1]} (for ${pair})`);
    }
  }
}
