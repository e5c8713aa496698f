// The sweep report over hand-written sweep folders with known numbers: mean ±
// sample std over seeds, each seed on hover, incomplete groups, the paired
// comparison, the bands of the curves, results.md/json, a sweep with nothing
// finished, a 300,000-step log, a broken result and hostile names.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeFakeSweep, type FakeGroup } from '../../../../test/support/fake-sweep.js';
import { aggregateSweep, bandCurve, compareSweep, readSweep, writeSweepReport, type SweepResultsFile } from './index.js';

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'peft-sweep-report-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const MiB = 1024 * 1024;
/** sam: LoRA (mean Dice per seed 0.80, 0.82, 0.84), Adapter (0.79, 0.80, 0.83), AdaLoRA (0.70, 0.72, seed 2 unfinished); mobile_sam: LoRA, one seed (0.60). */
const GROUPS: FakeGroup[] = [
  { backbone: 'sam', method: 'lora', seeds: [
    { seed: 0, dice: { disc: 0.9, cup: 0.7 }, peakRss: 400 * MiB, seconds: 100 },
    { seed: 1, dice: { disc: 0.92, cup: 0.72 }, peakRss: 410 * MiB, seconds: 110 },
    { seed: 2, dice: { disc: 0.94, cup: 0.74 }, peakRss: 420 * MiB, seconds: 120 },
  ] },
  { backbone: 'sam', method: 'adapter', seeds: [
    { seed: 0, dice: { disc: 0.89, cup: 0.69 } },
    { seed: 1, dice: { disc: 0.9, cup: 0.7 } },
    { seed: 2, dice: { disc: 0.95, cup: 0.71 } },
  ] },
  { backbone: 'sam', method: 'adalora', seeds: [{ seed: 0, dice: { disc: 0.8, cup: 0.6 } }, { seed: 1, dice: { disc: 0.82, cup: 0.62 } }, { seed: 2 }] },
  { backbone: 'mobile_sam', method: 'lora', seeds: [{ seed: 0, dice: { disc: 0.7, cup: 0.5 } }] },
];

function sweepDir(name: string, groups = GROUPS, extra: Parameters<typeof makeFakeSweep>[1] extends infer O ? Partial<O> : never = {}): string {
  const dir = join(root, name);
  makeFakeSweep(dir, { name, groups, ...extra });
  return dir;
}

