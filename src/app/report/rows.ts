// The results table's numbers, one row per run: final Dice and IoU averaged
// over classes, peak memory, parameters, time. A run without summary.json
// (in progress or crashed) gets what its log has and is marked incomplete.
import { basename, resolve } from 'node:path';
import { datasetName, DisplayNames } from './names.js';
import type { ResultRow, RunRecord, ValPoint } from './types.js';

const MIB = 1024 * 1024;

/** Mean of a per-class metric over the given classes (those present), null if none. */
export function classMean(values: Record<string, number>, classes?: string[]): number | null {
  const keys = (classes?.length ? classes : Object.keys(values)).filter((k) => typeof values[k] === 'number');
  if (keys.length === 0) return null;
  return keys.reduce((s, k) => s + values[k]!, 0) / keys.length;
}

/** Wall time of a run that has no summary: createdAt (or the first step's start) to the last record. */
function loggedSeconds(r: RunRecord): number | null {
  // a loop, not Math.max(...times): a crashed long run logs hundreds of thousands of records
  let latest = r.logTotals?.latestTime ?? null;
  if (!r.logTotals) {
    for (const p of [r.steps, r.vals].flat()) {
      const t = p.time ? Date.parse(p.time) : NaN;
      if (Number.isFinite(t) && (latest === null || t > latest)) latest = t;
    }
  }
  const first = r.steps[0];
  let start = r.info.createdAt ? Date.parse(r.info.createdAt) : NaN;
  if (!Number.isFinite(start) && first?.time) start = Date.parse(first.time) - (first.ms ?? 0);
  if (Number.isFinite(start) && latest !== null) return Math.max(0, (latest - start) / 1000);
  const ms = r.logTotals?.stepMs ?? r.steps.reduce((s, p) => s + (p.ms ?? 0), 0);
  return ms > 0 ? ms / 1000 : null;
}

function bestOfLog(vals: ValPoint[], classes: string[]): { dice: number | null; step: number | null } {
  let dice: number | null = null;
  let step: number | null = null;
  for (const v of vals) {
    const d = classMean(v.dice, classes);
    if (d !== null && (dice === null || d > dice)) {
      dice = d;
      step = v.step;
    }
  }
  return { dice, step };
}

/** A run's row; `names` spells the backbone and method as their plugins do (default: their ids). */
export function toRow(r: RunRecord, names: DisplayNames = new DisplayNames()): Omit<ResultRow, 'label'> {
  const { info, summary } = r;
  const lastVal = r.vals.at(-1);
  const final = summary?.final ?? lastVal;
  const metricsFrom: ResultRow['metricsFrom'] = summary?.final ? 'summary' : lastVal ? 'log' : 'none';
  const classes = info.dataset?.channels?.length ? [...info.dataset.channels] : Object.keys(final?.dice ?? {});
  const pick = (m: Record<string, number> | undefined) =>
    Object.fromEntries(classes.filter((c) => typeof m?.[c] === 'number').map((c) => [c, m![c]!]));
  const diceByClass = pick(final?.dice);
  const iouByClass = pick(final?.iou);
  const logBest = bestOfLog(r.vals, classes);
  const lastStep = r.steps.at(-1);
  const epochs = summary?.epochs ?? Math.max(lastVal?.epoch ?? 0, lastStep?.epoch ?? 0);
  const preset = info.backbone.preset ?? null;
  return {
    dir: r.dir,
    status: summary ? 'complete' : 'incomplete',
    baseline: names.baseline(info.backbone.id),
    backbone: preset ? `${info.backbone.id}/${preset}` : info.backbone.id,
    backboneId: info.backbone.id,
    preset,
    encoder: names.encoder(info.backbone.id, preset),
    mode: names.mode(info.method.id),
    methodId: info.method.id,
    mod: names.mod(info.method.id),
    dataset: datasetName(info.dataset?.kind, info.dataset?.path),
    classes,
    dice: classMean(diceByClass, classes),
    diceByClass,
    miou: classMean(iouByClass, classes),
    iouByClass,
    metricsFrom,
    bestDice: summary?.bestDice ?? logBest.dice,
    bestStep: summary?.bestStep ?? logBest.step,
    memoryMB: typeof summary?.peakRss === 'number' ? summary.peakRss / MIB : null,
    peakRss: summary?.peakRss ?? null,
    peakTensorBytes: summary?.peakTensorBytes ?? null,
    trainableParameters: summary?.trainableParameters ?? null,
    totalParameters: summary?.totalParameters ?? null,
    methodParameters: summary?.methodParameters ?? null,
    seconds: summary?.seconds ?? loggedSeconds(r),
    steps: summary?.steps ?? lastStep?.step ?? 0,
    epochs,
    backend: summary?.backend ?? null,
    imageSize: info.imageSize ?? null,
  };
}

/** Rows for runs, each with a short label that is unique among them (for legends). */
export function toRows(records: RunRecord[], names: DisplayNames = new DisplayNames()): ResultRow[] {
  const rows = records.map((r) => toRow(r, names));
  const candidates = [
    (x: Omit<ResultRow, 'label'>) => `${x.baseline} ${x.mode}`,
    (x: Omit<ResultRow, 'label'>) => `${x.baseline}${x.preset ? ` ${x.preset}` : ''} ${x.mode}`,
    (x: Omit<ResultRow, 'label'>) => `${x.baseline}${x.preset ? ` ${x.preset}` : ''} ${x.mode} [${basename(resolve(x.dir))}]`,
  ];
  let labels = rows.map(candidates[0]!);
  for (const next of candidates.slice(1)) {
    if (new Set(labels).size === labels.length) break;
    labels = rows.map(next);
  }
  // last resort: number the duplicates
  const seen = new Map<string, number>();
  labels = labels.map((l) => {
    const n = (seen.get(l) ?? 0) + 1;
    seen.set(l, n);
    return n === 1 ? l : `${l} #${n}`;
  });
  return rows.map((row, i) => ({ ...row, label: labels[i]! }));
}
