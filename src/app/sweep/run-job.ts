// One job of a sweep, run to its end: `peft train` in a child process (its
// own tfjs engine and its share of the cores), resuming the job's run folder
// from its last checkpoint when an earlier attempt left one, and the result
// recorded exactly once. Used by the local pool and by queue workers alike.
import { fork } from 'node:child_process';
import { closeSync, constants, existsSync, fstatSync, openSync, readSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PeftError, errorReason } from '../../core/errors.js';
import { appendNoFollow, linkRefused } from '../../core/io/no-follow.js';
import { readRegularTextFile } from '../../core/io/read-regular-file.js';
import { printableText, quoteName } from '../../core/text.js';
import type { RunSummaryFile } from '../runs/train-run.js';
import { LOGS_DIR, RUNS_DIR, logFileOf, readResult, recordResult, runDirOf, sweepSubfolder, type JobResult } from './folder.js';
import type { SweepJob } from './spec.js';

export interface RunJobOptions {
  /** Native kernel threads the job's process may use (its share of the cores). */
  threads: number;
  via: 'local' | 'queue';
  /** Aborting stops the job as SIGINT does: its last checkpoint is saved and the promise rejects with `JobStopped`. */
  signal?: AbortSignal;
  onProgress?(step: number, total: number): void;
  /** Called when the child process starts (whether it resumes the job's run). */
  onStart?(info: { attempt: number; resume: boolean; pid: number }): void;
  /** The `peft` entry script (default: this package's bin/run.js). */
  bin?: string;
}

/** The job was stopped before it finished (its checkpoint is saved; running it again resumes it). */
export class JobStopped extends PeftError {}

let cliEntry: string | undefined;

/** This package's bin/run.js, found above this file from src/ and from dist/src/. */
export function peftBin(): string {
  if (cliEntry) return cliEntry;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const bin = join(dir, 'bin', 'run.js');
    if (existsSync(join(dir, 'package.json')) && existsSync(bin)) return (cliEntry = bin);
    const up = dirname(dir);
    if (up === dir) throw new PeftError('cannot find peftjs\'s bin/run.js above its modules');
    dir = up;
  }
}

function readSummary(runDir: string): RunSummaryFile | undefined {
  const file = join(runDir, 'summary.json');
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readRegularTextFile(file, 'json')) as RunSummaryFile;
  } catch (err) {
    throw new PeftError(`${quoteName(file)}: cannot read the run's summary (${errorReason(err)})`);
  }
}

function attemptsFile(sweepDir: string, jobId: string): string {
  return join(sweepSubfolder(sweepDir, LOGS_DIR), `${jobId}.attempts`);
}

/** The job's attempts so far, counted in logs/<job>.attempts (one line per start, appended). */
function countAttempt(sweepDir: string, jobId: string, line: string): number {
  const file = attemptsFile(sweepDir, jobId);
  appendNoFollow(file, `${line}\n`, 'record the attempt');
  return readRegularTextFile(file, 'json').split('\n').filter(Boolean).length;
}

function attemptsSoFar(sweepDir: string, jobId: string): number {
  const file = attemptsFile(sweepDir, jobId);
  return existsSync(file) ? Math.max(1, readRegularTextFile(file, 'json').split('\n').filter(Boolean).length) : 1;
}

