import { Flags } from '@oclif/core';
import { basename, resolve } from 'node:path';
import { BaseCommand } from '../cli/base-command.js';
import { FLAG_LIMITS, integerFlag, pathFlag } from '../cli/flag-values.js';
import { duration } from '../cli/progress.js';
import { PeftError } from '../core/errors.js';
import { quoteName } from '../core/text.js';
import { ensureDefaultDataset } from '../app/data/synth-output.js';
import { createOrOpenSweep, isSweepFolder, jobState, openSweepFolder, type JobResult, type SweepFile } from '../app/sweep/folder.js';
import { poolShape, runLocalPool } from '../app/sweep/local-pool.js';
import { SweepStatusLine } from '../cli/sweep-status.js';
import { checkQueueFlags, enqueueAndFollow, showQueueStatus } from '../cli/sweep-queue.js';
import {
  absolutePaths,
  absoluteSettings,
  expandSweep,
  parseGridFlag,
  parseSeeds,
  parseSweepSpec,
  parseTrainArgs,
  readSweepFile,
  type SweepSpec,
  type TrainFlagInfo,
} from '../app/sweep/spec.js';
import Train from './train.js';

/** peft train's flags, as the sweep needs to know them (switch or value). */
function trainFlagTable(): Record<string, TrainFlagInfo> {
  const out: Record<string, TrainFlagInfo> = {};
  for (const [name, f] of Object.entries(Train.flags as Record<string, { type?: string; allowNo?: boolean }>)) {
    out[name] = { boolean: f.type === 'boolean', allowNo: Boolean(f.allowNo) };
  }
  return out;
}

const list = (text: string, flag: string) => {
  const items = text.split(',').map((s) => s.trim()).filter(Boolean);
  if (!items.length) throw new PeftError(`--${flag} ${quoteName(text)}: give at least one id, comma-separated`);
  return items;
};

function dice(r: JobResult): string {
  const d = r.summary.final?.dice;
  return d ? Object.entries(d).map(([c, v]) => `${c} ${v.toFixed(4)}`).join(', ') : 'no final metrics';
}

export default class Sweep extends BaseCommand {
  static override summary = 'Train a grid of runs — backbones x methods x settings x seeds — into one sweep folder, on this machine or on peft workers anywhere (--queue).';
  static override description = `Each job is a \`peft train\` run in its own process, several at a time (--jobs, default one per core), each with its share of the cores for the native kernels. The grid comes from flags or from a sweep file (JSON or YAML, with per-pair settings: see docs/sweeps.md). \`peft train\` flags for every job go after \`--\`.

The sweep folder holds sweep.json (the jobs, fixed at creation), runs/<job>/ (run folders), results/<job>.json (each job's result, recorded once) and logs/<job>.log. Stopped (Ctrl-C: running jobs save their checkpoint) or killed, the same command — or \`peft sweep --out DIR\` alone — keeps finished jobs and resumes the others from their last checkpoint. \`peft report DIR\` aggregates over seeds.`;
  static override examples = [
    '<%= config.bin %> sweep --backbones sam,efficient_sam --methods lora,adapter,adalora --seeds 3 --out sweeps/seed-table',
    '<%= config.bin %> sweep --backbones sam --methods lora --set r=4,8,16 --seeds 2 -- --steps 800 --lr 3e-3',
    '<%= config.bin %> sweep --file sweeps/quality.json --out sweeps/quality',
    '<%= config.bin %> sweep --out sweeps/quality        # continue a stopped sweep',
    '<%= config.bin %> sweep --backbones sam --methods lora,adapter --seeds 2 --dry-run',
    '<%= config.bin %> sweep --file sweeps/quality.yaml --out /shared/sweeps/quality --queue redis://10.0.0.5:6379   # peft worker on each machine',
  ];
  static override usage = 'sweep [--file F | --backbones B,… --methods M,… [--seeds N] [--set key=v1,v2]…] [--out DIR] [--jobs N] [-- peft train flags]';
  static override strict = false;
  static override flags = {
    file: pathFlag({ char: 'f', description: 'sweep file (.json, .yaml): backbones, methods, seeds, grid, train settings, per-pair settings' }),
    backbones: Flags.string({ description: 'backbone ids, comma-separated' }),
    methods: Flags.string({ description: 'method ids, comma-separated' }),
    seeds: Flags.string({ description: 'a count n (seeds 0..n-1) or the seeds, comma-separated (default 1)' }),
    set: Flags.string({ description: 'a grid dimension: key=v1,v2,… (a peft train flag such as lr, or a method config key such as r); repeatable', multiple: true }),
    name: Flags.string({ description: "the sweep's name (default: the file's, else the folder's)" }),
    out: pathFlag({ char: 'o', description: 'sweep folder (default: sweeps/<name>); an existing sweep folder is continued' }),
    jobs: integerFlag(FLAG_LIMITS.positive)({ char: 'j', description: 'jobs at a time (default: one per core)' }),
    threads: integerFlag(FLAG_LIMITS.positive)({ description: 'native kernel threads per job (default: the cores shared out between the jobs)' }),
    'dry-run': Flags.boolean({ description: 'print the jobs and their peft train commands, run nothing' }),
    queue: Flags.string({ description: 'enqueue the jobs on this Redis (redis://HOST:PORT) for `peft worker` processes, then follow them (docs/scaling.md)' }),
    detach: Flags.boolean({ description: 'with --queue: return once the jobs are enqueued' }),
    status: Flags.boolean({ description: 'with --queue: show the queue (and the sweep folder given as argument or --out), run nothing' }),
  };

