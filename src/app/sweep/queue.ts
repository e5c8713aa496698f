// A sweep on a BullMQ queue (`peft sweep --queue redis://…`): its unfinished
// jobs are enqueued, one BullMQ job each ({sweepDir, jobId}: the sweep folder
// is on a path every worker shares), and `peft worker` processes anywhere run
// them (worker.ts). The sweep folder stays the record: results/ says what is
// done, whoever ran it; the queue only says who runs what now. Enqueueing the
// same sweep again adds nothing twice: a job's BullMQ id is the sweep's key
// (its name and a hash of its absolute path) and the job's id.
import { createHash } from 'node:crypto';
import { basename, resolve } from 'node:path';
import { Queue, type Job, type JobsOptions } from 'bullmq';
import { PeftError, errorReason } from '../../core/errors.js';
import { isSweepFolder, jobState, openSweepFolder, readResult, type SweepFile } from './folder.js';
import { checkRedis, redisOptions, type RedisTarget } from './queue-connection.js';

/** The one queue every sweep's jobs go to. */
export const QUEUE_NAME = 'peftjs-sweep';
/** BullMQ's own default key prefix: the queue's keys are `bull:peftjs-sweep:*`. */
export const QUEUE_PREFIX = 'bull';
/** Tries of a job that fails (exits non-zero) before it stays failed; a worker dying does not count (worker.ts MAX_STALLS). */
export const JOB_ATTEMPTS = 3;
/** The first retry waits this long, the next twice as long (BullMQ's exponential backoff). */
export const RETRY_DELAY_MS = 30_000;
/** Finished queue jobs are kept this long (the sweep folder keeps results for ever). */
const KEEP_SECONDS = 30 * 24 * 3600;

/** A queue job's data. */
export interface QueueJobData {
  /** The sweep folder, absolute, at the same path on every worker. */
  sweepDir: string;
  /** The job's id in sweep.json. */
  jobId: string;
}

/** What a running job reports (job.updateProgress). */
export interface QueueJobProgress {
  step: number;
  total: number;
  /** The worker's name (host:pid). */
  worker: string;
  attempt?: number;
  resume?: boolean;
}

/** What a completed queue job returns (its result is in the sweep folder). */
export interface QueueJobReturn {
  id: string;
  run: string;
  seconds: number;
  attempts: number;
  /** Who recorded the result (host:pid): this worker, or an earlier attempt. */
  recordedBy: string;
  worker: string;
}

export const JOB_OPTIONS: JobsOptions = {
  attempts: JOB_ATTEMPTS,
  backoff: { type: 'exponential', delay: RETRY_DELAY_MS },
  removeOnComplete: { age: KEEP_SECONDS },
  removeOnFail: { age: KEEP_SECONDS },
};

/** The sweep's key in the queue: its name and a hash of its absolute path (two sweeps of one name in different folders stay apart). */
export function sweepKey(sweepDir: string, name = basename(sweepDir)): string {
  const abs = resolve(sweepDir);
  const slug = name.replace(/[^A-Za-z0-9_.-]+/g, '_').slice(0, 64) || 'sweep';
  return `${slug}-${createHash('sha256').update(abs).digest('hex').slice(0, 8)}`;
}

/** A sweep job's BullMQ id: `<sweep key>/<job id>` (BullMQ ids may not hold ':'). */
export function queueJobId(sweepDir: string, sweep: Pick<SweepFile, 'name'>, jobId: string): string {
  return `${sweepKey(sweepDir, sweep.name)}/${jobId}`;
}

/** The sweep queue, as BullMQ types it. */
export type SweepQueue = Queue<QueueJobData, QueueJobReturn, string, QueueJobData, QueueJobReturn, string>;

/** A queue on `target`, after checking within the time limit that Redis answers (a clear line otherwise). */
export async function openQueue(target: RedisTarget): Promise<SweepQueue> {
  await checkRedis(target);
  const queue: SweepQueue = new Queue<QueueJobData, QueueJobReturn, string, QueueJobData, QueueJobReturn, string>(QUEUE_NAME, { connection: redisOptions(target, false), prefix: QUEUE_PREFIX });
  // errors of the queue's connection reject its commands; without a listener they would also be thrown as events
  queue.on('error', () => {});
  return queue;
}

export interface EnqueueOutcome {
  total: number;
  /** Already recorded in results/: not enqueued. */
  done: number;
  /** Newly added to the queue. */
  added: number;
  /** Already in the queue (waiting, running or retrying): left as they are. */
  queued: number;
  /** Had failed for good: retried. */
  retried: number;
}

