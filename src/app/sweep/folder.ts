// The sweep folder: sweep.json (what the sweep is, written once), runs/<job>/
// (ordinary run folders), results/<job>.json (each job's result, recorded
// exactly once), logs/<job>.log (each job's output over its attempts). The
// folder is the sweep's whole state: a restart, the local pool and queue
// workers on other machines (through a shared path) all read and write it.
import { closeSync, existsSync, fsyncSync, linkSync, lstatSync, openSync, readdirSync, rmSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { PeftError, errorReason } from '../../core/errors.js';
import { writeFileAtomic } from '../../core/io/atomic.js';
import { makeDir } from '../../core/io/make-dir.js';
import { makeDirInside } from '../../core/io/no-follow.js';
import { readRegularTextFile } from '../../core/io/read-regular-file.js';
import { quoteName } from '../../core/text.js';
import type { RunSummaryFile } from '../runs/train-run.js';
import { SweepSpecSchema, type Settings, type SweepJob, type SweepSpec } from './spec.js';

export const SWEEP_FILE = 'sweep.json';
export const RUNS_DIR = 'runs' as const;
export const RESULTS_DIR = 'results' as const;
export const LOGS_DIR = 'logs' as const;

export interface SweepFile {
  version: 1;
  name: string;
  createdAt: string;
  spec: SweepSpec;
  jobs: SweepJob[];
}

/** A finished job, as results/<job>.json holds it. */
export interface JobResult {
  version: 1;
  id: string;
  group: string;
  backbone: string;
  method: string;
  seed: number;
  values: Settings;
  /** `runs/<job>`, relative to the sweep folder. */
  run: string;
  /** The run's summary.json. */
  summary: RunSummaryFile;
  worker: { host: string; pid: number; via: 'local' | 'queue' };
  /** How many times the job was started (1 unless it was interrupted and resumed). */
  attempts: number;
  /** The last attempt's wall-clock. */
  startedAt: string;
  finishedAt: string;
  seconds: number;
}

const settingValue = z.union([z.string(), z.number(), z.boolean()]);
const JobSchema = z.strictObject({
  // a plain folder name under runs/: never '.', '..' or hidden
  id: z.string().regex(/^[A-Za-z0-9_=-][A-Za-z0-9_.=-]{0,199}$/, 'a job id is a plain folder name'),
  group: z.string().min(1).max(200),
  backbone: z.string().min(1),
  method: z.string().min(1),
  seed: z.number().int().min(0),
  values: z.record(z.string(), settingValue),
  args: z.array(z.string().max(4096)).max(400),
});
const SweepFileSchema = z.strictObject({
  version: z.literal(1),
  name: z.string().min(1).max(64),
  createdAt: z.string(),
  spec: SweepSpecSchema,
  jobs: z.array(JobSchema).min(1).max(10_000),
});
const JobResultSchema = z.looseObject({
  version: z.literal(1),
  id: z.string(),
  group: z.string(),
  backbone: z.string(),
  method: z.string(),
  seed: z.number(),
  values: z.record(z.string(), settingValue),
  run: z.string(),
  summary: z.looseObject({}),
  worker: z.looseObject({ host: z.string(), pid: z.number(), via: z.enum(['local', 'queue']) }),
  attempts: z.number().int().min(1),
  startedAt: z.string(),
  finishedAt: z.string(),
  seconds: z.number(),
});

/** The first schema issue, as one line naming the file and the key. */
function schemaError(file: string, error: z.ZodError): PeftError {
  const issue = error.issues[0]!;
  return new PeftError(`${quoteName(file)}: ${quoteName(issue.path.map(String).join('.') || '(the whole file)')}: ${issue.message}`);
}

function readJson(file: string): unknown {
  const text = readRegularTextFile(file, 'json');
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new PeftError(`${quoteName(file)}: not valid JSON (${errorReason(err)})`);
  }
}

/** Reads and validates a sweep folder's sweep.json. */
export function openSweepFolder(dir: string): SweepFile {
  const file = join(dir, SWEEP_FILE);
  if (!existsSync(file)) throw new PeftError(`${quoteName(dir)} is not a sweep folder (no ${SWEEP_FILE})`);
  const r = SweepFileSchema.safeParse(readJson(file));
  if (!r.success) throw schemaError(file, r.error);
  const ids = new Set<string>();
  for (const j of r.data.jobs) {
    if (ids.has(j.id)) throw new PeftError(`${quoteName(file)}: job ${quoteName(j.id)} is listed twice`);
    ids.add(j.id);
  }
  return r.data as SweepFile;
}

/** True when `dir` holds a sweep. */
export function isSweepFolder(dir: string): boolean {
  try {
    return lstatSync(join(dir, SWEEP_FILE)).isFile();
  } catch {
    return false;
  }
}

