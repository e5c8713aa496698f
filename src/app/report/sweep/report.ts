// `peft report SWEEPDIR`: the report of a sweep folder (see read-sweep.ts):
// index.html, the table over seeds as results.json and results.md, the
// curves with their bands (loss.svg/.png, dice.svg/.png) and, when asked, the
// Predictions section of each group's lowest finished seed (one re-evaluation
// per group, not per job: 9 for a 3-seed sweep of 9 pairs, not 27).
import { buildGallery, checkGalleryOptions, type GalleryOptions, type GallerySection } from '../gallery.js';
import { DisplayNames, type DisplaySource } from '../names.js';
import { openReportOutput, type ReportOutput } from '../output-dir.js';
import type { PageImage } from '../page-image.js';
import { renderChart } from '../render.js';
import { aggregateSweep, type SweepCurves, type SweepRow, type SweepTable } from './aggregate.js';
import { compareSweep, type SweepComparison } from './compare.js';
import { bandChart } from './curves.js';
import { sweepColumns, sweepMarkdown } from './format.js';
import { sweepHtml } from './html.js';
import { readSweep, type SweepData } from './read-sweep.js';

export interface SweepReportOptions {
  /** Output directory (created if missing). */
  out: string;
  /** Write into an existing directory that holds no previous report. */
  force?: boolean;
  /** Timestamp written into the page (default: now). */
  now?: Date;
  /** The registered plugins, whose display names the table uses. */
  plugins?: DisplaySource;
  /** The Predictions section, of each group's lowest finished seed; absent or `samples: 0`: none. */
  gallery?: GalleryOptions;
  /** Hears of results and run folders that cannot be used (the report goes on without them). */
  warn?(line: string): void;
}

export interface SweepReportResult {
  out: string;
  name: string;
  rows: SweepRow[];
  comparison: SweepComparison;
  files: string[];
  gallery?: GallerySection;
}

/** `results.json` of a sweep report. */
export interface SweepResultsFile {
  version: 1;
  kind: 'sweep';
  generatedAt: string;
  sweep: { name: string; dir: string; createdAt: string | null; jobs: number; finished: number };
  columns: string[];
  groups: SweepRow[];
  comparison: SweepComparison;
}

const plural = (n: number, one: string) => `${n} ${one}${n === 1 ? '' : 's'}`;

function charts(curves: SweepCurves[]) {
  const loss = curves.filter((c) => c.loss.length).map((c) => ({ panel: c.panel, series: c.series, points: c.loss }));
  const dice = curves.filter((c) => c.dice.length).map((c) => ({ panel: c.panel, series: c.series, points: c.dice }));
  return {
    loss: loss.length ? bandChart({ title: 'Training loss over seeds', subtitle: 'seeds EMA-smoothed; line: mean, band: min–max over seeds', y: 'loss', groups: loss }) : undefined,
    dice: dice.length ? bandChart({ title: 'Validation Dice over seeds', subtitle: 'mean over classes; line: mean, band: min–max over seeds', y: 'Dice', groups: dice, domainMax: 1, points: true }) : undefined,
  };
}

/**
 * Reads the sweep first (a bad sweep.json fails before anything is written),
 * then builds the report in a staging folder moved into `out` only when
 * complete (output-dir.ts: nothing written through a link, a failure leaves
 * `out` as it was).
 */
export async function writeSweepReport(sweepDir: string, options: SweepReportOptions): Promise<SweepReportResult> {
  const g = options.gallery;
  if (g) checkGalleryOptions(g);
  const warn = options.warn ?? (() => {});
  const sweep = readSweep(sweepDir, warn);
  const table = aggregateSweep(sweep, new DisplayNames(options.plugins), warn);
  const output = openReportOutput(options.out, options.force ?? false);
  try {
    return await build(sweep, table, (options.now ?? new Date()).toISOString(), output, g, warn);
  } catch (err) {
    output.abort();
    throw err;
  }
}

async function build(sweep: SweepData, table: SweepTable, generatedAt: string, output: ReportOutput, g: GalleryOptions | undefined, warn: (line: string) => void): Promise<SweepReportResult> {
  const write = (rel: string, data: string | Uint8Array) => output.write(rel, data);
  const comparison = compareSweep(table.rows);
  const specs = charts(table.curves);
  const draw = async (spec: ReturnType<typeof bandChart> | undefined, name: string, alt: string): Promise<PageImage | undefined> => {
    if (!spec) return undefined;
    const r = await renderChart(spec);
    write(`${name}.svg`, r.svg);
    write(`${name}.png`, r.png);
    return { src: `${name}.png`, svg: `${name}.svg`, width: r.width, height: r.height, alt };
  };
  const loss = await draw(specs.loss, 'loss', 'Training loss per step: mean over seeds of each group, band from the lowest to the highest seed');
  const dice = await draw(specs.dice, 'dice', 'Validation Dice per step: mean over seeds of each group, band from the lowest to the highest seed');

  let gallery: GallerySection | undefined;
  let galleryNote: string | undefined;
  if (g && g.samples > 0) {
    if (table.representatives.length) gallery = await buildGallery(table.representatives, g, write);
    else galleryNote = 'No predictions: no job has finished yet.';
  }

  const finished = table.rows.reduce((a, r) => a + r.finished, 0);
  const results: SweepResultsFile = {
    version: 1,
    kind: 'sweep',
    generatedAt,
    sweep: { name: sweep.name, dir: sweep.dir, createdAt: sweep.createdAt, jobs: sweep.jobs.length, finished },
    columns: sweepColumns(table.rows),
    groups: table.rows,
    comparison,
  };
  write('results.json', `${JSON.stringify(results, null, 2)}\n`);
  write('results.md', sweepMarkdown(sweep.name, table.rows, comparison));
  write('index.html', sweepHtml({ name: sweep.name, dir: sweep.dir, generatedAt, rows: table.rows, comparison, loss, dice, gallery, galleryNote }));
  output.commit(generatedAt);
  if (finished === 0) warn(`${sweep.dir}: no job of the sweep has finished yet (${plural(sweep.jobs.length, 'job')} planned)`);
  return { out: output.out, name: sweep.name, rows: table.rows, comparison, files: output.files, gallery };
}