/** Enqueues every job of the sweep in `sweepDir` that has no result yet; see the file's head. */
export async function enqueueSweep(queue: SweepQueue, sweepDir: string): Promise<EnqueueOutcome> {
  const dir = resolve(sweepDir);
  const sweep = openSweepFolder(dir);
  const out: EnqueueOutcome = { total: sweep.jobs.length, done: 0, added: 0, queued: 0, retried: 0 };
  for (const job of sweep.jobs) {
    if (jobState(dir, job) === 'done') {
      out.done++;
      continue;
    }
    const id = queueJobId(dir, sweep, job.id);
    const existing = (await queue.getJob(id)) as Job<QueueJobData, QueueJobReturn> | undefined;
    const state = existing ? await existing.getState() : 'unknown';
    if (state === 'failed') {
      await existing!.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
      out.retried++;
    } else if (state === 'completed' || state === 'unknown') {
      // a completed queue job whose result is not in the folder (the folder was copied back, results removed): run it again
      if (existing) await existing.remove();
      await queue.add(job.id, { sweepDir: dir, jobId: job.id }, { ...JOB_OPTIONS, jobId: id });
      out.added++;
    } else {
      out.queued++;
    }
  }
  return out;
}

export interface ActiveJob {
  jobId: string;
  sweepDir: string;
  worker: string;
  step: number;
  total: number;
  attempt?: number;
}

export interface FailedJob {
  jobId: string;
  sweepDir: string;
  reason: string;
  tries: number;
}

export interface SweepProgress {
  dir: string;
  name: string;
  /** Jobs in sweep.json (undefined when the folder is not readable here). */
  total?: number;
  /** Results recorded (undefined when the folder is not readable here). */
  done?: number;
  /** Waiting for a worker (or delayed: a retry's backoff). */
  queued: number;
  /** Of those, failed jobs waiting for their retry (BullMQ's delayed). */
  retrying: number;
  active: ActiveJob[];
  /** Failed for good (every try used). */
  failed: FailedJob[];
  /** Unfinished jobs the queue no longer holds (Redis lost its data, or they were removed): enqueue again. */
  missing: string[];
}

export interface QueueStatus {
  url: string;
  counts: { waiting: number; active: number; completed: number; failed: number; delayed: number };
  workers: string[];
  sweeps: SweepProgress[];
}

/** Job states BullMQ keeps, in the order the status lists them. */
const STATES = ['active', 'waiting', 'prioritized', 'delayed', 'failed'] as const;

function progressOf(job: Job<QueueJobData, QueueJobReturn>): QueueJobProgress | undefined {
  const p = job.progress as unknown;
  return p && typeof p === 'object' && typeof (p as QueueJobProgress).step === 'number' ? (p as QueueJobProgress) : undefined;
}

/**
 * The queue's counts and workers, and per sweep (only `sweepDir`'s when it is
 * given) what is done, running (on which worker, at which step), queued and
 * failed for good.
 */
export async function queueStatus(queue: SweepQueue, target: RedisTarget, sweepDir?: string): Promise<QueueStatus> {
  const c = await queue.getJobCounts('waiting', 'prioritized', 'active', 'completed', 'failed', 'delayed');
  // a worker's connection is named `<prefix>:<queue in base64>:w:<worker name>`
  const workers = (await queue.getWorkers().catch(() => [])).map((w) => w.rawname?.split(':w:')[1] ?? w.addr ?? '?').sort();
  const bySweep = new Map<string, SweepProgress>();
  const only = sweepDir === undefined ? undefined : resolve(sweepDir);
  const entry = (dir: string): SweepProgress => {
    let s = bySweep.get(dir);
    if (!s) {
      s = { dir, name: basename(dir), queued: 0, retrying: 0, active: [], failed: [], missing: [] };
      bySweep.set(dir, s);
    }
    return s;
  };
  if (only) entry(only);
  const inQueue = new Set<string>();
  for (const state of STATES) {
    const jobs = (await queue.getJobs(state, 0, -1)) as (Job<QueueJobData, QueueJobReturn> | undefined)[];
    for (const job of jobs) {
      if (!job?.data || typeof job.data.sweepDir !== 'string') continue;
      if (only && job.data.sweepDir !== only) continue;
      inQueue.add(`${job.data.sweepDir}\0${job.data.jobId}`);
      const s = entry(job.data.sweepDir);
      if (state === 'active') {
        const p = progressOf(job);
        s.active.push({ jobId: job.data.jobId, sweepDir: job.data.sweepDir, worker: p?.worker ?? job.processedBy ?? '?', step: p?.step ?? 0, total: p?.total ?? 0, attempt: p?.attempt });
      } else if (state === 'failed') {
        s.failed.push({ jobId: job.data.jobId, sweepDir: job.data.sweepDir, reason: job.failedReason ?? '', tries: job.attemptsMade });
      } else {
        s.queued++;
        if (state === 'delayed') s.retrying++;
      }
    }
  }
  for (const s of bySweep.values()) {
    if (!isSweepFolder(s.dir)) continue;
    try {
      const sweep = openSweepFolder(s.dir);
      s.name = sweep.name;
      s.total = sweep.jobs.length;
      s.done = 0;
      for (const job of sweep.jobs) {
        if (readResult(s.dir, job.id)) s.done++;
        else if (!inQueue.has(`${s.dir}\0${job.id}`)) s.missing.push(job.id);
      }
    } catch {
      // a folder this machine cannot read: the queue's view only
    }
  }
  return {
    url: target.shown,
    counts: { waiting: (c.waiting ?? 0) + (c.prioritized ?? 0), active: c.active ?? 0, completed: c.completed ?? 0, failed: c.failed ?? 0, delayed: c.delayed ?? 0 },
    workers,
    sweeps: [...bySweep.values()],
  };
}