  async run(): Promise<void> {
    const { flags, argv } = await this.parse(Sweep);
    // peft train's flags: the raw tokens after the first `--` (oclif's argv drops repeated values there)
    const dd = this.argv.indexOf('--');
    const trainArgs = dd >= 0 ? this.argv.slice(dd + 1) : [];
    const positional = dd >= 0 ? [] : (argv as string[]);
    checkQueueFlags(flags);
    if (flags.status) return showQueueStatus(flags.queue!, positional[0] ?? flags.out, { log: (l) => this.log(l), warn: (l) => this.warnLine(l) });
    if (positional.length) throw new PeftError(`unexpected argument ${quoteName(positional[0])}: the sweep folder is --out, and peft train's flags go after --`);
    const registry = await this.registry();
    const given = flags.file !== undefined || flags.backbones !== undefined || flags.methods !== undefined || flags.seeds !== undefined || flags.set !== undefined || trainArgs.length > 0;
    let sweep: SweepFile;
    let dir: string;
    if (!given) {
      // continue a sweep: its folder holds everything
      if (!flags.out) throw new PeftError('give a grid (--backbones and --methods, or --file), or --out DIR to continue a sweep');
      dir = resolve(flags.out);
      if (!isSweepFolder(dir)) throw new PeftError(`${quoteName(flags.out)} holds no sweep to continue (no sweep.json): give a grid to start one`);
      sweep = openSweepFolder(dir);
    } else {
      const spec = this.spec(flags, trainArgs);
      const jobs = expandSweep(spec, registry, trainFlagTable());
      const name = flags.name ?? spec.name ?? (flags.out ? basename(resolve(flags.out)) : `sweep-${new Date().toISOString().replace(/[-:]/g, '').slice(0, 15)}`);
      dir = resolve(flags.out ?? `sweeps/${name}`);
      if (flags['dry-run']) {
        this.log(`${jobs.length} job${jobs.length === 1 ? '' : 's'} into ${dir}:`);
        for (const j of jobs) this.log(`  ${j.id}: peft train --out ${dir}/runs --exp-name ${j.id} ${j.args.join(' ')}`);
        return;
      }
      const opened = createOrOpenSweep(dir, spec, jobs, name);
      sweep = opened.sweep;
      if (!opened.created) this.log(`continuing the sweep in ${dir}`);
    }
    if (flags['dry-run']) {
      for (const j of sweep.jobs) this.log(`  ${j.id}: peft train --out ${dir}/runs --exp-name ${j.id} ${j.args.join(' ')}`);
      return;
    }
    if (flags.queue !== undefined) return enqueueAndFollow(dir, sweep, { url: flags.queue, detach: flags.detach }, { log: (l) => this.log(l), warn: (l) => this.warnLine(l) });
    await this.runLocal(dir, sweep, flags.jobs, flags.threads);
  }

