// A sweep folder written by hand, as `peft sweep` leaves it (sweep.json,
// runs/<job>/ with run.json, log.jsonl and summary.json, results/<job>.json),
// with known numbers: no training needed to test the sweep report.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface FakeSeed {
  seed: number;
  /** Final Dice per class; absent: the job has not finished (no result, no summary). */
  dice?: { disc: number; cup: number };
  peakRss?: number;
  seconds?: number;
  trainable?: number;
}

export interface FakeGroup {
  backbone: string;
  method: string;
  values?: Record<string, string | number | boolean>;
  seeds: FakeSeed[];
  /** The group id (default: backbone-method-values, lower case); job ids add -s<seed>. */
  group?: string;
}

export interface FakeSweepOptions {
  name?: string;
  groups: FakeGroup[];
  /** Training steps of each run's log (default 20). */
  steps?: number;
  /** Steps between validations in the log (default 10). */
  valEvery?: number;
  /** Log steps written in one go (large logs: default 20000). */
  chunk?: number;
}

export const groupOf = (g: FakeGroup) =>
  g.group ?? [g.backbone, g.method, ...Object.entries(g.values ?? {}).map(([k, v]) => `${k}=${String(v)}`)].join('-').toLowerCase();
export const jobIdOf = (g: FakeGroup, seed: number) => `${groupOf(g)}-s${seed}`;

/** Writes the sweep folder `dir`; returns the job ids. */
export function makeFakeSweep(dir: string, o: FakeSweepOptions): string[] {
  const steps = o.steps ?? 20;
  const valEvery = o.valEvery ?? 10;
  const jobs = o.groups.flatMap((g) =>
    g.seeds.map((s) => ({ id: jobIdOf(g, s.seed), group: groupOf(g), backbone: g.backbone, method: g.method, seed: s.seed, values: g.values ?? {}, args: ['--backbone', g.backbone, '--method', g.method, '--seed', String(s.seed)] })),
  );
  mkdirSync(join(dir, 'runs'), { recursive: true });
  mkdirSync(join(dir, 'results'), { recursive: true });
  // the spec that would expand to these jobs, as src/app/sweep/spec.ts writes it
  const grid: Record<string, (string | number | boolean)[]> = {};
  for (const g of o.groups) for (const [k, v] of Object.entries(g.values ?? {})) if (!(grid[k] ??= []).includes(v)) grid[k].push(v);
  const spec = {
    backbones: [...new Set(o.groups.map((g) => g.backbone))],
    methods: [...new Set(o.groups.map((g) => g.method))],
    seeds: [...new Set(jobs.map((j) => j.seed))].sort((a, b) => a - b),
    grid,
    train: {},
    pairs: {},
  };
  writeFileSync(join(dir, 'sweep.json'), JSON.stringify({ version: 1, name: o.name ?? 'fake', createdAt: '2026-01-01T00:00:00.000Z', spec, jobs }, null, 2));
  const t0 = Date.parse('2026-01-01T00:00:00Z');
  for (const g of o.groups) {
    for (const s of g.seeds) {
      const id = jobIdOf(g, s.seed);
      const run = join(dir, 'runs', id);
      mkdirSync(run, { recursive: true });
      // run.json as `peft train` writes it (a real tiny run's, with this job's ids and seed)
      writeFileSync(join(run, 'run.json'), JSON.stringify({
        version: 1,
        createdAt: new Date(t0).toISOString(),
        backbone: { id: g.backbone, preset: 'tiny', overrides: { img_size: 64 } },
        trainDecoder: true,
        outSize: 16,
        dataset: { kind: 'refuge', path: null, valPath: null, channels: ['disc', 'cup'] },
        augment: false,
        options: { batch: 1, lr: 0.003, steps, valEvery, seed: s.seed, loss: 'bce', prompt: 'click', saveEvery: 200, lrSchedule: 'cosine' },
        command: `peft train --out ${join(dir, 'runs')} --exp-name ${id} --backbone ${g.backbone} --method ${g.method} --seed ${s.seed}`,
        imageSize: 64,
        method: { id: g.method, config: {} },
        plugins: { backbone: { name: `backbone-${g.backbone}`, path: 'built-in', version: '0.1.0' }, method: { name: `method-${g.method}`, path: 'built-in', version: '0.1.0' } },
      }));
      // the loss falls from 1 toward 0.1; a seed's curve is shifted by 0.01 per seed
      const final = s.dice ?? { disc: 0.5, cup: 0.3 };
      const chunk = o.chunk ?? 20000;
      writeFileSync(join(run, 'log.jsonl'), '');
      for (let from = 1; from <= steps; from += chunk) {
        const lines: string[] = [];
        for (let step = from; step < from + chunk && step <= steps; step++) {
          lines.push(JSON.stringify({ type: 'step', step, epoch: 0, loss: 0.1 + 0.9 * Math.exp(-step / 5) + 0.01 * s.seed, time: new Date(t0 + step * 100).toISOString() }));
          if (step % valEvery === 0) {
            const k = step / steps;
            lines.push(JSON.stringify({ type: 'val', step, epoch: step / valEvery, dice: { disc: final.disc * k, cup: final.cup * k }, iou: { disc: final.disc * k * 0.8, cup: final.cup * k * 0.8 } }));
          }
        }
        writeFileSync(join(run, 'log.jsonl'), `${lines.join('\n')}\n`, { flag: 'a' });
      }
      if (!s.dice) continue;
      const summary = {
        steps,
        epochs: 1,
        seconds: s.seconds ?? 10,
        bestDice: (final.disc + final.cup) / 2,
        bestStep: steps,
        final: { dice: final, iou: { disc: final.disc * 0.8, cup: final.cup * 0.8 }, dice05: final, iou05: final },
        peakRss: s.peakRss ?? 400 * 1024 * 1024,
        methodParameters: 1000,
        trainableParameters: s.trainable ?? 5000,
        totalParameters: 1_000_000,
        backend: 'wasm',
      };
      writeFileSync(join(run, 'summary.json'), JSON.stringify(summary));
      writeFileSync(join(dir, 'results', `${id}.json`), JSON.stringify({
        version: 1, id, group: groupOf(g), backbone: g.backbone, method: g.method, seed: s.seed, values: g.values ?? {}, run: `runs/${id}`,
        summary, worker: { host: 'test', pid: 1, via: 'local' }, attempts: 1, startedAt: new Date(t0).toISOString(), finishedAt: new Date(t0 + 1000).toISOString(), seconds: s.seconds ?? 10,
      }));
    }
  }
  return jobs.map((j) => j.id);
}
