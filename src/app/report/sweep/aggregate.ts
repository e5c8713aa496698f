// The sweep's table: one row per group (the jobs that differ only by their
// seed), each number the mean ± sample std over the group's finished seeds,
// with every seed's value kept (the page shows them on hover). Each finished
// job is read as a run (runs/<id>/: run.json for names and classes, log.jsonl
// for the curves) with the metrics of its recorded result; a run folder that
// cannot be read is a warning and the row keeps what the result says.
import { readRun } from '../read-run.js';
import { DisplayNames } from '../names.js';
import { toRow } from '../rows.js';
import type { ResultRow, RunRecord } from '../types.js';
import { PeftError } from '../../../core/errors.js';
import { bandCurve, seedDiceCurve, seedLossCurve, type BandPoint, type Point } from './curves.js';
import { jobRunDir, type SweepData, type SweepResult } from './read-sweep.js';
import type { SweepJob } from '../../sweep/spec.js';
import { seedStat, type SeedStat } from './stats.js';

/** One seed of a group. */
export interface SeedRun {
  seed: number;
  jobId: string;
  /** runs/<jobId>, relative to the sweep folder. */
  run: string;
  finished: boolean;
}

/** One row of the sweep's table. */
export interface SweepRow {
  group: string;
  /** Short unique name in legends and sentences: "MobileSAM LoRA", "MobileSAM LoRA rank=8". */
  label: string;
  backboneId: string;
  methodId: string;
  /** The grid values the group's jobs share ({} without --set grids). */
  values: Record<string, string | number | boolean>;
  /** The values as "key=value, ...", "" when none. */
  settings: string;
  baseline: string;
  encoder: string;
  mode: string;
  dataset: string;
  classes: string[];
  /** Every seed the sweep plans for this group, finished or not. */
  seeds: SeedRun[];
  /** `incomplete` while some seed has no result. */
  status: 'complete' | 'incomplete';
  finished: number;
  dice: SeedStat;
  miou: SeedStat;
  diceByClass: Record<string, SeedStat>;
  iouByClass: Record<string, SeedStat>;
  memoryMB: SeedStat;
  trainableParameters: SeedStat;
  totalParameters: number | null;
  seconds: SeedStat;
  steps: SeedStat;
}

/** A group's curves: mean and band over its finished seeds. */
export interface SweepCurves {
  label: string;
  /** Its backbone, as the charts' panels name it. */
  panel: string;
  /** Its method and settings, as the charts' legend names it. */
  series: string;
  loss: BandPoint[];
  dice: BandPoint[];
}

export interface SweepTable {
  rows: SweepRow[];
  curves: SweepCurves[];
  /** Each group's lowest finished seed as an ordinary run row (the Predictions section re-evaluates these). */
  representatives: ResultRow[];
}

function seedRecord(sweep: SweepData, job: SweepJob, result: SweepResult, warn: (line: string) => void): RunRecord {
  const dir = jobRunDir(sweep.dir, job.id);
  let record: RunRecord;
  try {
    record = readRun(dir);
  } catch (e) {
    if (!(e instanceof PeftError)) throw e;
    warn(`${e.message}; its numbers come from its result alone, without curves`);
    record = { dir, info: { backbone: { id: job.backbone }, method: { id: job.method } }, steps: [], vals: [] };
  }
  // the recorded result is what finished; its seconds stand in for a summary without any
  const summary = { ...result.summary, seconds: result.summary.seconds ?? result.seconds };
  return { ...record, summary };
}

const settingsText = (values: Record<string, unknown>) =>
  Object.entries(values)
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(', ');

