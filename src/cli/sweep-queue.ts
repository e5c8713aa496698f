// `peft sweep --queue redis://…`: the sweep's jobs enqueued for `peft worker`
// processes anywhere, then followed until each is recorded or failed for
// good (Ctrl-C stops following; the jobs stay queued); and
// `peft sweep --status --queue …`, the queue as it stands.
import { resolve } from 'node:path';
import { PeftError } from '../core/errors.js';
import { printableLine } from '../core/text.js';
import type { SweepFile } from '../app/sweep/folder.js';
import { parseRedisUrl } from '../app/sweep/queue-connection.js';
import { QUEUE_NAME, enqueueSweep, followSweep, formatQueueStatus, openQueue, queueStatus, type SweepProgress } from '../app/sweep/queue.js';
import { duration } from './progress.js';

export interface QueueCommandIo {
  log(line: string): void;
  warn(line: string): void;
}

/** Prints the queue's status (and the sweep in `sweepDir`'s, when given). */
export async function showQueueStatus(url: string, sweepDir: string | undefined, io: QueueCommandIo): Promise<void> {
  const target = parseRedisUrl(url);
  const queue = await openQueue(target);
  try {
    for (const line of formatQueueStatus(await queueStatus(queue, target, sweepDir === undefined ? undefined : resolve(sweepDir)))) io.log(line);
  } finally {
    await queue.close();
  }
}

/** The follow line: jobs done of all, each running job's step and worker, the queued count. */
function followText(p: SweepProgress, total: number): string {
  const running = p.active.map((a) => `${a.jobId} ${a.total ? `${a.step}/${a.total}` : 'starting'} on ${a.worker}`).join(' · ');
  return `sweep ${p.done ?? 0}/${total} done${running ? ` · ${running}` : ''} · ${p.queued} queued${p.failed.length ? ` · ${p.failed.length} failed` : ''}`;
}

/**
 * Enqueues the sweep in `dir` on the queue at `url` and, unless `detach`,
 * follows it to its end. Sets process.exitCode: 1 when a job failed for
 * good, 130 when following was stopped.
 */
export async function enqueueAndFollow(dir: string, sweep: SweepFile, options: { url: string; detach?: boolean }, io: QueueCommandIo): Promise<void> {
  const target = parseRedisUrl(options.url);
  const queue = await openQueue(target);
  const follow = `peft sweep --status --queue ${target.shown} ${dir}`;
  try {
    const e = await enqueueSweep(queue, dir);
    const parts = [`${e.added} enqueued`, ...(e.queued ? [`${e.queued} already queued`] : []), ...(e.retried ? [`${e.retried} failed before, retried`] : []), ...(e.done ? [`${e.done} done before`] : [])];
    io.log(`sweep ${sweep.name}: ${e.total} job${e.total === 1 ? '' : 's'} in ${dir}; ${parts.join(', ')} on ${QUEUE_NAME} at ${target.shown}`);
    if (e.done === e.total) {
      io.log(`report: peft report ${dir}`);
      return;
    }
    io.log(`run them with \`peft worker --queue ${target.shown}\` on each machine that sees ${dir} at this path`);
    if (options.detach) {
      io.log(`status: ${follow}`);
      return;
    }
    const out = process.stderr;
    const tty = Boolean(out.isTTY);
    let lastPlain = 0;
    let lastText = '';
    const note = (line: string) => {
      out.write(tty ? `\r\x1b[2K${printableLine(line)}\n` : `${printableLine(line)}\n`);
      if (tty && lastText) out.write(lastText);
    };
    const stop = new AbortController();
    const onSignal = () => {
      if (stop.signal.aborted) process.exit(130);
      stop.abort();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    const t0 = performance.now();
    try {
      const r = await followSweep(queue, target, dir, {
        signal: stop.signal,
        onJobDone: (id) => note(`done  ${id}`),
        onJobFailed: (f) => note(`FAIL  ${f.jobId} after ${f.tries} ${f.tries === 1 ? 'try' : 'tries'}: ${f.reason}`),
        onWarning: (line) => io.warn(line),
        onUpdate: (p) => {
          const text = printableLine(followText(p, sweep.jobs.length)).slice(0, Math.max(20, (out.columns ?? 120) - 1));
          if (tty) out.write(`\r\x1b[2K${text}`);
          else if (performance.now() - lastPlain > 30_000) {
            lastPlain = performance.now();
            out.write(`${text}\n`);
          }
          lastText = tty ? `\r\x1b[2K${text}` : '';
        },
      });
      if (tty) out.write('\r\x1b[2K');
      io.log(`${r.done} of ${r.total} jobs done, ${r.failed.length} failed for good, in ${duration((performance.now() - t0) / 1000)}`);
      if (r.failed.length) {
        io.log(`failed: ${r.failed.map((f) => f.jobId).join(', ')} (logs in ${dir}/logs; the same command enqueues them again)`);
        process.exitCode = 1;
      }
      if (r.done) io.log(`report: peft report ${dir}`);
    } catch (err) {
      if (!stop.signal.aborted) throw err;
      if (tty) out.write('\r\x1b[2K');
      io.log(`stopped following: the jobs stay queued and the workers go on; follow again with the same command (it enqueues nothing twice), or see ${follow}`);
      process.exitCode = 130;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  } finally {
    await queue.close();
  }
}

/** --status and --detach need --queue, whose URL is read before anything is created; --jobs and --threads are the local pool's. */
export function checkQueueFlags(flags: { queue?: string; status?: boolean; detach?: boolean; jobs?: number; threads?: number }): void {
  if (flags.queue === undefined) {
    if (flags.status) throw new PeftError('--status shows a queue: give --queue redis://HOST:PORT');
    if (flags.detach) throw new PeftError('--detach goes with --queue redis://HOST:PORT (a local sweep runs in this process)');
    return;
  }
  parseRedisUrl(flags.queue);
  for (const f of ['jobs', 'threads'] as const) {
    if (flags[f] !== undefined) throw new PeftError(`--${f} is the local pool's: with --queue, each worker decides (peft worker --concurrency N --threads T)`);
  }
}
