// The sweep's page: one self-contained HTML file (inline CSS, no script) with
// the table over seeds (hover a number for each seed's value), the paired
// comparison, the curves with their bands and, when asked, the Predictions
// section of one seed per group. Every name and value from the folder is escaped.
import { DASH, fmtMetric } from '../format.js';
import { galleryHtml } from '../gallery-html.js';
import type { GallerySection } from '../gallery.js';
import { escapeHtml as e, type PageImage } from '../page-image.js';
import type { SweepRow } from './aggregate.js';
import type { SweepComparison } from './compare.js';
import { sweepCells, sweepColumns } from './format.js';

export interface SweepPageInput {
  name: string;
  dir: string;
  generatedAt: string;
  rows: SweepRow[];
  comparison: SweepComparison;
  /** Absent when no finished job has a curve. */
  loss?: PageImage;
  dice?: PageImage;
  gallery?: GallerySection;
  /** Why there is no Predictions section, when there is none. */
  galleryNote?: string;
}

function img(i: PageImage): string {
  const link = i.svg ? `<figcaption><a href="${e(i.svg)}">SVG</a></figcaption>` : '';
  return `<figure class="main"><img src="${e(i.src)}" width="${Math.round(i.width)}" height="${Math.round(i.height)}" alt="${e(i.alt)}">${link}</figure>`;
}

function row(r: SweepRow, rows: SweepRow[]): string {
  const incomplete = r.status === 'incomplete';
  const cells = sweepCells(r, rows).map((c, k) => {
    const badge = k === 2 && incomplete ? ' <span class="badge" title="some seeds have no result yet: the numbers are over the finished ones">incomplete</span>' : '';
    return `<td${c.numeric ? ' class="num"' : ''}${c.title ? ` title="${e(c.title)}"` : ''}>${e(c.text)}${badge}</td>`;
  });
  return `<tr class="group${incomplete ? ' incomplete' : ''}" data-group="${e(r.group)}">${cells.join('')}</tr>`;
}

function seedsTable(rows: SweepRow[]): string {
  const body = rows.flatMap((r) =>
    r.seeds.map((s) => {
      const dice = r.dice.values.find((v) => v.seed === s.seed)?.value;
      return `<tr><td>${e(r.label)}</td><td class="num">${s.seed}</td><td>${s.finished ? 'finished' : 'not finished'}</td><td class="num">${dice === undefined ? DASH : fmtMetric(dice)}</td><td><code>${e(s.run)}</code></td></tr>`;
    }),
  );
  return `<table class="details"><thead><tr><th>Group</th><th>Seed</th><th>Status</th><th>DICE</th><th>Run folder</th></tr></thead><tbody>${body.join('')}</tbody></table>`;
}

const CSS = `
body{font-family:"DejaVu Sans","Liberation Sans",Arial,sans-serif;margin:2rem auto;max-width:1400px;padding:0 1rem;color:#222;line-height:1.4}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
.meta{color:#666;font-size:.9rem}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.95rem}.table-wrap{overflow-x:auto}table.results{font-size:.85rem}
th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#f3f5f7}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td[title]{cursor:help}
tr.incomplete td{color:#666;background:#fffbea}
.badge{display:inline-block;font-size:.75rem;background:#f0ad4e;color:#fff;border-radius:3px;padding:0 .3rem;margin-left:.3rem}
table.details{font-size:.85rem}
figure{margin:0 1rem 1rem 0;display:inline-block;vertical-align:top}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.8rem;color:#666}
.note{color:#555;font-size:.9rem}ul.comparison li.winner{font-weight:bold}
code{font-size:.85rem}
.gallery-wrap{overflow-x:auto}table.gallery td{padding:.3rem;text-align:center}table.gallery th{text-align:center;font-size:.85rem}
figure.pic{margin:0}figure.pic figcaption{font-size:.8rem;color:#333;line-height:1.25;margin-top:.15rem}figure.pic img{border:1px solid #ddd}
.dice{font-weight:bold;font-variant-numeric:tabular-nums}.per-class{color:#666;font-variant-numeric:tabular-nums}
.worst{display:flex;flex-wrap:wrap;gap:1.2rem;margin-bottom:1rem}.pair{display:flex;gap:.3rem;padding:.3rem;border:1px solid #eee;border-radius:4px}.pair figure{text-align:center}
h4{margin:1rem 0 .4rem;font-size:1rem}
.swatch{display:inline-block;width:.8em;height:.8em;border:1px solid #888;vertical-align:middle;margin:0 .2em 0 .3em}.swatch.point{border-radius:50%;border-color:#141414}
p.skipped{margin:.3rem 0;font-size:.9rem}p.skipped .badge{background:#c9302c}
`;

export function sweepHtml(p: SweepPageInput): string {
  const finished = p.rows.reduce((a, r) => a + r.finished, 0);
  const planned = p.rows.reduce((a, r) => a + r.seeds.length, 0);
  const columns = sweepColumns(p.rows);
  const none = finished === 0 ? '<p class="note empty">No job of this sweep has finished yet (no results/&lt;job&gt;.json): the table has no numbers and there are no curves.</p>' : '';
  const incomplete = p.rows.some((r) => r.status === 'incomplete')
    ? '<p class="note"><span class="badge">incomplete</span> some seeds of the group have no result yet (still running, waiting, or failed): its numbers are over the finished seeds.</p>'
    : '';
  const comparison = p.comparison.pairs.length
    ? `<ul class="comparison">${p.comparison.pairs.map((x) => `<li>${e(x.sentence)}</li>`).join('')}${p.comparison.winners.map((w) => `<li class="winner">${e(w.sentence)}</li>`).join('')}</ul>
<p class="note">Each pairing compares two methods on the same backbone (and settings) seed by seed, on the final mean Dice; Δ is the mean ± sample standard deviation of the paired differences. A method wins a pairing when it wins more seeds; the overall winner has won the most pairings.</p>`
    : '<p class="note">No backbone has two methods to compare.</p>';
  const curves = p.loss && p.dice ? `<div class="curves">${img(p.loss)}${img(p.dice)}</div>` : '<p class="note">No curves: no finished job has a log.</p>';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>peftjs sweep ${e(p.name)}</title>
<style>${CSS}</style>
</head>
<body>
<h1>peftjs sweep ${e(p.name)}</h1>
<p class="meta">${p.rows.length} group${p.rows.length === 1 ? '' : 's'} · ${finished} of ${planned} jobs finished · <code>${e(p.dir)}</code> · generated ${e(p.generatedAt)} by <code>peft report</code></p>
<h2>Performance over seeds</h2>
${none}
<div class="table-wrap"><table class="results"><thead><tr>${columns.map((c) => `<th>${e(c)}</th>`).join('')}</tr></thead>
<tbody>${p.rows.map((r) => row(r, p.rows)).join('\n')}</tbody></table></div>
${incomplete}
<p class="note">Each number: mean ± sample standard deviation (n − 1) over the group's finished seeds, no ± with one seed; hover it for each seed's value. DICE and mIoU: mean over classes of the final validation. Memory: peak resident set size of the training process.</p>
<h2>Paired comparison</h2>
${comparison}
<h2>Curves over seeds</h2>
${curves}
${p.gallery ? galleryHtml(p.gallery) : p.galleryNote ? `<h2>Predictions</h2><p class="note">${e(p.galleryNote)}</p>` : ''}
<h2>Seeds</h2>
<details><summary>Every job of the sweep</summary>${seedsTable(p.rows)}</details>
</body>
</html>
`;
}