/** The job's log opened for appending, for the child's output: a link there is refused, never written through. */
function openLog(file: string): number {
  let fd: number;
  try {
    fd = openSync(file, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NOCTTY, 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') throw linkRefused(file);
    throw new PeftError(`${quoteName(file)}: cannot open the job's log (${errorReason(err)})`);
  }
  if (!fstatSync(fd).isFile()) {
    closeSync(fd);
    throw new PeftError(`${quoteName(file)}: not a regular file; cannot write the job's log`);
  }
  return fd;
}

/** The last meaningful line of a job's log (an error's message), printable and short. */
export function lastLogLine(file: string): string {
  try {
    const fd = openSync(file, 'r');
    try {
      const size = fstatSync(fd).size;
      const n = Math.min(size, 8192);
      const buf = Buffer.alloc(n);
      readSync(fd, buf, 0, n, size - n);
      const lines = buf.toString('utf8').split(/\r?\n|\r/).map((l) => l.trim()).filter((l) => l && !l.startsWith('==='));
      const line = [...lines].reverse().find((l) => !/^step \d+\/\d+ /.test(l)) ?? '';
      return printableText(line).slice(0, 300);
    } finally {
      closeSync(fd);
    }
  } catch {
    return '';
  }
}

function resultOf(job: SweepJob, summary: RunSummaryFile, via: 'local' | 'queue', attempts: number, startedAt: Date): JobResult {
  const finishedAt = new Date();
  return {
    version: 1,
    id: job.id,
    group: job.group,
    backbone: job.backbone,
    method: job.method,
    seed: job.seed,
    values: job.values,
    run: `${RUNS_DIR}/${job.id}`,
    summary,
    worker: { host: hostname(), pid: process.pid, via },
    attempts,
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    seconds: (finishedAt.getTime() - startedAt.getTime()) / 1000,
  };
}

/**
 * Runs `job` of the sweep in `sweepDir` to its end and returns its recorded
 * result. A job already recorded returns at once; a run that finished but
 * was not recorded (its process killed in between) is recorded from its
 * summary.json; a started run is resumed from its last checkpoint. The
 * child's output is appended to logs/<job>.log. A failed run rejects with
 * its last error line; an aborted one with `JobStopped`.
 */
export async function runSweepJob(sweepDir: string, job: SweepJob, options: RunJobOptions): Promise<JobResult> {
  const recorded = readResult(sweepDir, job.id);
  if (recorded) return recorded;
  const runDir = runDirOf(sweepDir, job.id);
  const started = new Date();
  const finished = readSummary(runDir);
  if (finished) {
    recordResult(sweepDir, resultOf(job, finished, options.via, attemptsSoFar(sweepDir, job.id), started));
    return readResult(sweepDir, job.id)!;
  }
  if (options.signal?.aborted) throw new JobStopped(`job ${job.id}: stopped before it started`);
  // runs/ must be the sweep's own folder: peft train writes the run under it
  sweepSubfolder(sweepDir, RUNS_DIR);
  const resume = existsSync(join(runDir, 'run.json'));
  const attempt = countAttempt(sweepDir, job.id, JSON.stringify({ host: hostname(), pid: process.pid, via: options.via, at: started.toISOString(), resume }));
  const logFile = logFileOf(sweepDir, job.id);
  appendNoFollow(logFile, `=== attempt ${attempt} of job ${job.id} on ${hostname()} (pid ${process.pid}, ${options.via}), ${resume ? 'resuming its run' : 'a new run'}, ${started.toISOString()} ===\n`);
  const args = ['train', '--out', join(resolve(sweepDir), RUNS_DIR), '--exp-name', job.id, ...(resume ? ['--resume'] : job.args)];
  const log = openLog(logFile);
  let code: number | null;
  let signal: NodeJS.Signals | null;
  try {
    const child = fork(options.bin ?? peftBin(), args, {
      stdio: ['ignore', log, log, 'ipc'],
      env: { ...process.env, PEFT_NATIVE_THREADS: String(options.threads) },
    });
    options.onStart?.({ attempt, resume, pid: child.pid ?? -1 });
    const onAbort = () => child.kill('SIGINT');
    options.signal?.addEventListener('abort', onAbort, { once: true });
    child.on('message', (m: unknown) => {
      const p = m as { type?: unknown; step?: unknown; total?: unknown };
      if (p?.type === 'progress' && typeof p.step === 'number' && typeof p.total === 'number') options.onProgress?.(p.step, p.total);
    });
    [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((res, rej) => {
      child.once('error', rej);
      child.once('exit', (c, s) => res([c, s]));
    });
    options.signal?.removeEventListener('abort', onAbort);
  } catch (err) {
    throw new PeftError(`job ${job.id}: cannot start peft train (${errorReason(err)})`);
  } finally {
    closeSync(log);
  }
  const summary = readSummary(runDir);
  if (code === 0 && summary) {
    recordResult(sweepDir, resultOf(job, summary, options.via, attempt, started));
    return readResult(sweepDir, job.id)!;
  }
  if (options.signal?.aborted) throw new JobStopped(`job ${job.id}: stopped; its last checkpoint is saved and the next start resumes it`);
  const why = signal ? `killed by ${signal}` : code === 0 ? 'stopped before its last step' : `exit code ${code}`;
  const line = lastLogLine(logFile);
  throw new PeftError(`job ${job.id} failed (${why})${line ? `: ${line}` : ''} — see ${logFile}`);
}