/** Groups in the order sweep.json first lists them, seeds in seed order. */
export function aggregateSweep(sweep: SweepData, names: DisplayNames = new DisplayNames(), warn: (line: string) => void = () => {}): SweepTable {
  const groups = new Map<string, SweepJob[]>();
  for (const job of sweep.jobs) {
    const members = groups.get(job.group);
    if (members) members.push(job);
    else groups.set(job.group, [job]);
  }
  const rows: Omit<SweepRow, 'label'>[] = [];
  const curves: Pick<SweepCurves, 'loss' | 'dice'>[] = [];
  const representatives: { group: string; seed: number; row: Omit<ResultRow, 'label'> }[] = [];
  for (const [group, jobs] of groups) {
    jobs.sort((a, b) => a.seed - b.seed);
    const first = jobs[0]!;
    const seedRows: { seed: number; row: Omit<ResultRow, 'label'> }[] = [];
    const lossCurves: Point[][] = [];
    const diceCurves: Point[][] = [];
    for (const job of jobs) {
      const result = sweep.results.get(job.id);
      if (!result) continue;
      const record = seedRecord(sweep, job, result, warn);
      const row = toRow(record, names);
      seedRows.push({ seed: job.seed, row });
      // keep the curves only, thinned: the record (every log line) is dropped here
      if (record.steps.length) lossCurves.push(seedLossCurve(record.steps));
      const dice = seedDiceCurve(record.vals, row.classes);
      if (dice.length) diceCurves.push(dice);
    }
    const ref = seedRows[0]?.row;
    const stat = (pick: (r: Omit<ResultRow, 'label'>) => number | null | undefined) => seedStat(seedRows.map((s) => ({ seed: s.seed, value: pick(s.row) })));
    const classes = [...new Set(seedRows.flatMap((s) => s.row.classes))];
    const perClass = (pick: (r: Omit<ResultRow, 'label'>) => Record<string, number>) => Object.fromEntries(classes.map((c) => [c, stat((r) => pick(r)[c])]));
    const totals = new Set(seedRows.map((s) => s.row.totalParameters).filter((t) => t !== null));
    const settings = settingsText(first.values);
    rows.push({
      group,
      backboneId: first.backbone,
      methodId: first.method,
      values: first.values,
      settings,
      baseline: ref?.baseline ?? names.baseline(first.backbone),
      encoder: ref?.encoder ?? names.encoder(first.backbone, null),
      mode: ref?.mode ?? names.mode(first.method),
      dataset: ref?.dataset ?? 'unknown dataset',
      classes,
      seeds: jobs.map((j) => ({ seed: j.seed, jobId: j.id, run: `runs/${j.id}`, finished: sweep.results.has(j.id) })),
      status: seedRows.length === jobs.length ? 'complete' : 'incomplete',
      finished: seedRows.length,
      dice: stat((r) => r.dice),
      miou: stat((r) => r.miou),
      diceByClass: perClass((r) => r.diceByClass),
      iouByClass: perClass((r) => r.iouByClass),
      memoryMB: stat((r) => r.memoryMB),
      trainableParameters: stat((r) => r.trainableParameters),
      totalParameters: totals.size === 1 ? [...totals][0]! : null,
      seconds: stat((r) => r.seconds),
      steps: stat((r) => r.steps),
    });
    curves.push({ loss: bandCurve(lossCurves), dice: bandCurve(diceCurves) });
    if (seedRows[0]) representatives.push({ group, ...seedRows[0] });
  }
  const labels = uniqueLabels(rows);
  const byGroup = new Map(rows.map((r, i) => [r.group, labels[i]!]));
  return {
    rows: rows.map((r, i) => ({ ...r, label: labels[i]! })),
    curves: curves.map((c, i) => ({ ...c, label: labels[i]!, ...curveNames(rows[i]!, rows) })),
    representatives: representatives.map((r) => ({ ...r.row, label: `${byGroup.get(r.group)!} (seed ${r.seed})` })),
  };
}

/** A curve's panel (its backbone) and series (its method and settings), each made unique among the rows' if the display names collide. */
function curveNames(r: Omit<SweepRow, 'label'>, rows: Omit<SweepRow, 'label'>[]): { panel: string; series: string } {
  const shared = rows.some((o) => o.backboneId !== r.backboneId && o.baseline === r.baseline);
  const panel = shared ? `${r.baseline} [${r.backboneId}]` : r.baseline;
  const series = [r.mode, r.settings].filter(Boolean).join(' ');
  const same = rows.some((o) => o.backboneId === r.backboneId && o.group !== r.group && [o.mode, o.settings].filter(Boolean).join(' ') === series);
  return { panel, series: same ? `${series} [${r.group}]` : series };
}

/** "Baseline mode settings", falling back to the group id where two groups would read the same. */
function uniqueLabels(rows: Omit<SweepRow, 'label'>[]): string[] {
  const plain = rows.map((r) => [r.baseline, r.mode, r.settings].filter(Boolean).join(' '));
  const count = new Map<string, number>();
  for (const l of plain) count.set(l, (count.get(l) ?? 0) + 1);
  return plain.map((l, i) => (count.get(l)! > 1 ? `${l} [${rows[i]!.group}]` : l));
}
