// The sweep's curves: per group (backbone x method x grid values) the mean
// over seeds of the training loss and of the validation Dice against the
// step, with a band from the lowest to the highest seed. Each seed's loss is
// smoothed (the EMA the run report draws) and thinned before it is kept, and
// each group's line has at most `maxPoints` points (steps binned), so a log of
// any length draws in bounded time and memory.
import { classMean } from '../rows.js';
import { emaSmooth, smoothingFor, thin } from '../smooth.js';
import type { StepPoint, ValPoint } from '../types.js';
import type { ChartSpec } from '../charts.js';
import { mean, range, sampleStd } from './stats.js';

export interface Point {
  step: number;
  value: number;
}

/** One step (or bin of steps) of a group's curve over its seeds. */
export interface BandPoint {
  step: number;
  mean: number;
  std: number | null;
  min: number;
  max: number;
  /** Seeds with a value here. */
  n: number;
}

/** Points kept of one seed's loss (after smoothing) before the group's binning. */
export const MAX_SEED_POINTS = 2000;
/** Points of one group's line. */
export const MAX_GROUP_POINTS = 500;

/** A seed's training loss: smoothed as the run report smooths it, at most `max` points. */
export function seedLossCurve(steps: readonly StepPoint[], max = MAX_SEED_POINTS): Point[] {
  const smooth = emaSmooth(steps.map((s) => s.loss), smoothingFor(steps.length));
  return thin(steps.map((s, i) => ({ step: s.step, value: smooth[i]! })), max);
}

/** A seed's validation Dice (mean over `classes`) at each validation. */
export function seedDiceCurve(vals: readonly ValPoint[], classes: string[], max = MAX_SEED_POINTS): Point[] {
  const out: Point[] = [];
  for (const v of vals) {
    const d = classMean(v.dice, classes);
    if (d !== null) out.push({ step: v.step, value: d });
  }
  return thin(out, max);
}

/**
 * Mean, std, min and max over seeds at each step. With more distinct steps
 * than `maxPoints` the steps are binned evenly over their range, each seed
 * contributing the mean of its points in the bin, the bin drawn at the mean
 * of those steps.
 */
export function bandCurve(seeds: readonly (readonly Point[])[], maxPoints = MAX_GROUP_POINTS): BandPoint[] {
  const steps = range((function* () {
    for (const s of seeds) for (const p of s) yield p.step;
  })());
  if (!steps) return [];
  const distinct = new Set<number>();
  for (const s of seeds) for (const p of s) if (distinct.size <= maxPoints) distinct.add(p.step);
  const binned = distinct.size > maxPoints;
  const span = steps.max - steps.min;
  const binOf = (step: number) => (binned ? Math.min(maxPoints - 1, Math.floor(((step - steps.min) / span) * maxPoints)) : step);
  // bin -> per seed [sum of values, sum of steps, count]
  const bins = new Map<number, Map<number, [number, number, number]>>();
  seeds.forEach((s, k) => {
    for (const p of s) {
      const b = binOf(p.step);
      let perSeed = bins.get(b);
      if (!perSeed) bins.set(b, (perSeed = new Map()));
      const acc = perSeed.get(k) ?? [0, 0, 0];
      acc[0] += p.value;
      acc[1] += p.step;
      acc[2] += 1;
      perSeed.set(k, acc);
    }
  });
  const out: BandPoint[] = [];
  for (const b of [...bins.keys()].sort((x, y) => x - y)) {
    const perSeed = [...bins.get(b)!.values()];
    const values = perSeed.map(([v, , c]) => v / c);
    const r = range(values)!;
    out.push({ step: mean(perSeed.map(([, st, c]) => st / c))!, mean: mean(values)!, std: sampleStd(values), min: r.min, max: r.max, n: values.length });
  }
  return out;
}

export interface GroupCurve {
  /** The panel the group is drawn in: its backbone ("MobileSAM"); one panel per backbone. */
  panel: string;
  /** The group within its panel, and its colour: its method and settings ("LoRA", "LoRA r=8"). */
  series: string;
  points: BandPoint[];
}

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';

/**
 * A line per group (the mean over seeds) over a shaded band (min to max over
 * seeds). With several backbones, one panel each (the paired comparison is
 * per backbone too), a method keeping its colour in every panel.
 */
export function bandChart(o: { title: string; subtitle: string; y: string; groups: GroupCurve[]; domainMax?: number; points?: boolean }): ChartSpec {
  const domain = [...new Set(o.groups.map((g) => g.series))];
  const panels = [...new Set(o.groups.map((g) => g.panel))];
  const values = o.groups.flatMap((g) => g.points.map((p) => ({ panel: g.panel, series: g.series, step: p.step, mean: p.mean, min: p.min, max: p.max, n: p.n })));
  const color = {
    field: 'series',
    type: 'nominal',
    title: null,
    scale: { domain, scheme: domain.length > 10 ? 'tableau20' : 'category10' },
    legend: { orient: 'bottom', direction: 'vertical', labelLimit: 400, symbolType: 'stroke', symbolStrokeWidth: 3, symbolOpacity: 1 },
  };
  const x = { field: 'step', type: 'quantitative', title: 'step', scale: { nice: false }, axis: { format: ',d', tickMinStep: 1 } };
  const scale = { zero: false, ...(o.domainMax === undefined ? {} : { domainMax: o.domainMax }) };
  const layered = {
    encoding: { x, color },
    layer: [
      { mark: { type: 'area', opacity: 0.2, interpolate: 'linear' }, encoding: { y: { field: 'min', type: 'quantitative', title: o.y, scale }, y2: { field: 'max' } } },
      { mark: { type: 'line', strokeWidth: 2, ...(o.points ? { point: { size: 30, filled: true } } : {}) }, encoding: { y: { field: 'mean', type: 'quantitative', title: o.y, scale } } },
    ],
  };
  const head = {
    $schema: SCHEMA,
    title: { text: o.title, subtitle: o.subtitle, anchor: 'start' },
    background: 'white',
    config: { font: 'DejaVu Sans, Liberation Sans, Arial, sans-serif', view: { stroke: '#ddd' }, axis: { gridColor: '#eee' } },
    data: { values },
  };
  if (panels.length <= 1) return { ...head, width: 470, height: 260, ...layered };
  return {
    ...head,
    facet: { field: 'panel', type: 'nominal', title: null, sort: panels, header: { labelFontSize: 13, labelFontWeight: 'bold' } },
    columns: Math.min(3, panels.length),
    resolve: { scale: { y: 'shared' } },
    spec: { width: 300, height: 200, ...layered },
  };
}
