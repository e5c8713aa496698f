// `peft sweep` on one machine: the spec and its expansion into jobs, the
// sweep folder (a restart continues, another sweep is refused, results are
// recorded once), and the local pool end to end: the sweep process killed
// mid-job leaves no training behind, and the same command resumes each job
// from its last checkpoint.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDefaultRegistry } from '../src/builtins.js';
import type { Registry } from '../src/core/registry/registry.js';
import { createOrOpenSweep, openSweepFolder, readResults, recordResult, type JobResult } from '../src/app/sweep/folder.js';
import { runSweepJob } from '../src/app/sweep/run-job.js';
import { expandSweep, parseSweepSpec, parseTrainArgs, readSweepFile, type TrainFlagInfo } from '../src/app/sweep/spec.js';
import Train from '../src/commands/train.js';
import { peftSpawn, peftSync, sleep } from './support/cli-runs.js';

const flags: Record<string, TrainFlagInfo> = Object.fromEntries(
  Object.entries(Train.flags as Record<string, { type?: string; allowNo?: boolean }>).map(([k, f]) => [k, { boolean: f.type === 'boolean', allowNo: Boolean(f.allowNo) }]),
);

let registry: Registry;
let tmp: string;
beforeAll(async () => {
  registry = await createDefaultRegistry();
  tmp = mkdtempSync(join(tmpdir(), 'peft-sweep-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('the sweep spec', () => {
  it('expands backbones x methods x grid x seeds, with per-pair settings, most specific last', () => {
    const spec = parseSweepSpec(
      {
        backbones: ['sam', 'efficient_sam'],
        methods: ['lora', 'adapter'],
        seeds: 2,
        grid: { lr: [0.001, 0.003] },
        train: { steps: 10, augment: true, 'freeze-decoder': false },
        pairs: { lora: { alpha: 4 }, 'sam/lora': { alpha: 8, dropout: 0.1 } },
      },
      'test',
    );
    const jobs = expandSweep(spec, registry, flags);
    expect(jobs).toHaveLength(2 * 2 * 2 * 2);
    expect(new Set(jobs.map((j) => j.id)).size).toBe(16);
    const j = jobs.find((x) => x.id === 'sam-lora-lr=0.003-s1')!;
    expect(j).toMatchObject({ group: 'sam-lora-lr=0.003', backbone: 'sam', method: 'lora', seed: 1, values: { lr: 0.003 } });
    expect(j.args.join(' ')).toBe('--backbone sam --method lora --seed 1 --save-every 200 --steps 10 --augment --no-freeze-decoder --alpha 8 --set dropout=0.1 --lr 0.003');
    const e = jobs.find((x) => x.id === 'efficient_sam-lora-lr=0.001-s0')!;
    expect(e.args).toContain('4');
    const a = jobs.find((x) => x.id === 'sam-adapter-lr=0.001-s0')!;
    expect(a.args).not.toContain('--alpha');
  });

  it('explicit seeds, and a grid over a method config key', () => {
    const jobs = expandSweep(parseSweepSpec({ backbones: ['sam'], methods: ['lora'], seeds: [7, 3], grid: { r: [2, 8] } }, 't'), registry, flags);
    expect(jobs.map((j) => j.id)).toEqual(['sam-lora-r=2-s7', 'sam-lora-r=2-s3', 'sam-lora-r=8-s7', 'sam-lora-r=8-s3']);
    expect(jobs[0]!.args).toEqual(expect.arrayContaining(['--set', 'r=2']));
  });

  it.each([
    [{ backbones: ['sam'], methods: ['lorra'] }, /unknown method 'lorra'.*did you mean 'lora'/],
    [{ backbones: ['sam'], methods: ['lora'], train: { out: 'x' } }, /'out': the sweep sets it itself/],
    [{ backbones: ['sam'], methods: ['adapter'], train: { alpha: 4 } }, /'alpha' does not apply to sam\/adapter/],
    [{ backbones: ['sam'], methods: ['lora'], train: { stpes: 4 } }, /'stpes' is neither a flag of peft train nor a config key of lora/],
    [{ backbones: ['sam'], methods: ['lora'], train: { augment: 'yes' } }, /'augment' is a switch/],
    [{ backbones: ['sam'], methods: ['lora'], grid: { lr: [1, 2] }, pairs: { lora: { lr: 3 } } }, /'lr' is both swept \(grid\) and fixed/],
    [{ backbones: ['sam'], methods: ['lora'], pairs: { 'mobile_sam/lora': { alpha: 2 } } }, /pairs: 'mobile_sam\/lora' names no backbone/],
  ])('refuses a mistake before anything runs: %j', (raw, message) => {
    expect(() => expandSweep(parseSweepSpec(raw, 't'), registry, flags)).toThrow(message);
  });

  it('refuses a wrong spec naming the key', () => {
    expect(() => parseSweepSpec({ backbones: [], methods: ['lora'] }, 'f.yaml')).toThrow(/^f\.yaml: 'backbones': /);
    expect(() => parseSweepSpec({ backbones: ['sam'], methods: ['lora'], seeds: 0 }, 'f')).toThrow(/'seeds'/);
    expect(() => parseSweepSpec({ backbones: ['sam'], methods: ['lora'], extra: 1 }, 'f')).toThrow(/Unrecognized key/);
  });

  it('reads peft train flags after --: switches by the command, --no-, inline values, --set', () => {
    expect(parseTrainArgs(['--steps', '5', '--augment', '--no-freeze-decoder', '--lr=3e-3', '--set', 'dropout=0.1', '--data-path', 'd'], flags)).toEqual({
      steps: 5,
      augment: true,
      'freeze-decoder': false,
      lr: 0.003,
      dropout: 0.1,
      'data-path': 'd',
    });
    expect(() => parseTrainArgs(['--stepz', '5'], flags)).toThrow(/--stepz is not a flag of peft train/);
    expect(() => parseTrainArgs(['--steps'], flags)).toThrow(/--steps needs a value/);
    expect(() => parseTrainArgs(['5'], flags)).toThrow(/'5' is not a --flag/);
  });

  it('reads YAML and JSON sweep files; their relative paths are relative to the file', () => {
    const dir = join(tmp, 'spec-files');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 's.yaml'), 'backbones: [sam]\nmethods: [lora]\nseeds: 2\ntrain:\n  data-path: data/refuge\n');
    expect(readSweepFile(join(dir, 's.yaml')).train['data-path']).toBe(join(dir, 'data/refuge'));
    writeFileSync(join(dir, 's.json'), JSON.stringify({ backbones: ['sam'], methods: ['lora'] }));
    expect(readSweepFile(join(dir, 's.json')).seeds).toBe(1);
    writeFileSync(join(dir, 'bad.yaml'), 'backbones: [sam\n');
    expect(() => readSweepFile(join(dir, 'bad.yaml'))).toThrow(/bad\.yaml'?: not valid YAML/);
  });
});

describe('peft sweep --dry-run', () => {
  it('passes the flags after -- to every job as written, repeated values included', () => {
    const r = peftSync(['sweep', '--backbones', 'sam', '--methods', 'lora', '--jobs', '2', '--dry-run', '--', '--steps', '2', '--val-every', '2']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/sam-lora-s0: peft train .* --steps 2 --val-every 2\n/);
    const stray = peftSync(['sweep', '--backbones', 'sam', '--methods', 'lora', 'stray', '--dry-run']);
    expect(stray.code).toBe(2);
    expect(stray.stderr).toMatch(/unexpected argument 'stray'/);
  });
});

describe('the sweep folder', () => {
  const spec = () => parseSweepSpec({ backbones: ['sam'], methods: ['lora', 'adapter'], seeds: 2 }, 't');

  it('is created once; the same sweep continues, another is refused naming what differs; a foreign folder is refused', () => {
    const dir = join(tmp, 'folder-a');
    const jobs = expandSweep(spec(), registry, flags);
    expect(createOrOpenSweep(dir, spec(), jobs, 'a').created).toBe(true);
    expect(createOrOpenSweep(dir, spec(), jobs, 'a').created).toBe(false);
    const other = parseSweepSpec({ backbones: ['sam'], methods: ['lora', 'adapter'], seeds: 3 }, 't');
    expect(() => createOrOpenSweep(dir, other, expandSweep(other, registry, flags), 'a')).toThrow(/holds another sweep \(it differs at 'seeds'\)/);
    const foreign = join(tmp, 'folder-foreign');
    mkdirSync(foreign);
    writeFileSync(join(foreign, 'notes.txt'), 'mine');
    expect(() => createOrOpenSweep(foreign, spec(), jobs, 'f')).toThrow(/is not empty and holds no sweep/);
    expect(readFileSync(join(foreign, 'notes.txt'), 'utf8')).toBe('mine');
    expect(openSweepFolder(dir).jobs).toHaveLength(4);
    // a job id that would name the sweep folder itself (runs/..) is refused
    const hostile = join(tmp, 'folder-hostile');
    createOrOpenSweep(hostile, spec(), jobs, 'h');
    const file = JSON.parse(readFileSync(join(hostile, 'sweep.json'), 'utf8')) as { jobs: { id: string }[] };
    file.jobs[0]!.id = '..';
    writeFileSync(join(hostile, 'sweep.json'), JSON.stringify(file));
    expect(() => openSweepFolder(hostile)).toThrow(/'jobs\.0\.id': a job id is a plain folder name/);
  });

  it('records a result exactly once, the first one standing', () => {
    const dir = join(tmp, 'folder-b');
    const jobs = expandSweep(spec(), registry, flags);
    const { sweep } = createOrOpenSweep(dir, spec(), jobs, 'b');
    const job = jobs[0]!;
    const result = (seconds: number): JobResult => ({
      version: 1,
      id: job.id,
      group: job.group,
      backbone: job.backbone,
      method: job.method,
      seed: job.seed,
      values: {},
      run: `runs/${job.id}`,
      summary: { final: null } as never,
      worker: { host: 'h', pid: 1, via: 'local' },
      attempts: 1,
      startedAt: '',
      finishedAt: '',
      seconds,
    });
    expect(recordResult(dir, result(1))).toBe(true);
    expect(recordResult(dir, result(2))).toBe(false);
    expect(readResults(dir, sweep).map((r) => r.seconds)).toEqual([1]);
    expect(readdirSync(join(dir, 'results'))).toEqual([`${job.id}.json`]);
  });
});

describe('the sweep folder never writes through a link it did not make', () => {
  const spec = () => parseSweepSpec({ backbones: ['sam'], methods: ['lora'], seeds: 1 }, 't');

  it('a linked job log, results/ or runs/ is refused and the outside file is left as it was', async () => {
    const outside = join(tmp, 'outside');
    mkdirSync(outside, { recursive: true });
    writeFileSync(join(outside, 'victim.txt'), 'keep me');
    const dir = join(tmp, 'linked');
    const jobs = expandSweep(spec(), registry, flags);
    createOrOpenSweep(dir, spec(), jobs, 'l');
    symlinkSync(join(outside, 'victim.txt'), join(dir, 'logs', `${jobs[0]!.id}.log`));
    await expect(runSweepJob(dir, jobs[0]!, { threads: 1, via: 'local' })).rejects.toThrow(/\.log: is a symbolic link; peftjs never writes/);
    rmSync(join(dir, 'results'), { recursive: true });
    symlinkSync(outside, join(dir, 'results'));
    expect(() => recordResult(dir, { id: jobs[0]!.id } as JobResult)).toThrow(/results: is a symbolic link/);
    rmSync(join(dir, 'runs'), { recursive: true });
    symlinkSync(outside, join(dir, 'runs'));
    rmSync(join(dir, 'logs', `${jobs[0]!.id}.log`));
    await expect(runSweepJob(dir, jobs[0]!, { threads: 1, via: 'local' })).rejects.toThrow(/runs: is a symbolic link/);
    expect(readdirSync(outside)).toEqual(['victim.txt']);
    expect(readFileSync(join(outside, 'victim.txt'), 'utf8')).toBe('keep me');
  });
});

/** Processes whose command line mentions `text` (the jobs' `peft train` children of a sweep folder). */
function processesMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(text)) pids.push(Number(p));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

