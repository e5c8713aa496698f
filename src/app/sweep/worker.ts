// A queue worker (`peft worker`): pulls sweep jobs from the BullMQ queue and
// runs each as the local pool does (runSweepJob: a `peft train` child with its
// share of the cores, resumed from its last checkpoint, the result recorded
// once in the shared sweep folder). BullMQ's stalled-job handling is what
// makes a dead worker harmless: the job's lock expires, a live worker's
// stalled check puts the job back in the queue, and whoever takes it resumes
// the run folder from its last checkpoint (docs/scaling.md).
import { availableParallelism, hostname } from 'node:os';
import { isAbsolute } from 'node:path';
import { UnrecoverableError, WaitingError, Worker, type Job } from 'bullmq';
import { errorReason } from '../../core/errors.js';
import { isSweepFolder, openSweepFolder, readResult, type JobResult } from './folder.js';
import { redisOptions, type RedisTarget } from './queue-connection.js';
import { QUEUE_NAME, QUEUE_PREFIX, type QueueJobData, type QueueJobProgress, type QueueJobReturn } from './queue.js';
import { JobStopped, runSweepJob } from './run-job.js';

/**
 * How long a worker that stopped answering keeps its job (seconds): BullMQ's
 * lockDuration. The lock is renewed every half of it while the job runs, by
 * the worker's own event loop (the training is in a child process, so the
 * loop is free); a worker killed or cut off loses it after this long, and
 * the next stalled check of any worker (every STALL_SECONDS too) puts the
 * job back in the queue: a dead worker's job restarts within 2 x 30 s.
 */
export const STALL_SECONDS = 30;
/**
 * How many times one job may be taken back from a worker that died before it
 * fails for good (BullMQ's maxStalledCount; its default is 1). A job whose
 * every worker dies — one that takes the machine down — should not go round
 * the cluster for ever, but one kill (a machine rebooted, a spot instance
 * reclaimed) and then another should not lose it either.
 */
export const MAX_STALLS = 3;

export interface WorkerEvent {
  jobId: string;
  sweepDir: string;
  /** The BullMQ job's id (`<sweep key>/<job id>`). */
  queueId: string;
}

export interface SweepWorkerEvents {
  onJobStart?(e: WorkerEvent & { attempt: number; resume: boolean }): void;
  onJobDone?(e: WorkerEvent & { result: JobResult; already: boolean }): void;
  onJobFailed?(e: WorkerEvent & { message: string; willRetry: boolean }): void;
  /** A job stopped by this worker's stop(), back in the queue for its next attempt. */
  onJobRequeued?(e: WorkerEvent): void;
  /** Something worth one line: a connection lost, a stalled job taken back, a lock lost. */
  onWarning?(message: string): void;
}

export interface SweepWorkerOptions extends SweepWorkerEvents {
  /** Jobs at a time (default 1). */
  concurrency?: number;
  /** Native threads per job (default: the cores shared out among the concurrent jobs, at least 1). */
  threads?: number;
  /** BullMQ lockDuration and stalledInterval, in seconds (default STALL_SECONDS; tests use a few seconds). */
  stallSeconds?: number;
  /** The worker's name in the queue (default host:pid). */
  name?: string;
  /** The `peft` entry script (tests). */
  bin?: string;
}

export interface SweepWorker {
  name: string;
  concurrency: number;
  threads: number;
  /** Connected and waiting for jobs. */
  ready: Promise<void>;
  /**
   * Stops taking jobs and asks each running job to stop: its `peft train`
   * saves its last checkpoint, and the job goes back to the queue (no
   * attempt used) for this or another worker to resume. Resolves once the
   * worker has closed.
   */
  stop(): Promise<void>;
  /** Resolves when the worker has closed (after stop()). */
  closed: Promise<void>;
}

/** Native threads per job for `concurrency` jobs on this machine's cores. */
export function threadsPerJob(concurrency: number, cores = availableParallelism()): number {
  return Math.max(1, Math.floor(cores / Math.max(1, concurrency)));
}

