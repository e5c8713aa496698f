// The sweep table's cells (mean ± sample std over seeds, each seed's value
// for the hover) and the sweep's results as markdown (results.md).
import { DASH, fmtCount, fmtDuration, fmtMetric, fmtTrainable, TABLE_COLUMNS } from '../format.js';
import type { SweepRow } from './aggregate.js';
import type { SweepComparison } from './compare.js';
import type { SeedStat } from './stats.js';

export interface Cell {
  text: string;
  /** Hover text: each seed's value. */
  title?: string;
  numeric?: boolean;
}

/** Every class of the rows, in first-seen order. */
export const sweepClasses = (rows: readonly SweepRow[]) => [...new Set(rows.flatMap((r) => r.classes))];
const hasSettings = (rows: readonly SweepRow[]) => rows.some((r) => r.settings !== '');

/** The seed's columns (with Settings after mode when a grid varies), then Dice per class and the seeds. */
export function sweepColumns(rows: readonly SweepRow[]): string[] {
  const [b, e, m, ...rest] = TABLE_COLUMNS;
  return [b, e, m, ...(hasSettings(rows) ? ['Settings'] : []), ...rest, ...sweepClasses(rows).map((c) => `Dice ${c}`), 'Seeds'];
}

/** "x ± s" (no ± for one seed), each number written by `fmt`; DASH when no seed has a value. */
export function meanStd(s: SeedStat, fmt: (x: number) => string, unit = ''): string {
  if (s.mean === null) return DASH;
  return `${fmt(s.mean)}${s.std === null ? '' : ` ± ${fmt(s.std)}`}${unit}`;
}

const metric = (x: number) => fmtMetric(x);
const mb = (x: number) => String(Math.round(x));

/** "seed 0: 0.8712", one line per planned seed; unfinished seeds say so. */
export function seedTitle(row: SweepRow, s: SeedStat, fmt: (x: number) => string): string {
  const byseed = new Map(s.values.map((v) => [v.seed, v.value]));
  return row.seeds.map((seed) => `seed ${seed.seed}: ${byseed.has(seed.seed) ? fmt(byseed.get(seed.seed)!) : seed.finished ? DASH : 'not finished'}`).join('\n');
}

function trainable(row: SweepRow): string {
  const t = row.trainableParameters;
  if (t.mean === null) return DASH;
  const text = fmtTrainable({ trainableParameters: Math.round(t.mean), totalParameters: row.totalParameters });
  return t.std ? `${text} ± ${fmtCount(Math.round(t.std))}` : text;
}

export const seedsText = (row: SweepRow) =>
  row.status === 'complete' ? `n = ${row.seeds.length} seed${row.seeds.length === 1 ? '' : 's'}` : `${row.finished} of ${row.seeds.length} seeds`;

/** A row's cells, in `sweepColumns` order. */
export function sweepCells(row: SweepRow, rows: readonly SweepRow[]): Cell[] {
  const num = (s: SeedStat, fmt: (x: number) => string, unit = ''): Cell => ({ text: meanStd(s, fmt, unit), title: seedTitle(row, s, (x) => `${fmt(x)}${unit}`), numeric: true });
  return [
    { text: row.baseline, title: `backbone ${row.backboneId}` },
    { text: row.encoder },
    { text: row.mode, title: `method ${row.methodId}; group ${row.group}` },
    ...(hasSettings(rows) ? [{ text: row.settings || DASH }] : []),
    num(row.dice, metric),
    num(row.miou, metric),
    num(row.memoryMB, mb, ' MB'),
    { text: trainable(row), title: seedTitle(row, row.trainableParameters, (x) => x.toLocaleString('en-US')), numeric: true },
    num(row.seconds, (x) => fmtDuration(x)),
    ...sweepClasses(rows).map((c) => (row.diceByClass[c] ? num(row.diceByClass[c], metric) : { text: DASH, numeric: true })),
    { text: seedsText(row), title: row.seeds.map((s) => `seed ${s.seed}: ${s.finished ? 'finished' : 'not finished'} (${s.run})`).join('\n') },
  ];
}

const mdCell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
const mdLine = (cells: string[]) => `| ${cells.map(mdCell).join(' | ')} |`;

/** The sweep's results as markdown: the table, each seed's mean Dice, the paired comparison. A fragment: no top-level heading. */
export function sweepMarkdown(name: string, rows: readonly SweepRow[], comparison: SweepComparison): string {
  const out: string[] = [];
  const finished = rows.reduce((a, r) => a + r.finished, 0);
  const planned = rows.reduce((a, r) => a + r.seeds.length, 0);
  out.push(`#### Sweep ${name}: ${finished} of ${planned} jobs finished`, '');
  if (finished === 0) out.push('No job of this sweep has finished yet: the table has no numbers.', '');
  const columns = sweepColumns(rows);
  out.push(mdLine(columns), mdLine(columns.map(() => '---')));
  for (const r of rows) {
    const cells = sweepCells(r, rows).map((c) => c.text);
    if (r.status === 'incomplete') cells[2] = `${cells[2]} (incomplete)`;
    out.push(mdLine(cells));
  }
  out.push('', 'Final mean Dice of each seed:', '');
  out.push(mdLine(['Group', 'Seeds']), mdLine(['---', '---']));
  for (const r of rows) out.push(mdLine([r.label, seedTitle(r, r.dice, metric).split('\n').join('; ')]));
  if (comparison.pairs.length) {
    out.push('', 'Paired comparison (final mean Dice, seed by seed; Δ: mean ± sample std of the paired differences):', '');
    for (const p of comparison.pairs) out.push(`- ${p.sentence}`);
    for (const w of comparison.winners) out.push(`- **${w.sentence}**`);
  }
  out.push('');
  if (rows.some((r) => r.status === 'incomplete')) out.push('*(incomplete)*: some seeds of the group have no result yet (results/<job>.json); its numbers are over the finished seeds.', '');
  out.push('Each number: mean ± sample standard deviation (n − 1) over the group\'s finished seeds (no ± with one seed). DICE and mIoU: mean over classes of the final validation. Memory: peak resident set size of the training process.', '');
  return out.join('\n');
}