/** The status as lines for a terminal. */
export function formatQueueStatus(status: QueueStatus): string[] {
  const { counts: k } = status;
  const lines = [
    `queue ${QUEUE_NAME} at ${status.url}: ${k.waiting} waiting, ${k.active} active, ${k.completed} completed, ${k.failed} failed, ${k.delayed} delayed`,
    `workers: ${status.workers.length ? status.workers.join(', ') : 'none connected'}`,
  ];
  for (const s of status.sweeps) {
    const done = s.total === undefined ? 'folder not readable here' : `${s.done}/${s.total} done`;
    lines.push(`sweep ${s.name} (${s.dir}): ${done}, ${s.active.length} running, ${s.queued} queued${s.retrying ? ` (${s.retrying} waiting to retry after a failure)` : ''}, ${s.failed.length} failed`);
    for (const a of s.active) lines.push(`  running  ${a.jobId}  on ${a.worker}  ${a.total ? `step ${a.step}/${a.total}` : 'starting'}${a.attempt && a.attempt > 1 ? `  (attempt ${a.attempt})` : ''}`);
    for (const f of s.failed) lines.push(`  failed   ${f.jobId}  after ${f.tries} ${f.tries === 1 ? 'try' : 'tries'}: ${f.reason.replace(/\s+/g, ' ').slice(0, 300)}`);
    if (s.missing.length) lines.push(`  not in the queue: ${s.missing.length} unfinished job(s) (${s.missing.slice(0, 5).join(', ')}${s.missing.length > 5 ? ', …' : ''}): enqueue them again with peft sweep --queue ${status.url} --out ${s.dir}`);
  }
  return lines;
}

export interface FollowEvents {
  /** Every poll: the sweep as it stands. */
  onUpdate?(progress: SweepProgress): void;
  onJobDone?(jobId: string): void;
  onJobFailed?(job: FailedJob): void;
  /** A line worth showing (Redis unreachable for a while, jobs enqueued again). */
  onWarning?(message: string): void;
}

export interface FollowOutcome {
  done: number;
  total: number;
  failed: FailedJob[];
}

/**
 * Follows the sweep in `sweepDir` until every job is recorded or failed for
 * good (or `signal` aborts: the jobs stay queued). Jobs that the queue lost
 * (Redis restarted without its data) are enqueued again. Polls every
 * `intervalMs`.
 */
export async function followSweep(
  queue: SweepQueue,
  target: RedisTarget,
  sweepDir: string,
  options: FollowEvents & { signal?: AbortSignal; intervalMs?: number } = {},
): Promise<FollowOutcome> {
  const dir = resolve(sweepDir);
  const sweep = openSweepFolder(dir);
  const seenDone = new Set<string>();
  const seenFailed = new Set<string>();
  for (const job of sweep.jobs) if (readResult(dir, job.id)) seenDone.add(job.id);
  let unreachableSince = 0;
  for (;;) {
    if (options.signal?.aborted) throw new PeftError('stopped following');
    let status: SweepProgress | undefined;
    try {
      status = (await queueStatus(queue, target, dir)).sweeps[0];
      if (unreachableSince) options.onWarning?.(`redis at ${target.shown} answers again`);
      unreachableSince = 0;
    } catch (err) {
      if (!unreachableSince) {
        unreachableSince = Date.now();
        options.onWarning?.(`redis at ${target.shown} does not answer (${errorReason(err)}): still waiting; the workers go on with their jobs`);
      }
    }
    if (status) {
      for (const job of sweep.jobs) {
        if (!seenDone.has(job.id) && readResult(dir, job.id)) {
          seenDone.add(job.id);
          options.onJobDone?.(job.id);
        }
      }
      for (const f of status.failed) {
        if (!seenFailed.has(f.jobId)) {
          seenFailed.add(f.jobId);
          options.onJobFailed?.(f);
        }
      }
      if (status.missing.length) {
        const again = await enqueueSweep(queue, dir);
        if (again.added) options.onWarning?.(`${again.added} unfinished job(s) were no longer in the queue (Redis lost its data?): enqueued again`);
      }
      options.onUpdate?.(status);
      const done = status.done ?? seenDone.size;
      const failedForGood = status.failed.filter((f) => !readResult(dir, f.jobId));
      if (done + failedForGood.length >= sweep.jobs.length) return { done, total: sweep.jobs.length, failed: failedForGood };
    }
    await new Promise<void>((resolveWait) => {
      const wake = () => {
        clearTimeout(t);
        options.signal?.removeEventListener('abort', wake);
        resolveWait();
      };
      const t = setTimeout(wake, options.intervalMs ?? 1000);
      options.signal?.addEventListener('abort', wake, { once: true });
    });
  }
}