/** Starts a worker on `target`'s queue; it runs jobs until stop(). */
export function startSweepWorker(target: RedisTarget, options: SweepWorkerOptions = {}): SweepWorker {
  const concurrency = Math.max(1, options.concurrency ?? 1);
  const threads = options.threads ?? threadsPerJob(concurrency);
  const name = options.name ?? `${hostname()}:${process.pid}`;
  const stallMs = Math.round((options.stallSeconds ?? STALL_SECONDS) * 1000);
  let stopping = false;
  /** Jobs whose lock this worker lost: another worker may hold them now. */
  const lost = new Set<string>();
  /** When each running job's lock was last renewed (or the job started). */
  const renewedAt = new Map<string, number>();
  /** Stops a job whose lock is gone, so that its `peft train` does not go on beside the worker that takes it back. */
  const loseLock = (id: string, why: string) => {
    if (!renewedAt.delete(id)) return; // not running, or already lost
    lost.add(id);
    worker.cancelJob(id, 'lock lost');
    options.onWarning?.(`lost the lock of job ${id} (${why}): stopping it with a checkpoint; another worker resumes it`);
  };

  const processor = async (bjob: Job<QueueJobData, QueueJobReturn>, token?: string, signal?: AbortSignal): Promise<QueueJobReturn> => {
    const { sweepDir, jobId } = bjob.data ?? ({} as Partial<QueueJobData>);
    if (typeof sweepDir !== 'string' || typeof jobId !== 'string' || !isAbsolute(sweepDir)) {
      throw new UnrecoverableError(`queue job ${bjob.id}: its data is not {sweepDir (an absolute path), jobId}`);
    }
    const e: WorkerEvent = { jobId, sweepDir, queueId: String(bjob.id) };
    // another machine's path: every worker must see the sweep folder at the same absolute path
    if (!isSweepFolder(sweepDir)) {
      throw new Error(`sweep folder ${sweepDir} is not there on ${hostname()}: mount the shared folder at the same path on every worker (docs/scaling.md)`);
    }
    const sweep = openSweepFolder(sweepDir);
    const job = sweep.jobs.find((j) => j.id === jobId);
    if (!job) throw new UnrecoverableError(`sweep ${sweepDir} has no job '${jobId}'`);
    const recorded = readResult(sweepDir, jobId);
    if (recorded) {
      // recorded by an earlier attempt (or a local pool) before its queue job completed
      options.onJobDone?.({ ...e, result: recorded, already: true });
      return returnOf(recorded, name);
    }
    let lastSent = 0;
    renewedAt.set(String(bjob.id), Date.now());
    try {
      const result = await runSweepJob(sweepDir, job, {
        threads,
        via: 'queue',
        signal,
        bin: options.bin,
        onStart: (info) => {
          options.onJobStart?.({ ...e, attempt: info.attempt, resume: info.resume });
          void bjob.updateProgress({ step: 0, total: 0, worker: name, attempt: info.attempt, resume: info.resume } satisfies QueueJobProgress).catch(() => {});
        },
        onProgress: (step, total) => {
          const now = Date.now();
          if (step < total && now - lastSent < 2000) return;
          lastSent = now;
          void bjob.updateProgress({ step, total, worker: name } satisfies QueueJobProgress).catch(() => {});
        },
      });
      options.onJobDone?.({ ...e, result, already: false });
      return returnOf(result, name);
    } catch (err) {
      if (err instanceof JobStopped && lost.has(String(bjob.id))) {
        options.onJobRequeued?.(e);
        // still ours after all (a late renewal): back to the queue at once; else the stalled check does it
        const requeued = await bjob.moveToWait(token).then(
          () => true,
          () => false,
        );
        if (requeued) throw new WaitingError();
        throw new Error(`job ${jobId}: this worker lost its lock (no renewal for ${stallMs / 1000} s) and stopped it; another worker resumes it`);
      }
      if (err instanceof JobStopped && stopping) {
        // back to the queue without using an attempt: the next worker resumes the checkpoint just saved
        await bjob.moveToWait(token);
        options.onJobRequeued?.(e);
        throw new WaitingError();
      }
      const attempts = bjob.opts.attempts ?? 1;
      const message = errorReason(err);
      options.onJobFailed?.({ ...e, message, willRetry: bjob.attemptsMade + 1 < attempts });
      throw err;
    } finally {
      renewedAt.delete(String(bjob.id));
      lost.delete(String(bjob.id));
    }
  };

  const worker = new Worker<QueueJobData, QueueJobReturn>(QUEUE_NAME, processor, {
    connection: redisOptions(target, true),
    prefix: QUEUE_PREFIX,
    name,
    concurrency,
    lockDuration: stallMs,
    stalledInterval: stallMs,
    maxStalledCount: MAX_STALLS,
    autorun: true,
  });
  worker.on('lockRenewalFailed', (ids) => {
    for (const id of ids) loseLock(id, 'Redis refused to renew it');
  });
  worker.on('locksRenewed', ({ jobIds }) => {
    const now = Date.now();
    for (const id of jobIds) if (renewedAt.has(id)) renewedAt.set(id, now);
  });
  // BullMQ reports a renewal Redis refused, but not one that never returns
  // (Redis down or cut off: the command waits for the reconnection): a lock
  // not renewed for its whole duration has expired, and the job may already
  // run elsewhere
  const watchdog = setInterval(() => {
    const now = Date.now();
    for (const [id, at] of renewedAt) if (now - at > stallMs) loseLock(id, `not renewed for ${Math.round((now - at) / 1000)} s: Redis unreachable?`);
  }, Math.min(1000, stallMs / 4));
  watchdog.unref();
  worker.once('closed', () => clearInterval(watchdog));
  worker.on('stalled', (id) => options.onWarning?.(`job ${id} stalled (its worker stopped answering): back in the queue, to resume from its last checkpoint`));
  let lastError = '';
  worker.on('error', (err) => {
    // a lost lock's aftermath (BullMQ's "could not renew lock", a script's -2 for a missing lock): already said by loseLock
    if (/could not renew lock|missing lock|^-\d+$/i.test(String(errorReason(err)))) return;
    const message = `redis at ${target.shown}: ${errorReason(err)}`;
    // ioredis repeats a connection error on every retry: say it once until it changes
    if (message !== lastError) options.onWarning?.(message);
    lastError = message;
  });
  worker.on('ready', () => {
    if (lastError) options.onWarning?.(`redis at ${target.shown}: connected again`);
    lastError = '';
  });
  const closed = new Promise<void>((resolve) => worker.once('closed', () => resolve()));
  return {
    name,
    concurrency,
    threads,
    ready: worker.waitUntilReady(),
    closed,
    async stop() {
      if (!stopping) {
        stopping = true;
        const closing = worker.close();
        worker.cancelAllJobs('worker stopping');
        await closing;
      }
      await closed;
    },
  };
}

function returnOf(result: JobResult, worker: string): QueueJobReturn {
  return { id: result.id, run: result.run, seconds: result.seconds, attempts: result.attempts, recordedBy: `${result.worker.host}:${result.worker.pid}`, worker };
}