async function until(what: string, check: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

describe('the local pool, end to end', () => {
  it('killed mid-job, leaves no training behind; the same command resumes each job from its checkpoint and records each result once', async () => {
    const out = join(tmp, 'pool');
    // long enough that both jobs are still training when the kill lands
    const steps = 100;
    const args = ['sweep', '--backbones', 'sam', '--methods', 'lora,adapter', '--seeds', '1', '--out', out, '--', '--steps', String(steps), '--save-every', '5', '--val-every', '0'];
    const first = peftSpawn(args);
    const runsDir = join(out, 'runs');
    await until('both jobs to save a checkpoint', () => ['sam-lora-s0', 'sam-adapter-s0'].every((id) => existsSync(join(runsDir, id, 'checkpoints', 'last'))), 90_000);
    first.child.kill('SIGKILL');
    await first.done;
    // the children see their parent go, save their checkpoint and stop
    await until('the jobs of the killed sweep to stop', () => processesMentioning(runsDir).length === 0, 30_000);
    expect(existsSync(join(out, 'results', 'sam-lora-s0.json'))).toBe(false);

    const second = peftSync(args.slice(0, 9)); // the grid without the train flags would differ: continue by the folder alone
    expect(second.stderr).toMatch(/holds another sweep|give a grid/);
    const resumed = peftSync(['sweep', '--out', out]);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stdout).toMatch(/continuing|2 of 2 jobs done/);
    expect(resumed.stderr).toMatch(/start sam-lora-s0 \(attempt 2, resuming its run\)/);
    expect(readdirSync(join(out, 'results')).sort()).toEqual(['sam-adapter-s0.json', 'sam-lora-s0.json']);
    for (const id of ['sam-lora-s0', 'sam-adapter-s0']) {
      const records = readFileSync(join(runsDir, id, 'log.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { type: string; step: number; message?: string });
      // resumed from the checkpoint it saved when its parent died, not from step 0, and the log reads as one run
      const resumedAt = records.find((r) => r.type === 'info' && r.message === 'resumed');
      expect(resumedAt?.step).toBeGreaterThan(0);
      expect(records.filter((r) => r.type === 'step').map((r) => r.step)).toEqual(Array.from({ length: steps }, (_, i) => i + 1));
      const result = JSON.parse(readFileSync(join(out, 'results', `${id}.json`), 'utf8')) as JobResult;
      expect(result).toMatchObject({ id, attempts: 2, run: `runs/${id}`, worker: { via: 'local' } });
      expect(result.summary.steps).toBe(steps);
    }
    const again = peftSync(['sweep', '--out', out]);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/2 of 2 jobs done \(2 from before\)/);
  });
});
