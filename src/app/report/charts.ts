// The report's charts as Vega-Lite specs: the loss per step (raw and smoothed)
// and the validation Dice per epoch of every run overlaid, and per run the
// seed's pair of small charts (loss, and performance: Dice and IoU per class).
import { emaSmooth, smoothingFor, thin } from './smooth.js';
import type { ResultRow, RunRecord } from './types.js';
import { classMean } from './rows.js';

/** A Vega-Lite spec (kept loose: the report builds only a few simple ones). */
export type ChartSpec = Record<string, unknown>;

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';
const MAX_RAW_POINTS = 4000;

export interface Series {
  row: ResultRow;
  record: RunRecord;
}

/** Legend of the overlaid charts: solid strokes, below the plot. */
const runLegend = { orient: 'bottom', direction: 'vertical', labelLimit: 400, symbolType: 'stroke', symbolStrokeWidth: 3, symbolOpacity: 1 };

const legendName = (row: ResultRow) => (row.status === 'incomplete' ? `${row.label} (incomplete)` : row.label);

const base = (title: string, subtitle: string | undefined, width: number, height: number): ChartSpec => ({
  $schema: SCHEMA,
  title: subtitle ? { text: title, subtitle, anchor: 'start' } : { text: title, anchor: 'start' },
  width,
  height,
  background: 'white',
  config: { font: 'DejaVu Sans, Liberation Sans, Arial, sans-serif', view: { stroke: '#ddd' }, axis: { gridColor: '#eee' } },
});

function lossPoints(record: RunRecord) {
  const steps = record.steps;
  const smoothed = emaSmooth(steps.map((s) => s.loss), smoothingFor(steps.length));
  return { raw: thin(steps.map((s) => ({ step: s.step, loss: s.loss })), MAX_RAW_POINTS), smooth: thin(steps.map((s, i) => ({ step: s.step, loss: smoothed[i]! })), MAX_RAW_POINTS) };
}

/** Loss per step of every run: thin raw lines, thick smoothed ones, one colour per run. */
export function lossChart(series: Series[]): ChartSpec {
  const runs = series.map((s) => legendName(s.row));
  const values = series.flatMap((s) => {
    const run = legendName(s.row);
    const { raw, smooth } = lossPoints(s.record);
    return [...raw.map((p) => ({ run, kind: 'raw', ...p })), ...smooth.map((p) => ({ run, kind: 'smoothed', ...p }))];
  });
  const color = { field: 'run', type: 'nominal', title: 'run', scale: { domain: runs }, legend: runLegend };
  return {
    ...base('Training loss', 'per step; thin: raw, thick: smoothed (EMA)', 470, 260),
    data: { values },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: 'step', scale: { nice: false } },
      y: { field: 'loss', type: 'quantitative', title: 'loss', scale: { zero: false } },
      color,
      detail: { field: 'kind' },
    },
    layer: [
      { transform: [{ filter: "datum.kind === 'raw'" }], mark: { type: 'line', strokeWidth: 1, opacity: 0.3, interpolate: 'linear' } },
      { transform: [{ filter: "datum.kind === 'smoothed'" }], mark: { type: 'line', strokeWidth: 2.5 } },
    ],
  };
}

/** Mean validation Dice over classes per epoch, every run overlaid. */
export function diceChart(series: Series[]): ChartSpec {
  const runs = series.map((s) => legendName(s.row));
  const values = series.flatMap((s) =>
    s.record.vals.flatMap((v) => {
      const dice = classMean(v.dice, s.row.classes);
      return dice === null ? [] : [{ run: legendName(s.row), epoch: v.epoch, step: v.step, dice }];
    }),
  );
  return {
    ...base('Validation Dice', 'mean over classes, per epoch', 470, 260),
    data: { values },
    mark: { type: 'line', point: { size: 50, filled: true }, strokeWidth: 2 },
    encoding: {
      x: { field: 'epoch', type: 'quantitative', title: 'epoch', axis: { tickMinStep: 1, format: 'd' } },
      y: { field: 'dice', type: 'quantitative', title: 'Dice', scale: { zero: false, domainMax: 1 } },
      color: { field: 'run', type: 'nominal', title: 'run', scale: { domain: runs }, legend: runLegend },
    },
  };
}

/** One run's loss (the seed's `<run>_loss.png`). */
export function runLossChart(s: Series): ChartSpec {
  const { raw, smooth } = lossPoints(s.record);
  const values = [...raw.map((p) => ({ kind: 'raw', ...p })), ...smooth.map((p) => ({ kind: 'smoothed', ...p }))];
  return {
    ...base(`${legendName(s.row)}: loss`, undefined, 360, 200),
    data: { values },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: 'step', scale: { nice: false } },
      y: { field: 'loss', type: 'quantitative', title: 'loss', scale: { zero: false } },
      color: { field: 'kind', type: 'nominal', title: null, scale: { domain: ['raw', 'smoothed'], range: ['#9ecae1', '#08519c'] }, legend: { orient: 'top-right' } },
    },
    layer: [
      { transform: [{ filter: "datum.kind === 'raw'" }], mark: { type: 'line', strokeWidth: 1 } },
      { transform: [{ filter: "datum.kind === 'smoothed'" }], mark: { type: 'line', strokeWidth: 2.5 } },
    ],
  };
}

/** One run's validation metrics per epoch: Dice and IoU of each class and their means (the seed's `<run>_performance.png`). */
export function runPerformanceChart(s: Series): ChartSpec {
  const classes = s.row.classes;
  const values = s.record.vals.flatMap((v) => {
    const out: { epoch: number; metric: string; series: string; value: number }[] = [];
    for (const [metric, m] of [['Dice', v.dice], ['IoU', v.iou]] as const) {
      for (const c of classes) if (typeof m[c] === 'number') out.push({ epoch: v.epoch, metric, series: `${metric} ${c}`, value: m[c]! });
      const mean = classMean(m, classes);
      if (mean !== null && classes.length > 1) out.push({ epoch: v.epoch, metric, series: `${metric} mean`, value: mean });
    }
    return out;
  });
  return {
    ...base(`${legendName(s.row)}: performance`, undefined, 360, 200),
    data: { values },
    mark: { type: 'line', point: { size: 30, filled: true } },
    encoding: {
      x: { field: 'epoch', type: 'quantitative', title: 'epoch', axis: { tickMinStep: 1, format: 'd' } },
      y: { field: 'value', type: 'quantitative', title: 'validation', scale: { zero: false, domainMax: 1 } },
      color: { field: 'series', type: 'nominal', title: null, legend: { orient: 'right' } },
      strokeDash: { field: 'metric', type: 'nominal', scale: { domain: ['Dice', 'IoU'], range: [[1, 0], [5, 3]] }, legend: null },
    },
  };
}
