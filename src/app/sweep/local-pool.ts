// The local pool: a sweep's unfinished jobs run on this machine, `jobs` at a
// time, each a `peft train` child with its share of the cores for the native
// kernels. A failed job does not stop the others; a stop (abort) lets every
// running job save its checkpoint, so the next start resumes them.
import { availableParallelism } from 'node:os';
import { errorReason } from '../../core/errors.js';
import { jobState, type JobResult, type SweepFile } from './folder.js';
import { JobStopped, runSweepJob } from './run-job.js';
import type { SweepJob } from './spec.js';

export interface PoolEvents {
  onJobStart?(job: SweepJob, info: { attempt: number; resume: boolean }): void;
  onJobProgress?(job: SweepJob, step: number, total: number): void;
  onJobDone?(job: SweepJob, result: JobResult): void;
  onJobFailed?(job: SweepJob, message: string): void;
}

export interface PoolOptions extends PoolEvents {
  /** Jobs at a time (default: one per core). */
  jobs?: number;
  /** Native threads per job (default: the cores shared out, at least 1). */
  threads?: number;
  signal?: AbortSignal;
  /** The `peft` entry script (tests). */
  bin?: string;
}

export interface PoolOutcome {
  /** Results of every job that is done, this time or before (in the sweep's order). */
  done: JobResult[];
  failed: { job: SweepJob; message: string }[];
  /** Jobs not finished because the pool was stopped. */
  stopped: SweepJob[];
  /** How many were already done when the pool started. */
  alreadyDone: number;
}

/** Jobs and threads per job on this machine: one job per core by default, the cores shared out. */
export function poolShape(jobs?: number, threads?: number): { jobs: number; threads: number } {
  const cores = availableParallelism();
  const j = Math.max(1, jobs ?? cores);
  return { jobs: j, threads: Math.max(1, threads ?? Math.floor(cores / j)) };
}

/** Runs the sweep's jobs that are not done yet; returns when each has finished, failed or been stopped. */
export async function runLocalPool(sweepDir: string, sweep: SweepFile, options: PoolOptions = {}): Promise<PoolOutcome> {
  const { jobs, threads } = poolShape(options.jobs, options.threads);
  const results = new Map<string, JobResult>();
  const failed: PoolOutcome['failed'] = [];
  const stopped: SweepJob[] = [];
  const todo: SweepJob[] = [];
  let alreadyDone = 0;
  for (const job of sweep.jobs) {
    if (jobState(sweepDir, job) === 'done') alreadyDone++;
    todo.push(job); // a done job returns its recorded result at once
  }
  let next = 0;
  const worker = async () => {
    while (next < todo.length) {
      const job = todo[next++]!;
      if (options.signal?.aborted) {
        if (jobState(sweepDir, job) !== 'done') {
          stopped.push(job);
          continue;
        }
      }
      try {
        const wasDone = jobState(sweepDir, job) === 'done';
        const result = await runSweepJob(sweepDir, job, {
          threads,
          via: 'local',
          signal: options.signal,
          bin: options.bin,
          onStart: (info) => options.onJobStart?.(job, info),
          onProgress: (step, total) => options.onJobProgress?.(job, step, total),
        });
        results.set(job.id, result);
        if (!wasDone) options.onJobDone?.(job, result);
      } catch (err) {
        if (err instanceof JobStopped) {
          stopped.push(job);
        } else {
          const message = errorReason(err);
          failed.push({ job, message });
          options.onJobFailed?.(job, message);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, todo.length) }, worker));
  const done = sweep.jobs.map((j) => results.get(j.id)).filter((r): r is JobResult => r !== undefined);
  return { done, failed, stopped, alreadyDone };
}