describe('aggregating over seeds', () => {
  it('gives each group mean ± sample std over its finished seeds, each seed kept', () => {
    const { rows } = aggregateSweep(readSweep(sweepDir('numbers')));
    expect(rows.map((r) => r.group)).toEqual(['sam-lora', 'sam-adapter', 'sam-adalora', 'mobile_sam-lora']);
    const [lora, adapter, adalora, mobile] = rows;
    expect(lora!.dice.mean).toBeCloseTo(0.82, 10);
    expect(lora!.dice.std).toBeCloseTo(0.02, 10);
    expect(lora!.dice.values.map((v) => [v.seed, Number(v.value.toFixed(4))])).toEqual([[0, 0.8], [1, 0.82], [2, 0.84]]);
    expect(lora!.diceByClass.disc!.mean).toBeCloseTo(0.92, 10);
    expect(lora!.diceByClass.cup!.std).toBeCloseTo(0.02, 10);
    expect(lora!.miou.mean).toBeCloseTo(0.82 * 0.8, 10);
    expect(lora!.memoryMB.mean).toBeCloseTo(410, 10);
    expect(lora!.memoryMB.std).toBeCloseTo(10, 10);
    expect(lora!.seconds.std).toBeCloseTo(10, 10);
    expect(lora!.status).toBe('complete');
    expect(adapter!.dice.mean).toBeCloseTo((0.79 + 0.8 + 0.83) / 3, 10);
    // seed 2 has no result: two of three seeds, marked incomplete
    expect(adalora!.status).toBe('incomplete');
    expect(adalora!.finished).toBe(2);
    expect(adalora!.dice.n).toBe(2);
    expect(adalora!.dice.std).toBeCloseTo(Math.SQRT2 * 0.01, 10);
    // one seed: a mean, no std
    expect(mobile!.dice.mean).toBeCloseTo(0.6, 10);
    expect(mobile!.dice.std).toBeNull();
    expect(rows.map((r) => r.label)).toEqual(['sam lora', 'sam adapter', 'sam adalora', 'mobile_sam lora']);
  });

  it('compares methods seed by seed on each backbone', () => {
    const { rows } = aggregateSweep(readSweep(sweepDir('pairs')));
    const { pairs, winners } = compareSweep(rows);
    expect(pairs).toHaveLength(3); // sam: 3 methods; mobile_sam has one
    const [la, lada, aada] = pairs;
    expect([la!.a, la!.b, la!.winsA, la!.winsB, la!.seeds]).toEqual(['lora', 'adapter', 3, 0, [0, 1, 2]]);
    expect(la!.meanDiff).toBeCloseTo(0.04 / 3, 10);
    expect(la!.stdDiff).toBeCloseTo(Math.sqrt(1 / 3) * 0.01, 10);
    expect(la!.sentence).toBe('sam: lora beats adapter in 3 of 3 seeds, Δ Dice +0.0133 ± 0.0058.');
    expect([lada!.a, lada!.winsA, lada!.seeds]).toEqual(['lora', 2, [0, 1]]);
    expect(lada!.meanDiff).toBeCloseTo(0.1, 10);
    expect([aada!.a, aada!.b, aada!.winsA]).toEqual(['adapter', 'adalora', 2]);
    expect(winners).toHaveLength(1);
    expect(winners[0]!.winner).toBe('lora');
    expect(winners[0]!.sentence).toBe('sam: overall lora (wins 2 of 3 pairings).');
  });

  it('puts the winner first, and calls an even split a draw', () => {
    const groups: FakeGroup[] = [
      { backbone: 'sam', method: 'lora', seeds: [{ seed: 0, dice: { disc: 0.5, cup: 0.5 } }, { seed: 1, dice: { disc: 0.7, cup: 0.7 } }] },
      { backbone: 'sam', method: 'adapter', seeds: [{ seed: 0, dice: { disc: 0.6, cup: 0.6 } }, { seed: 1, dice: { disc: 0.6, cup: 0.6 } }] },
      { backbone: 'sam', method: 'adalora', seeds: [{ seed: 0, dice: { disc: 0.4, cup: 0.4 } }, { seed: 1, dice: { disc: 0.65, cup: 0.65 } }] },
    ];
    const { pairs, winners } = compareSweep(aggregateSweep(readSweep(sweepDir('draw', groups))).rows);
    expect(pairs[0]!.aWins).toBe(false);
    expect(pairs[0]!.sentence).toMatch(/^sam: lora and adapter draw, 1–1 over 2 seeds, Δ Dice \+0\.0000 ± 0\.1414/);
    // adapter beats adalora in 1 of 2 with a tie? no: 0.6 > 0.4 and 0.6 < 0.65: a draw too; lora beats adalora 2 of 2
    expect(pairs[1]!.sentence).toBe('sam: lora beats adalora in 2 of 2 seeds, Δ Dice +0.0750 ± 0.0354.');
    expect(pairs[2]!.sentence).toMatch(/^sam: adapter and adalora draw/);
    expect(winners[0]!.winner).toBe('lora');
  });
});

describe('bandCurve', () => {
  it('gives mean, std, min and max over seeds at each step', () => {
    const band = bandCurve([
      [{ step: 1, value: 1 }, { step: 2, value: 2 }],
      [{ step: 1, value: 3 }, { step: 2, value: 2 }],
      [{ step: 1, value: 5 }],
    ]);
    expect(band).toEqual([
      { step: 1, mean: 3, std: 2, min: 1, max: 5, n: 3 },
      { step: 2, mean: 2, std: 0, min: 2, max: 2, n: 2 },
    ]);
  });

  it('bins a long curve to at most maxPoints points, keeping its range', () => {
    const seed = (k: number) => Array.from({ length: 10_000 }, (_, i) => ({ step: i + 1, value: i + k }));
    const band = bandCurve([seed(0), seed(2)], 100);
    expect(band).toHaveLength(100);
    expect(band[0]!.min).toBeCloseTo(49.5, 6); // the first bin: steps 1..100, seed 0's mean
    expect(band[0]!.max - band[0]!.min).toBeCloseTo(2, 6);
    expect(band.at(-1)!.step).toBeCloseTo(9950.5, 6);
  });
});

