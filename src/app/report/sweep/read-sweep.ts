// Reads a sweep folder for the report: sweep.json (required: without it the
// folder is no sweep) and the results/<jobId>.json of its jobs. Both go
// through readRegularTextFile (regular files only, 16 MiB at most). A missing
// result is an unfinished job; an unreadable one is a warning and counts as
// unfinished, so one bad file does not hide the rest of the sweep.
import { existsSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { z } from 'zod';
import { PeftError } from '../../../core/errors.js';
import { readRegularTextFile } from '../../../core/io/read-regular-file.js';
import { briefValue, quoteName } from '../../../core/text.js';
import { jobResultSchema, sweepFileSchema, type JobResult, type SweepJob } from './schema.js';

export const SWEEP_FILE = 'sweep.json';

export interface SweepData {
  /** The folder as given. */
  dir: string;
  name: string;
  createdAt: string | null;
  jobs: SweepJob[];
  /** Finished jobs' results, by job id. */
  results: Map<string, JobResult>;
}

/** Whether `dir` is a sweep folder (a folder holding sweep.json). */
export function isSweepFolder(dir: string): boolean {
  try {
    return statSync(dir).isDirectory() && existsSync(join(dir, SWEEP_FILE));
  } catch {
    return false;
  }
}

/** The folder of a job's training run. */
export const jobRunDir = (dir: string, id: string) => join(dir, 'runs', id);
/** The file that says a job finished. */
export const jobResultFile = (dir: string, id: string) => join(dir, 'results', `${id}.json`);

function parse<T>(file: string, schema: z.ZodType<T>): T {
  const text = readRegularTextFile(file, 'json');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new PeftError(`${file}: not valid JSON (${briefValue((e as Error).message)})`);
  }
  const r = schema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const key = issue.path.length ? issue.path.map(String).join('.') : '(top level)';
    throw new PeftError(`${file}: ${quoteName(key)}: ${issue.message}`);
  }
  return r.data;
}

/** Reads sweep.json and every job's result; `warn` hears of results that cannot be used. */
export function readSweep(dir: string, warn: (line: string) => void = () => {}): SweepData {
  const file = join(dir, SWEEP_FILE);
  if (!isSweepFolder(dir)) throw new PeftError(`${dir}: not a sweep folder (no ${SWEEP_FILE})`);
  const sweep = parse(file, sweepFileSchema);
  const seen = new Set<string>();
  for (const job of sweep.jobs) {
    if (seen.has(job.id)) throw new PeftError(`${file}: job ${quoteName(job.id)} is listed twice`);
    seen.add(job.id);
  }
  const results = new Map<string, JobResult>();
  for (const job of sweep.jobs) {
    const rf = jobResultFile(dir, job.id);
    if (!existsSync(rf)) continue;
    try {
      const r = parse(rf, jobResultSchema);
      if (r.id !== job.id) throw new PeftError(`${rf}: is the result of job ${quoteName(r.id)}, not of ${quoteName(job.id)}`);
      results.set(job.id, r);
    } catch (e) {
      if (!(e instanceof PeftError)) throw e;
      warn(`${e.message}; job ${quoteName(job.id)} is counted as unfinished`);
    }
  }
  return { dir, name: sweep.name ?? basename(resolve(dir)), createdAt: sweep.createdAt ?? null, jobs: sweep.jobs, results };
}
