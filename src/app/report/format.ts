// Number formats of the results table, and the table as markdown (results.md,
// reused for docs/results.md).
import type { ResultRow } from './types.js';

export const DASH = '—';

/** Dice / IoU as the seed prints them: four decimals. */
export function fmtMetric(x: number | null | undefined): string {
  return typeof x === 'number' && Number.isFinite(x) ? x.toFixed(4) : DASH;
}

/** Peak memory in MiB, as the seed's "Memory" column ("10401 MB"). */
export function fmtMemory(mb: number | null): string {
  return mb === null ? DASH : `${Math.round(mb)} MB`;
}

/** A parameter count, compact: 912, 45.7K, 9.88M. */
export function fmtCount(n: number | null): string {
  if (n === null) return DASH;
  const a = Math.abs(n);
  if (a < 1000) return String(n);
  if (a < 1e6) return `${(n / 1e3).toPrecision(3)}K`;
  if (a < 1e9) return `${(n / 1e6).toPrecision(3)}M`;
  return `${(n / 1e9).toPrecision(3)}B`;
}

/** Trainable parameters with their share of the whole model: "45.7K (0.46%)". */
export function fmtTrainable(row: Pick<ResultRow, 'trainableParameters' | 'totalParameters'>): string {
  const t = row.trainableParameters;
  if (t === null) return DASH;
  const total = row.totalParameters;
  if (!total) return fmtCount(t);
  const pct = (100 * t) / total;
  return `${fmtCount(t)} (${pct < 0.01 ? pct.toExponential(1) : pct < 10 ? pct.toFixed(2) : pct.toFixed(1)}%)`;
}

/** Wall time: "41.2 s", "6 m 50 s", "1 h 02 m". */
export function fmtDuration(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) return DASH;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const s = Math.round(seconds);
  if (s < 3600) return `${Math.floor(s / 60)} m ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} m`;
}

/** The main table's columns: the seed's six, then trainable parameters and time. */
export const TABLE_COLUMNS = ['Baseline', 'Backbone', 'mode', 'DICE', 'mIoU', 'Memory', 'Trainable params', 'Time'] as const;

export function tableCells(row: ResultRow): string[] {
  return [row.baseline, row.encoder, row.mode, fmtMetric(row.dice), fmtMetric(row.miou), fmtMemory(row.memoryMB), fmtTrainable(row), fmtDuration(row.seconds)];
}

/** Runs grouped by dataset, in first-seen order. */
export function byDataset(rows: ResultRow[]): [string, ResultRow[]][] {
  const groups = new Map<string, ResultRow[]>();
  for (const r of rows) groups.set(r.dataset, [...(groups.get(r.dataset) ?? []), r]);
  return [...groups];
}

/** Every class any of the rows has, in first-seen order. */
export function allClasses(rows: ResultRow[]): string[] {
  return [...new Set(rows.flatMap((r) => r.classes))];
}

const mdCell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

function mdTable(headers: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.map(mdCell).join(' | ')} |`;
  return [line(headers), line(headers.map(() => '---')), ...rows.map(line)].join('\n');
}

/**
 * The results as markdown: per dataset, the seed's table (Baseline | Backbone
 * | mode | DICE | mIoU | Memory, plus trainable parameters and time), then the
 * per-class numbers. A fragment: no top-level heading.
 */
export function resultsMarkdown(rows: ResultRow[]): string {
  const out: string[] = [];
  for (const [dataset, group] of byDataset(rows)) {
    out.push(`#### ${dataset}`, '');
    out.push(mdTable([...TABLE_COLUMNS], group.map((r) => {
      const cells = tableCells(r);
      if (r.status === 'incomplete') cells[2] = `${cells[2]} (incomplete)`;
      return cells;
    })));
    const classes = allClasses(group);
    out.push('', 'Per class (final validation), best mean Dice and run length:', '');
    out.push(mdTable(
      ['Run', ...classes.map((c) => `Dice ${c}`), ...classes.map((c) => `IoU ${c}`), 'Best DICE (step)', 'Steps', 'Epochs', 'Run directory'],
      group.map((r) => [
        r.label,
        ...classes.map((c) => fmtMetric(r.diceByClass[c])),
        ...classes.map((c) => fmtMetric(r.iouByClass[c])),
        r.bestDice === null ? DASH : `${fmtMetric(r.bestDice)} (${r.bestStep ?? '?'})`,
        String(r.steps),
        String(r.epochs),
        `\`${r.dir}\``,
      ]),
    ));
    out.push('');
  }
  if (rows.some((r) => r.status === 'incomplete')) {
    out.push('*(incomplete)*: the run has no summary.json (still in progress, or it crashed); its numbers are the log\'s last validation and memory is unknown.', '');
  }
  out.push('DICE and mIoU: mean over classes of the final validation. Memory: peak resident set size of the training process.', '');
  return out.join('\n');
}