describe('writeSweepReport', () => {
  let out: string;
  let html: string;
  const warnings: string[] = [];
  beforeAll(async () => {
    out = join(root, 'report');
    await writeSweepReport(sweepDir('page'), { out, now: new Date('2026-02-01T00:00:00Z'), warn: (l) => warnings.push(l) });
    html = readFileSync(join(out, 'index.html'), 'utf8');
  }, 60_000);

  it('reads every run folder (no warning)', () => expect(warnings).toEqual([]));

  it('writes the page, the charts and the table as JSON and markdown', () => {
    for (const f of ['index.html', 'results.json', 'results.md', 'loss.svg', 'loss.png', 'dice.svg', 'dice.png', '.peft-report.json']) expect(existsSync(join(out, f)), f).toBe(true);
  });

  it('shows mean ± std, each seed on hover, and the seeds of each row', () => {
    expect(html).toContain('<td class="num" title="seed 0: 0.8000\nseed 1: 0.8200\nseed 2: 0.8400">0.8200 ± 0.0200</td>');
    expect(html).toContain('title="seed 0: 400 MB\nseed 1: 410 MB\nseed 2: 420 MB">410 ± 10 MB</td>');
    // per-class Dice columns
    expect(html).toContain('<th>Dice disc</th><th>Dice cup</th>');
    expect(html).toContain('>0.9200 ± 0.0200</td>');
    expect(html).toContain('n = 3 seeds');
    // the incomplete group: two of three seeds, the third said to be unfinished
    expect(html).toMatch(/<tr class="group incomplete" data-group="sam-adalora">.*?incomplete<\/span><\/td>.*?2 of 3 seeds/s);
    expect(html).toContain('seed 0: 0.7000\nseed 1: 0.7200\nseed 2: not finished');
    // one seed: no ±
    expect(html).toMatch(/data-group="mobile_sam-lora">.*?<td class="num" title="seed 0: 0.6000">0.6000<\/td>/s);
    expect(html).toContain('sam: lora beats adapter in 3 of 3 seeds, Δ Dice +0.0133 ± 0.0058.');
    expect(html).toContain('<li class="winner">sam: overall lora (wins 2 of 3 pairings).</li>');
  });

  it('draws a band and a line per group, a panel per backbone, a colour per method', () => {
    // vega draws each group's band (area) and line in a container of its own: one path each, in the group's colour
    const marks = (text: string, kind: 'area' | 'line') =>
      [...text.matchAll(new RegExp(`<g class="mark-${kind} role-mark[^>]*><path [^>]*?(?:fill|stroke)="(#[0-9a-f]{6})"`, 'g'))].map((m) => m[1]);
    for (const name of ['loss.svg', 'dice.svg']) {
      const svg = readFileSync(join(out, name), 'utf8');
      const bands = marks(svg, 'area');
      expect(bands, name).toHaveLength(4);
      // sam's LoRA, Adapter, AdaLoRA, then mobile_sam's LoRA in LoRA's colour
      expect(new Set(bands).size, name).toBe(3);
      expect(bands[3], name).toBe(bands[0]);
      expect(marks(svg, 'line'), name).toEqual(bands);
      expect(svg).toContain('band: min–max over seeds');
      for (const panel of ['sam', 'mobile_sam']) expect(svg, name).toContain(`>${panel}</text>`);
    }
  });

  it('writes results.json and results.md with the same numbers', () => {
    const json = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as SweepResultsFile;
    expect(json.kind).toBe('sweep');
    expect(json.sweep).toMatchObject({ name: 'page', jobs: 10, finished: 9 });
    expect(json.columns).toEqual(['Baseline', 'Backbone', 'mode', 'DICE', 'mIoU', 'Memory', 'Trainable params', 'Time', 'Dice disc', 'Dice cup', 'Seeds']);
    expect(json.groups[0]!.dice.std).toBeCloseTo(0.02, 10);
    expect(json.groups[2]!.status).toBe('incomplete');
    expect(json.comparison.winners[0]!.winner).toBe('lora');
    const md = readFileSync(join(out, 'results.md'), 'utf8');
    expect(md).toContain('#### Sweep page: 9 of 10 jobs finished');
    expect(md).toContain('| sam | sam tiny | lora | 0.8200 ± 0.0200 | 0.6560 ± 0.0160 | 410 ± 10 MB | 5.00K (0.50%) | 1 m 50 s ± 10.0 s | 0.9200 ± 0.0200 | 0.7200 ± 0.0200 | n = 3 seeds |');
    expect(md).toContain('| adalora (incomplete) |');
    expect(md).toContain('2 of 3 seeds');
    expect(md).toContain('| sam adalora | seed 0: 0.7000; seed 1: 0.7200; seed 2: not finished |');
    expect(md).toContain('- sam: lora beats adapter in 3 of 3 seeds, Δ Dice +0.0133 ± 0.0058.');
  });
});