/** The first difference between two specs, as a key path (undefined when they are the same). */
function firstDifference(a: unknown, b: unknown, path = ''): string | undefined {
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return Object.is(a, b) ? undefined : path || '(the spec)';
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const k of keys) {
    const d = firstDifference((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], path ? `${path}.${k}` : k);
    if (d !== undefined) return d;
  }
  return undefined;
}

/**
 * Creates the sweep folder for `spec` and its jobs, or opens the one already
 * there: the same sweep (a restart) continues; a different one is refused,
 * naming the first setting that differs; a folder holding anything else is
 * refused too (nothing of the user's is written over).
 */
export function createOrOpenSweep(dir: string, spec: SweepSpec, jobs: SweepJob[], name: string): { sweep: SweepFile; created: boolean } {
  if (isSweepFolder(dir)) {
    const sweep = openSweepFolder(dir);
    const d = firstDifference(sweep.spec, spec) ?? firstDifference(sweep.jobs, jobs);
    if (d !== undefined) {
      throw new PeftError(`${quoteName(dir)} holds another sweep (it differs at ${quoteName(d)}): continue it with \`peft sweep --out ${dir}\` alone, or choose another --out`);
    }
    return { sweep, created: false };
  }
  if (existsSync(dir) && readdirSync(dir).length > 0) throw new PeftError(`${quoteName(dir)} is not empty and holds no sweep: choose another --out`);
  const sweep: SweepFile = { version: 1, name, createdAt: new Date().toISOString(), spec, jobs };
  try {
    makeDir(dir);
  } catch (err) {
    throw new PeftError(`${quoteName(dir)}: cannot create the sweep folder (${errorReason(err)})`);
  }
  for (const sub of [RUNS_DIR, RESULTS_DIR, LOGS_DIR]) sweepSubfolder(dir, sub);
  writeFileAtomic(join(dir, SWEEP_FILE), `${JSON.stringify(sweep, null, 2)}\n`);
  return { sweep, created: true };
}

/**
 * A folder of the sweep (runs/, results/, logs/), created if missing; a
 * symbolic link there is refused, so nothing a job writes lands outside the
 * sweep folder (the folder itself, the --out the user named, may be a link).
 */
export function sweepSubfolder(sweepDir: string, sub: typeof RUNS_DIR | typeof RESULTS_DIR | typeof LOGS_DIR): string {
  return makeDirInside(resolve(sweepDir), sub);
}

export function runDirOf(sweepDir: string, jobId: string): string {
  return join(resolve(sweepDir), RUNS_DIR, jobId);
}

export function logFileOf(sweepDir: string, jobId: string): string {
  return join(resolve(sweepDir), LOGS_DIR, `${jobId}.log`);
}

function resultFileOf(sweepDir: string, jobId: string): string {
  return join(resolve(sweepDir), RESULTS_DIR, `${jobId}.json`);
}

/** A job's recorded result, or undefined. */
export function readResult(sweepDir: string, jobId: string): JobResult | undefined {
  const file = resultFileOf(sweepDir, jobId);
  if (!existsSync(file)) return undefined;
  const r = JobResultSchema.safeParse(readJson(file));
  if (!r.success) throw schemaError(file, r.error);
  return r.data as unknown as JobResult;
}

/** Every recorded result of the sweep's jobs, in the jobs' order. */
export function readResults(sweepDir: string, sweep: SweepFile): JobResult[] {
  return sweep.jobs.map((j) => readResult(sweepDir, j.id)).filter((r): r is JobResult => r !== undefined);
}

/**
 * Records a job's result exactly once: written to a temp file, then hard-linked
 * to results/<job>.json, which fails if the name exists (atomic on local file
 * systems and on NFS). Returns false when the result was already recorded (by
 * this or another worker): the first one stands.
 */
export function recordResult(sweepDir: string, result: JobResult): boolean {
  const file = resultFileOf(sweepDir, result.id);
  const tmp = `${file}.${hostname()}.${process.pid}.${Date.now()}.tmp`;
  try {
    sweepSubfolder(sweepDir, RESULTS_DIR);
    // 'wx': never opens an existing name, a link included
    const fd = openSync(tmp, 'wx');
    try {
      writeSync(fd, `${JSON.stringify(result, null, 2)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    try {
      linkSync(tmp, file);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw err;
    }
  } catch (err) {
    if (err instanceof PeftError) throw err;
    throw new PeftError(`${quoteName(file)}: cannot record the result (${errorReason(err)})`);
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** Where a job stands: recorded, started (its run folder holds run.json), or not started. */
export function jobState(sweepDir: string, job: SweepJob): 'done' | 'started' | 'new' {
  if (existsSync(resultFileOf(sweepDir, job.id))) return 'done';
  return existsSync(join(runDirOf(sweepDir, job.id), 'run.json')) ? 'started' : 'new';
}
