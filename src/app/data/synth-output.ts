// Where a synthetic dataset may be written, so that nothing a user owns is
// ever lost: a new or empty folder is filled; a previous synth output (its
// marker lists every file it wrote) is replaced; any other non-empty folder is
// refused unless `force`, and even then only files a previous synth output
// wrote may be overwritten — a user's file at a path we would write is an error.
// The dataset is always generated into a temporary sibling folder first, then
// moved into place; `ensureDefaultDataset` publishes a cache entry atomically.
// Nothing is written or removed through a symbolic link inside the output
// (src/core/io/no-follow.ts).
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, rmdirSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { PeftError, errorReason } from '../../core/errors.js';
import { checkSynthOptions, sampleFiles, synthGeneratorVersion, synthMarkerFile, writeSyntheticFundus, type SynthMarker, type SynthOptions, type SynthSummary } from './synthetic-fundus.js';
import { makeDir } from '../../core/io/make-dir.js';
import { makeDirInside, removeInside } from '../../core/io/no-follow.js';

/** The marker of a previous synth output in `dir`, if any (and well formed). */
export function readSynthMarker(dir: string): SynthMarker | undefined {
  try {
    const m = JSON.parse(readFileSync(join(dir, synthMarkerFile), 'utf8')) as SynthMarker;
    if (m.generator !== 'peftjs synthetic fundus' || typeof m.splits !== 'object' || m.splits === null) return undefined;
    for (const names of Object.values(m.splits)) {
      if (!Array.isArray(names) || !names.every((n) => typeof n === 'string' && /^[A-Za-z0-9_-]+$/.test(n))) return undefined;
    }
    return m;
  } catch {
    return undefined;
  }
}

/** Relative paths (with '/') of every file a marker says its generator wrote. */
function markerFiles(m: SynthMarker): Set<string> {
  const out = new Set<string>([synthMarkerFile]);
  for (const [split, names] of Object.entries(m.splits)) {
    if (!/^[A-Za-z0-9_-]+$/.test(split)) continue;
    for (const n of names) for (const f of sampleFiles(split, n)) out.add(f);
  }
  return out;
}

/** Every file under dir (relative, '/'-separated), bounded. */
function listFiles(dir: string, limit = 1_000_000): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(relative(dir, p).split(sep).join('/'));
      if (out.length > limit) throw new PeftError(`${dir}: too many files to inspect`);
    }
  };
  walk(dir);
  return out;
}

function tempSibling(dir: string, tag: string): string {
  return join(dirname(dir), `.${basename(dir)}.${tag}-${process.pid}-${Date.now().toString(36)}`);
}

/** Removes now-empty folders from `rel`'s parent upwards (inside root). */
function pruneEmpty(root: string, rel: string): void {
  let d = dirname(join(root, rel));
  while (d !== root && d.startsWith(root)) {
    try {
      rmdirSync(d);
    } catch {
      return;
    }
    d = dirname(d);
  }
}

/** `writeSyntheticFundus` into a temporary sibling of `shownAs`; a write error names `shownAs`, the user's folder. */
async function writeBeside(tmp: string, shownAs: string, options: SynthOptions): Promise<SynthSummary> {
  try {
    return await writeSyntheticFundus(tmp, options);
  } catch (err) {
    const cause = err instanceof PeftError ? err.cause : err;
    if (cause === undefined) throw err;
    throw new PeftError(`${shownAs}: cannot write the synthetic dataset (${errorReason(cause)})`, { cause });
  }
}

