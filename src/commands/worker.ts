import { Flags } from '@oclif/core';
import { resolve } from 'node:path';
import { BaseCommand } from '../cli/base-command.js';
import { FLAG_LIMITS, integerFlag } from '../cli/flag-values.js';
import { duration } from '../cli/progress.js';
import { ensureDefaultDataset } from '../app/data/synth-output.js';
import { checkRedis, parseRedisUrl } from '../app/sweep/queue-connection.js';
import { QUEUE_NAME } from '../app/sweep/queue.js';
import { STALL_SECONDS, startSweepWorker } from '../app/sweep/worker.js';

const stamp = () => new Date().toISOString().slice(11, 19);

export default class Worker extends BaseCommand {
  static override summary = "Run sweep jobs from a Redis queue (peft sweep --queue) until stopped.";
  static override description = `Pulls jobs of any sweep enqueued by \`peft sweep --queue\` and runs each as \`peft train\` in a child process (--concurrency at a time, each with its share of the cores), resuming its run from its last checkpoint; the result is recorded once in the sweep folder, which must be on a path every worker sees at the same absolute path (docs/scaling.md). A worker that dies mid-job loses its job to another worker within about ${2 * STALL_SECONDS} s (its lock expires after ${STALL_SECONDS} s, and live workers look for such jobs every ${STALL_SECONDS} s), which resumes it from its last checkpoint. --backend and --plugin reach the jobs.

Ctrl-C (or SIGTERM) stops taking jobs and asks the running ones to stop: each saves its checkpoint and goes back to the queue for the next worker to resume. A second Ctrl-C quits at once (the jobs are then taken back when their lock expires).`;
  static override examples = ['<%= config.bin %> worker --queue redis://10.0.0.5:6379', '<%= config.bin %> worker --queue redis://127.0.0.1:6379 --concurrency 2'];
  static override flags = {
    queue: Flags.string({ description: 'the Redis server of the queue: redis://HOST:PORT', required: true }),
    concurrency: integerFlag(FLAG_LIMITS.positive)({ char: 'c', description: 'jobs at a time on this machine', default: 1 }),
    threads: integerFlag(FLAG_LIMITS.positive)({ description: 'native kernel threads per job (default: the cores shared out between the jobs)' }),
    'stall-seconds': integerFlag(FLAG_LIMITS.positive)({ description: `seconds after which a job whose worker stopped answering is taken back (BullMQ lockDuration and stalledInterval; default ${STALL_SECONDS}; every worker of a queue should use the same)`, hidden: true }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Worker);
    const target = parseRedisUrl(flags.queue);
    await checkRedis(target);
    // --backend and --plugin reach the jobs' processes through PEFT_BACKEND and PEFT_PLUGINS
    if (flags.backend) process.env.PEFT_BACKEND = flags.backend;
    if (this.pluginFlags.length) process.env.PEFT_PLUGINS = [process.env.PEFT_PLUGINS, ...this.pluginFlags.map((p) => resolve(p))].filter(Boolean).join(',');
    // the embedded dataset, generated here once rather than by concurrent jobs (jobs with --data-path do not use it)
    const data = await ensureDefaultDataset();
    const line = (text: string) => this.log(`${stamp()} ${text}`);
    const worker = startSweepWorker(target, {
      concurrency: flags.concurrency,
      threads: flags.threads,
      stallSeconds: flags['stall-seconds'],
      onJobStart: (e) => line(`start ${e.jobId} (${e.sweepDir})${e.resume ? `: attempt ${e.attempt}, resuming its run` : ''}`),
      onJobDone: (e) => line(e.already ? `done  ${e.jobId}: already recorded` : `done  ${e.jobId} in ${duration(e.result.seconds)}`),
      onJobFailed: (e) => line(`FAIL  ${e.jobId}: ${e.message}${e.willRetry ? ' (retried later)' : ''}`),
      onJobRequeued: (e) => line(`stop  ${e.jobId}: checkpoint saved, back in the queue`),
      onWarning: (text) => this.warnLine(text),
    });
    // said before the first job can start (Redis answered already: checkRedis)
    line(`worker ${worker.name} on ${QUEUE_NAME} at ${target.shown}: ${worker.concurrency} job${worker.concurrency === 1 ? '' : 's'} at a time, ${worker.threads} thread${worker.threads === 1 ? '' : 's'} each; default data ${data}; Ctrl-C stops`);
    await worker.ready;
    let signals = 0;
    const onSignal = (sig: string) => {
      if (++signals > 1) process.exit(130);
      line(`${sig}: taking no more jobs; running jobs save their checkpoint and go back to the queue (again to quit at once)`);
      void worker.stop();
    };
    const sigint = () => onSignal('SIGINT');
    const sigterm = () => onSignal('SIGTERM');
    process.on('SIGINT', sigint);
    process.on('SIGTERM', sigterm);
    try {
      await worker.closed;
      line('worker stopped');
    } finally {
      process.off('SIGINT', sigint);
      process.off('SIGTERM', sigterm);
    }
  }
}
