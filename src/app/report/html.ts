// The results page: one self-contained HTML file (inline CSS, no script, no
// network) with the seed notebook's table and curves; the images sit beside it
// and are referenced by relative paths.
import { allClasses, byDataset, DASH, fmtCount, fmtDuration, fmtMemory, fmtMetric, fmtTrainable, TABLE_COLUMNS } from './format.js';
import type { ResultRow, RunRecord } from './types.js';
import { galleryHtml } from './gallery-html.js';
import type { GallerySection } from './gallery.js';
import { escapeHtml, type PageImage } from './page-image.js';

export { escapeHtml, type PageImage };

export interface PageInput {
  rows: ResultRow[];
  records: RunRecord[];
  generatedAt: string;
  loss: PageImage;
  dice: PageImage;
  perRun: { loss: PageImage; performance: PageImage }[];
  /** The Predictions section, when asked for. */
  gallery?: GallerySection;
}

const e = escapeHtml;

const perClass = (m: Record<string, number>) =>
  Object.entries(m)
    .map(([k, v]) => `${k} ${fmtMetric(v)}`)
    .join(' · ');

const cell = (text: string, title?: string, cls?: string) =>
  `<td${cls ? ` class="${cls}"` : ''}${title ? ` title="${e(title)}"` : ''}>${e(text)}</td>`;

function mainRow(r: ResultRow): string {
  const incomplete = r.status === 'incomplete';
  const from = r.metricsFrom === 'log' ? ' (last validation in the log)' : r.metricsFrom === 'none' ? ' (no validation yet)' : '';
  const cells = [
    cell(r.baseline, `backbone ${r.backboneId}`),
    cell(r.encoder, `${r.backbone}${r.imageSize ? `, ${r.imageSize} px input` : ''}`),
    `<td title="${e(`method ${r.methodId} (Medical-SAM-Adapter -mod ${r.mod})`)}">${e(r.mode)}${incomplete ? ' <span class="badge" title="no summary.json: in progress, or crashed">incomplete</span>' : ''}</td>`,
    cell(fmtMetric(r.dice), `Dice per class: ${perClass(r.diceByClass) || DASH}${from}`, 'num dice'),
    cell(fmtMetric(r.miou), `IoU per class: ${perClass(r.iouByClass) || DASH}${from}`, 'num miou'),
    cell(fmtMemory(r.memoryMB), r.peakRss === null ? 'unknown until the run writes summary.json' : `peak RSS ${r.peakRss.toLocaleString('en-US')} bytes${r.peakTensorBytes !== null ? `; peak tensor memory ${fmtMemory(r.peakTensorBytes / 1048576)}` : ''}`, 'num'),
    cell(fmtTrainable(r), `method parameters ${fmtCount(r.methodParameters)}; trainable ${r.trainableParameters?.toLocaleString('en-US') ?? DASH}; total ${r.totalParameters?.toLocaleString('en-US') ?? DASH}`, 'num'),
    cell(fmtDuration(r.seconds), `${r.seconds === null ? DASH : `${r.seconds.toFixed(1)} s`}; ${r.steps} steps, ${r.epochs} epochs${r.backend ? `; backend ${r.backend}` : ''}`, 'num'),
  ];
  return `<tr class="run${incomplete ? ' incomplete' : ''}" data-run="${e(r.label)}">${cells.join('')}</tr>`;
}

function detailsTable(rows: ResultRow[]): string {
  const classes = allClasses(rows);
  const head = ['Run', ...classes.map((c) => `Dice ${c}`), ...classes.map((c) => `IoU ${c}`), 'Best DICE (step)', 'Steps', 'Epochs', 'Backend', 'Run directory'];
  const body = rows.map((r) =>
    [
      cell(r.label),
      ...classes.map((c) => cell(fmtMetric(r.diceByClass[c]), undefined, 'num')),
      ...classes.map((c) => cell(fmtMetric(r.iouByClass[c]), undefined, 'num')),
      cell(r.bestDice === null ? DASH : `${fmtMetric(r.bestDice)} (${r.bestStep ?? '?'})`, undefined, 'num'),
      cell(String(r.steps), undefined, 'num'),
      cell(String(r.epochs), undefined, 'num'),
      cell(r.backend ?? DASH),
      `<td><code>${e(r.dir)}</code></td>`,
    ].join(''),
  );
  return `<table class="details"><thead><tr>${head.map((h) => `<th>${e(h)}</th>`).join('')}</tr></thead><tbody>${body.map((b) => `<tr>${b}</tr>`).join('')}</tbody></table>`;
}