/** Writes a synthetic REFUGE-layout dataset into `out` under the rules above. */
export async function synthesize(out: string, options: SynthOptions = {}, force = false): Promise<SynthSummary & { replaced: boolean }> {
  const dir = resolve(out);
  checkSynthOptions(options);
  let exists = false;
  if (existsSync(dir)) {
    if (!statSync(dir).isDirectory()) throw new PeftError(`${dir}: exists and is not a folder`);
    exists = true;
  }
  const marker = exists ? readSynthMarker(dir) : undefined;
  if (exists && !marker && !force) {
    const first = readdirSync(dir)[0];
    if (first !== undefined) {
      throw new PeftError(`${dir}: folder is not empty and is not a previous 'peft data synth' output (e.g. ${first}); use --force to add the dataset beside its contents (no file of yours is overwritten)`);
    }
  }
  const present = exists ? listFiles(dir) : [];
  const owned = marker ? markerFiles(marker) : new Set<string>();
  const foreign = present.filter((f) => !owned.has(f));
  if (foreign.length > 0 && !force) {
    throw new PeftError(`${dir}: folder is not empty and is not a previous 'peft data synth' output (e.g. ${foreign[0]}); use --force to add the dataset beside its contents (no file of yours is overwritten)`);
  }

  try {
    makeDir(dirname(dir));
  } catch (err) {
    throw new PeftError(`${dir}: cannot create the folder it goes in (${errorReason(err)})`);
  }
  const tmp = tempSibling(dir, 'peft-synth');
  try {
    const summary = await writeBeside(tmp, dir, options);
    const created = listFiles(tmp);
    if (!exists) {
      renameSync(tmp, dir);
      return { ...summary, dir, replaced: false };
    }
    const presentSet = new Set(present);
    const clash = created.find((f) => presentSet.has(f) && !owned.has(f));
    if (clash) throw new PeftError(`${join(dir, clash)}: exists and was not written by 'peft data synth'; refusing to overwrite it`);
    // folders inside the output are made or checked with lstat first: a linked train/ is refused before anything moves, never written through
    for (const d of new Set(created.filter((f) => f.includes('/')).map((f) => dirname(f)))) makeDirInside(dir, d);
    for (const f of created) renameSync(join(tmp, f), join(dir, f));
    const createdSet = new Set(created);
    for (const f of present) {
      if (owned.has(f) && !createdSet.has(f)) {
        removeInside(dir, join(dir, f)); // a stale sample of the previous synth output (never through a linked folder)
        pruneEmpty(dir, f);
      }
    }
    return { ...summary, dir, replaced: marker !== undefined };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** The cache root: `$PEFT_CACHE`, else `~/.cache/peftjs`. */
export function defaultCacheDir(): string {
  return process.env.PEFT_CACHE || join(homedir(), '.cache', 'peftjs');
}

/**
 * The options of the default (embedded) dataset used when `peft train` has no
 * `--data-path`, and of `peft data synth`: 800 training and 200 test samples
 * at 128 px, the size of the `tiny` presets (docs/results.md: with 160
 * training images the models overfit). Generated once into the cache.
 */
export const defaultSynthOptions = { n: 1000, size: 128, seed: 0 } as const;

/**
 * Generates a small synthetic dataset once into the cache and returns its
 * path (`<cache>/synth-<seed>-<n>-<size>`). Published atomically: generated
 * into a temporary sibling, then renamed; a concurrent run that wins the race
 * is used as is.
 */
export async function ensureDefaultDataset(cacheDir?: string, options: SynthOptions = {}): Promise<string> {
  const opts = checkSynthOptions({ ...defaultSynthOptions, ...options });
  const root = resolve(cacheDir ?? defaultCacheDir());
  const dir = join(root, `synth-${opts.seed}-${opts.n}-${opts.size}`);
  const valid = (m: SynthMarker | undefined) => m !== undefined && m.version === synthGeneratorVersion && m.seed === opts.seed && m.n === opts.n && m.size === opts.size;
  if (valid(readSynthMarker(dir))) return dir;
  try {
    makeDir(root);
  } catch (err) {
    throw new PeftError(`${root}: cannot create the cache folder (${errorReason(err)})`);
  }
  const tmp = tempSibling(dir, 'tmp');
  try {
    await writeBeside(tmp, dir, opts);
    if (existsSync(dir)) {
      // a stale entry (older generator, or interrupted by hand): ours to replace
      const old = tempSibling(dir, 'old');
      renameSync(dir, old);
      rmSync(old, { recursive: true, force: true });
    }
    try {
      renameSync(tmp, dir);
    } catch (err) {
      if (!valid(readSynthMarker(dir))) throw err; // not a lost race: a real failure
    }
    return dir;
  } catch (err) {
    if (err instanceof PeftError) throw err;
    throw new PeftError(`${dir}: cannot write the default dataset (${errorReason(err)})`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
