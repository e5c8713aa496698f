// `peft report`: reads training run directories and writes the results page
// (index.html), the overlaid curves (loss.svg/.png, dice.svg/.png), each run's
// small loss and performance charts (runs/), the table as results.json and
// results.md, and, when asked, the Predictions section's pictures (pictures/:
// every run re-evaluated on the same images, see gallery.ts). The report is
// built in a staging folder and moved into place only when complete
// (output-dir.ts): a failure leaves --out as it was.
import { diceChart, lossChart, runLossChart, runPerformanceChart, type ChartSpec, type Series } from './charts.js';
import { resultsMarkdown, TABLE_COLUMNS } from './format.js';
import { reportHtml, type PageImage } from './html.js';
import { openReportOutput, type ReportOutput } from './output-dir.js';
import { readRun } from './read-run.js';
import { renderChart } from './render.js';
import { DisplayNames, type DisplaySource } from './names.js';
import { toRows } from './rows.js';
import { PeftError } from '../../core/errors.js';
import { buildGallery, checkGalleryOptions, type GalleryOptions, type GallerySection } from './gallery.js';
import type { ResultRow, RunRecord } from './types.js';

export interface ReportOptions {
  /** Output directory (created if missing). */
  out: string;
  /** Write into an existing directory that holds no previous report. */
  force?: boolean;
  /** Timestamp written into the page (default: now). */
  now?: Date;
  /** The registered plugins, whose display names the table uses (a Registry); without it backbones and methods show their ids. */
  plugins?: DisplaySource;
  /** The Predictions section (pictures of every run's predictions); absent or `samples: 0`: no section. */
  gallery?: GalleryOptions;
}

export interface ReportResult {
  out: string;
  rows: ResultRow[];
  /** Files written, relative to `out`. */
  files: string[];
  /** The Predictions section, when asked for. */
  gallery?: GallerySection;
}

/** The results as `results.json` holds them. */
export interface ResultsFile {
  version: 1;
  generatedAt: string;
  columns: string[];
  runs: ResultRow[];
}

function slug(label: string, taken: Set<string>): string {
  const s = label.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '') || 'run';
  let out = s;
  for (let i = 2; taken.has(out); i++) out = `${s}-${i}`;
  taken.add(out);
  return out;
}

/** Reads every run first (so a bad directory fails before anything is written), then writes the report. */
export async function writeReport(dirs: string[], options: ReportOptions): Promise<ReportResult> {
  if (dirs.length === 0) throw new PeftError('give at least one training run directory');
  const g = options.gallery;
  if (g) checkGalleryOptions(g);
  const records: RunRecord[] = dirs.map(readRun);
  const rows = toRows(records, new DisplayNames(options.plugins));
  const generatedAt = (options.now ?? new Date()).toISOString();
  const { out } = options;
  const output = openReportOutput(out, options.force ?? false);
  try {
    return await build(records, rows, generatedAt, output, g);
  } catch (err) {
    output.abort();
    throw err;
  }
}

async function build(records: RunRecord[], rows: ResultRow[], generatedAt: string, output: ReportOutput, g: GalleryOptions | undefined): Promise<ReportResult> {
  const { out, files } = output;
  const write = (rel: string, data: string | Uint8Array) => output.write(rel, data);
  const chart = async (spec: ChartSpec, name: string, alt: string, png: boolean): Promise<PageImage> => {
    const r = await renderChart(spec);
    write(`${name}.svg`, r.svg);
    if (png) write(`${name}.png`, r.png);
    return { src: png ? `${name}.png` : `${name}.svg`, svg: png ? `${name}.svg` : undefined, width: r.width, height: r.height, alt };
  };

  const series: Series[] = rows.map((row, i) => ({ row, record: records[i]! }));
  const loss = await chart(lossChart(series), 'loss', 'Training loss per step of every run', true);
  const dice = await chart(diceChart(series), 'dice', 'Validation Dice per epoch of every run', true);
  const taken = new Set<string>();
  const perRun: { loss: PageImage; performance: PageImage }[] = [];
  for (const s of series) {
    const name = `runs/${slug(s.row.label, taken)}`;
    perRun.push({
      loss: await chart(runLossChart(s), `${name}_loss`, `${s.row.label}: loss per step`, false),
      performance: await chart(runPerformanceChart(s), `${name}_performance`, `${s.row.label}: validation Dice and IoU per epoch`, false),
    });
  }

  const gallery = g && g.samples > 0 ? await buildGallery(rows, g, write) : undefined;

  const results: ResultsFile = { version: 1, generatedAt, columns: [...TABLE_COLUMNS], runs: rows };
  write('results.json', `${JSON.stringify(results, null, 2)}\n`);
  write('results.md', resultsMarkdown(rows));
  write('index.html', reportHtml({ rows, records, generatedAt, loss, dice, perRun, gallery }));
  output.commit(generatedAt);
  return { out, rows, files, gallery };
}