function img(i: PageImage, cls: string): string {
  const link = i.svg ? `<figcaption><a href="${e(i.svg)}">SVG</a></figcaption>` : '';
  return `<figure class="${cls}"><img src="${e(i.src)}" width="${Math.round(i.width)}" height="${Math.round(i.height)}" alt="${e(i.alt)}">${link}</figure>`;
}

const CSS = `
body{font-family:"DejaVu Sans","Liberation Sans",Arial,sans-serif;margin:2rem auto;max-width:1200px;padding:0 1rem;color:#222;line-height:1.4}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}h3{margin-bottom:.4rem}
.meta{color:#666;font-size:.9rem}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.95rem}
th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#f3f5f7}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.incomplete td{color:#666;background:#fffbea}
.badge{display:inline-block;font-size:.75rem;background:#f0ad4e;color:#fff;border-radius:3px;padding:0 .3rem;margin-left:.3rem}
table.details{font-size:.85rem}
figure{margin:0;display:inline-block;vertical-align:top}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.8rem;color:#666}
.curves figure.main{margin:0 1rem 1rem 0}
.run-pair{display:flex;flex-wrap:wrap;gap:1rem}
details{margin:.3rem 0 1rem}code{font-size:.85rem}
.note{color:#555;font-size:.9rem}
.gallery-wrap{overflow-x:auto}table.gallery td{padding:.3rem;text-align:center}table.gallery th{text-align:center;font-size:.85rem}
figure.pic figcaption{font-size:.8rem;color:#333;line-height:1.25;margin-top:.15rem}figure.pic img{border:1px solid #ddd}
.dice{font-weight:bold;font-variant-numeric:tabular-nums}.per-class{color:#666;font-variant-numeric:tabular-nums}
.worst{display:flex;flex-wrap:wrap;gap:1.2rem;margin-bottom:1rem}.pair{display:flex;gap:.3rem;padding:.3rem;border:1px solid #eee;border-radius:4px}.pair figure{text-align:center}
h4{margin:1rem 0 .4rem;font-size:1rem}
.swatch{display:inline-block;width:.8em;height:.8em;border:1px solid #888;vertical-align:middle;margin:0 .2em 0 .3em}.swatch.point{border-radius:50%;border-color:#141414}
p.skipped{margin:.3rem 0;font-size:.9rem}p.skipped .badge{background:#c9302c}
`;

/** The page. Runs appear in the order given; tables are grouped by dataset as in the seed ("REFUGE"). */
export function reportHtml(p: PageInput): string {
  const tables = byDataset(p.rows)
    .map(([dataset, rows]) => `<h3>${e(dataset)}</h3>
<table class="results"><thead><tr>${TABLE_COLUMNS.map((c) => `<th>${e(c)}</th>`).join('')}</tr></thead>
<tbody>${rows.map(mainRow).join('\n')}</tbody></table>
<details open><summary>Per class, best Dice, run length</summary>${detailsTable(rows)}</details>`)
    .join('\n');
  const incomplete = p.rows.some((r) => r.status === 'incomplete')
    ? '<p class="note"><span class="badge">incomplete</span> the run has no summary.json (still in progress, or it crashed): its numbers are the log\'s last validation, memory is unknown, time is the log\'s span.</p>'
    : '';
  const perRun = p.rows
    .map((r, i) => {
      const rec = p.records[i]!;
      const pair = p.perRun[i]!;
      return `<section class="run-section"><h3>${e(r.label)}${r.status === 'incomplete' ? ' <span class="badge">incomplete</span>' : ''}</h3>
<div class="run-pair">${img(pair.loss, 'small')}${img(pair.performance, 'small')}</div>
${rec.info.command ? `<details><summary>command</summary><code>${e(rec.info.command)}</code></details>` : ''}</section>`;
    })
    .join('\n');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>peftjs results</title>
<style>${CSS}</style>
</head>
<body>
<h1>peftjs results</h1>
<p class="meta">${p.rows.length} run${p.rows.length === 1 ? '' : 's'} · generated ${e(p.generatedAt)} by <code>peft report</code></p>
<h2>Performance</h2>
${tables}
${incomplete}
<p class="note">DICE and mIoU: mean over classes of the final validation (hover a number for each class). Memory: peak resident set size of the training process. Trainable params: parameters the optimiser updated, with their share of the model.</p>
<h2>Curve of loss and performance</h2>
<div class="curves">${img(p.loss, 'main')}${img(p.dice, 'main')}</div>
${galleryHtml(p.gallery)}
<h2>Runs</h2>
${perRun}
</body>
</html>
`;
}
