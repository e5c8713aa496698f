// Reads a sweep folder for the report through the sweep's own reader
// (src/app/sweep/folder.ts: sweep.json and results/<job>.json as regular JSON
// files, each validated by its one schema). A missing result is an unfinished
// job; a result that cannot be read or used is a warning and counts as
// unfinished, so one bad file does not hide the rest of the sweep.
import { PeftError } from '../../../core/errors.js';
import { quoteName } from '../../../core/text.js';
import { isSweepFolder, openSweepFolder, readResult, runDirOf, SWEEP_FILE, type JobResult, type SweepFile } from '../../sweep/folder.js';
import type { SweepJob } from '../../sweep/spec.js';
import { resultSummarySchema, type ResultSummary } from './schema.js';
import { join } from 'node:path';

export { isSweepFolder, SWEEP_FILE };

/** A finished job's result, its summary checked for the numbers the report shows. */
export type SweepResult = Omit<JobResult, 'summary'> & { summary: ResultSummary };

export interface SweepData {
  /** The folder as given. */
  dir: string;
  name: string;
  createdAt: string | null;
  jobs: SweepJob[];
  /** Finished jobs' results, by job id. */
  results: Map<string, SweepResult>;
}

/** The folder of a job's training run. */
export const jobRunDir = (dir: string, id: string) => runDirOf(dir, id);

function usable(dir: string, job: SweepJob): SweepResult | undefined {
  const file = join(dir, 'results', `${job.id}.json`);
  const r = readResult(dir, job.id);
  if (!r) return undefined;
  if (r.id !== job.id) throw new PeftError(`${quoteName(file)}: is the result of job ${quoteName(r.id)}, not of ${quoteName(job.id)}`);
  const summary = resultSummarySchema.safeParse(r.summary);
  if (!summary.success) {
    const issue = summary.error.issues[0]!;
    throw new PeftError(`${quoteName(file)}: ${quoteName(['summary', ...issue.path.map(String)].join('.'))}: ${issue.message}`);
  }
  return { ...r, summary: summary.data };
}

/** Reads sweep.json and every job's result; `warn` hears of results that cannot be used. */
export function readSweep(dir: string, warn: (line: string) => void = () => {}): SweepData {
  // openSweepFolder refuses job ids that are not plain folder names ('.', '..')
  const sweep: SweepFile = openSweepFolder(dir);
  const results = new Map<string, SweepResult>();
  for (const job of sweep.jobs) {
    try {
      const r = usable(dir, job);
      if (r) results.set(job.id, r);
    } catch (e) {
      if (!(e instanceof PeftError)) throw e;
      warn(`${e.message}; job ${quoteName(job.id)} is counted as unfinished`);
    }
  }
  return { dir, name: sweep.name, createdAt: sweep.createdAt, jobs: sweep.jobs, results };
}