describe('sweep folders that are not all there', () => {
  it('renders a sweep with no finished job, and says so', async () => {
    const groups: FakeGroup[] = [{ backbone: 'sam', method: 'lora', seeds: [{ seed: 0 }, { seed: 1 }] }];
    const out = join(root, 'empty-report');
    const warnings: string[] = [];
    const r = await writeSweepReport(sweepDir('empty', groups), { out, warn: (l) => warnings.push(l) });
    expect(r.rows[0]!.finished).toBe(0);
    const html = readFileSync(join(out, 'index.html'), 'utf8');
    expect(html).toContain('No job of this sweep has finished yet');
    expect(html).toContain('0 of 2 seeds');
    expect(existsSync(join(out, 'loss.svg'))).toBe(false);
    expect(readFileSync(join(out, 'results.md'), 'utf8')).toContain('0 of 2 jobs finished');
    expect(warnings).toEqual([expect.stringContaining('no job of the sweep has finished yet (2 jobs planned)')]);
  });

  it('replaces its own previous report (stale charts removed), and refuses a folder the user owns', async () => {
    const out = join(root, 'again-report');
    await writeSweepReport(sweepDir('again'), { out });
    expect(existsSync(join(out, 'loss.svg'))).toBe(true);
    await writeSweepReport(sweepDir('again-empty', [{ backbone: 'sam', method: 'lora', seeds: [{ seed: 0 }] }]), { out });
    expect(existsSync(join(out, 'loss.svg'))).toBe(false);
    expect(readFileSync(join(out, 'index.html'), 'utf8')).toContain('peftjs sweep again-empty');
    const mine = join(root, 'user-folder');
    makeFakeSweep(join(mine, 'x'), { groups: [] });
    await expect(writeSweepReport(sweepDir('again'), { out: mine })).rejects.toThrow(/holds no previous report/);
    expect(existsSync(join(mine, 'index.html'))).toBe(false);
  }, 60_000);

  it('counts a result it cannot use as unfinished, with a warning naming it', async () => {
    const dir = sweepDir('broken');
    const file = join(dir, 'results', 'sam-lora-s1.json');
    const result = JSON.parse(readFileSync(file, 'utf8')) as { summary: { final: { dice: Record<string, unknown> } } };
    result.summary.final.dice.disc = 'high';
    writeFileSync(file, JSON.stringify(result));
    writeFileSync(join(dir, 'results', 'sam-adapter-s2.json'), '{"version": 1, "id": "sam-adapter-s2"');
    const warnings: string[] = [];
    const r = await writeSweepReport(dir, { out: join(root, 'broken-report'), warn: (l) => warnings.push(l) });
    expect(r.rows[0]!.finished).toBe(2);
    expect(r.rows[0]!.status).toBe('incomplete');
    expect(r.rows[1]!.finished).toBe(2);
    expect(warnings).toEqual([
      expect.stringMatching(/sam-lora-s1\.json': 'summary\.final\.dice\.disc': .*; job 'sam-lora-s1' is counted as unfinished$/),
      expect.stringMatching(/sam-adapter-s2\.json': not valid JSON .*; job 'sam-adapter-s2' is counted as unfinished$/),
    ]);
  });

  it('keeps the result of a job whose run folder is gone, with a warning, without its curves', async () => {
    const dir = sweepDir('no-run');
    rmSync(join(dir, 'runs', 'mobile_sam-lora-s0'), { recursive: true });
    const warnings: string[] = [];
    const r = await writeSweepReport(dir, { out: join(root, 'no-run-report'), warn: (l) => warnings.push(l) });
    expect(warnings).toEqual([expect.stringMatching(/mobile_sam-lora-s0: no such directory; its numbers come from its result alone, without curves$/)]);
    expect(r.rows[3]!.dice.mean).toBeCloseTo(0.6, 10);
    expect(r.rows[3]!.finished).toBe(1);
    const svg = readFileSync(join(root, 'no-run-report', 'loss.svg'), 'utf8');
    expect(svg.match(/<g class="mark-area role-mark/g)).toHaveLength(3);
  }, 60_000);

  it('refuses a folder without sweep.json, and job ids that are not folder names', () => {
    expect(() => readSweep(root)).toThrow(/not a sweep folder \(no sweep\.json\)/);
    const dir = join(root, 'bad-sweep');
    makeFakeSweep(dir, { name: 'bad', groups: [{ backbone: 'sam', method: 'lora', seeds: [{ seed: 0 }] }] });
    const sweep = JSON.parse(readFileSync(join(dir, 'sweep.json'), 'utf8')) as { jobs: { id: string }[] };
    for (const [id, message] of [['../../etc', /sweep\.json': 'jobs\.0\.id': /], ['..', /sweep\.json': 'jobs\.0\.id': a job id is a plain folder name$/], ['.', /'jobs\.0\.id': a job id is a plain folder name$/]] as const) {
      sweep.jobs[0]!.id = id;
      writeFileSync(join(dir, 'sweep.json'), JSON.stringify(sweep));
      expect(() => readSweep(dir)).toThrow(message);
    }
  });

  it('escapes names from the folder in the page', async () => {
    // job ids are plain (they name files); backbone, method and grid values need not be
    const groups: FakeGroup[] = [
      { group: 'g1', backbone: '<img src=x onerror=alert(1)>', method: 'lo"ra', values: { note: "k'<b></td>" }, seeds: [{ seed: 0, dice: { disc: 0.5, cup: 0.5 } }] },
      { group: 'g2', backbone: '<img src=x onerror=alert(1)>', method: '<i>ada', values: { note: "k'<b></td>" }, seeds: [{ seed: 0, dice: { disc: 0.4, cup: 0.4 } }] },
    ];
    const dir = join(root, 'hostile');
    makeFakeSweep(dir, { name: 'hostile', groups });
    const out = join(root, 'hostile-report');
    await writeSweepReport(dir, { out });
    const html = readFileSync(join(out, 'index.html'), 'utf8');
    for (const raw of ['<img src=x', 'lo"ra', '<i>ada', '<b>', "k'"]) expect(html).not.toContain(raw);
    expect(html).toContain('&lt;img src=x onerror=alert(1)&gt;');
    expect(html).toContain('lo&quot;ra beats &lt;i&gt;ada in 1 of 1 seed');
    expect(html).toContain('note=k&#39;&lt;b&gt;&lt;/td&gt;');
  }, 60_000);
});

describe('a long log', () => {
  it('draws 300,000 steps without a stack overflow, at most 500 points a line', async () => {
    const groups: FakeGroup[] = [{ backbone: 'sam', method: 'lora', seeds: [{ seed: 0, dice: { disc: 0.5, cup: 0.5 } }, { seed: 1, dice: { disc: 0.6, cup: 0.6 } }] }];
    const dir = sweepDir('long', groups, { steps: 300_000, valEvery: 1000 });
    const { curves } = aggregateSweep(readSweep(dir));
    expect(curves[0]!.loss.length).toBeLessThanOrEqual(500);
    expect(curves[0]!.loss.length).toBeGreaterThan(400);
    expect(curves[0]!.dice).toHaveLength(300);
    const out = join(root, 'long-report');
    await writeSweepReport(dir, { out });
    expect(readFileSync(join(out, 'loss.svg'), 'utf8')).toContain('mark-area');
  }, 120_000);
});