  /** The sweep's spec from --file, or from the grid flags and the peft train flags after `--`. */
  private spec(flags: { file?: string; backbones?: string; methods?: string; seeds?: string; set?: string[]; name?: string }, trainArgs: string[]): SweepSpec {
    const table = trainFlagTable();
    if (flags.file !== undefined) {
      if (flags.file === '') throw new PeftError('--file is empty: give a sweep file (.json, .yaml)');
      const spec = readSweepFile(flags.file);
      // flags given beside a file refine it: a narrower grid, other seeds, more settings
      return parseSweepSpec(
        {
          ...spec,
          ...(flags.backbones !== undefined ? { backbones: list(flags.backbones, 'backbones') } : {}),
          ...(flags.methods !== undefined ? { methods: list(flags.methods, 'methods') } : {}),
          ...(flags.seeds !== undefined ? { seeds: parseSeeds(flags.seeds) } : {}),
          grid: { ...spec.grid, ...Object.fromEntries((flags.set ?? []).map(parseGridFlag)) },
          train: { ...spec.train, ...absoluteSettings(parseTrainArgs(trainArgs, table), process.cwd()) },
        },
        'the sweep file with the flags',
      );
    }
    if (flags.backbones === undefined || flags.methods === undefined) throw new PeftError('a sweep needs --backbones and --methods (or --file)');
    const spec = parseSweepSpec(
      {
        ...(flags.name !== undefined ? { name: flags.name } : {}),
        backbones: list(flags.backbones, 'backbones'),
        methods: list(flags.methods, 'methods'),
        ...(flags.seeds !== undefined ? { seeds: parseSeeds(flags.seeds) } : {}),
        grid: Object.fromEntries((flags.set ?? []).map(parseGridFlag)),
        train: parseTrainArgs(trainArgs, table),
      },
      'the flags',
    );
    return absolutePaths(spec, process.cwd());
  }

  private async runLocal(dir: string, sweep: SweepFile, jobsFlag?: number, threadsFlag?: number): Promise<void> {
    const shape = poolShape(jobsFlag, threadsFlag);
    // --plugin reaches the jobs' processes through PEFT_PLUGINS
    if (this.pluginFlags.length) process.env.PEFT_PLUGINS = [process.env.PEFT_PLUGINS, ...this.pluginFlags.map((p) => resolve(p))].filter(Boolean).join(',');
    // the embedded dataset, generated once here rather than by every job at once
    if (sweep.jobs.some((j) => !j.args.includes('--data-path'))) this.log(`data: ${await ensureDefaultDataset()}`);
    const status = new SweepStatusLine(sweep.jobs.length, sweep.jobs.filter((j) => jobState(dir, j) === 'done').length);
    this.log(`sweep ${sweep.name}: ${sweep.jobs.length} job${sweep.jobs.length === 1 ? '' : 's'} in ${dir}, ${shape.jobs} at a time with ${shape.threads} thread${shape.threads === 1 ? '' : 's'} each`);
    const stop = new AbortController();
    const onSignal = (sig: string) => {
      if (stop.signal.aborted) process.exit(130);
      stop.abort();
      status.note(`${sig}: each running job saves its checkpoint and stops; run \`peft sweep --out ${dir}\` to resume (again to quit at once)`);
    };
    const sigint = () => onSignal('SIGINT');
    const sigterm = () => onSignal('SIGTERM');
    process.on('SIGINT', sigint);
    process.on('SIGTERM', sigterm);
    const t0 = performance.now();
    try {
      const outcome = await runLocalPool(dir, sweep, {
        jobs: shape.jobs,
        threads: shape.threads,
        signal: stop.signal,
        onJobStart: (job, info) => {
          status.start(job.id);
          status.note(`start ${job.id}${info.resume ? ` (attempt ${info.attempt}, resuming its run)` : ''}`);
        },
        onJobProgress: (job, step, total) => status.progress(job.id, step, total),
        onJobDone: (job, r) => status.finish(job.id, `done  ${job.id}: dice ${dice(r)} in ${duration(r.seconds)}`),
        onJobFailed: (job, message) => status.finish(job.id, `FAIL  ${job.id}: ${message}`, true),
      });
      status.done();
      const already = outcome.alreadyDone ? ` (${outcome.alreadyDone} from before)` : '';
      this.log(`${outcome.done.length} of ${sweep.jobs.length} jobs done${already}, ${outcome.failed.length} failed${outcome.stopped.length ? `, ${outcome.stopped.length} stopped` : ''} in ${duration((performance.now() - t0) / 1000)}`);
      if (outcome.failed.length) this.log(`failed: ${outcome.failed.map((f) => f.job.id).join(', ')} (their logs are in ${dir}/logs; the same command retries them)`);
      if (outcome.done.length) this.log(`report: peft report ${dir}`);
      if (outcome.stopped.length) process.exitCode = 130;
      else if (outcome.failed.length) process.exitCode = 1;
    } finally {
      process.off('SIGINT', sigint);
      process.off('SIGTERM', sigterm);
    }
  }
}
