// The page's "Predictions" section (see gallery.ts): per dataset a table whose
// rows are the shown images and whose columns are the image with its prompt,
// the ground truth and each run's prediction captioned with its Dice; then
// each run's worst images; a run that could not be re-evaluated is one line.
import { DASH } from './format.js';
import type { GalleryGroup, GallerySection, ScoredPicture } from './gallery.js';
import { escapeHtml, type PageImage } from './page-image.js';
import { PROMPT_COLOURS, type Rgb } from '../pictures/mask-image.js';
import { classColour } from '../pictures/overlay.js';

const e = escapeHtml;
const fmt = (x: number) => x.toFixed(3);
const css = (c: Rgb) => `rgb(${c.join(',')})`;

/** The picture's own size is the PNG's; the page shows it at `PANEL` CSS pixels (crisp on 1.5x screens). */
const PANEL = 176;

function pic(i: PageImage, caption: string): string {
  return `<figure class="pic"><img src="${e(i.src)}" width="${PANEL}" height="${Math.round((PANEL * i.height) / i.width)}" alt="${e(i.alt)}" loading="eager"><figcaption>${caption}</figcaption></figure>`;
}

function diceCaption(p: ScoredPicture, classes: string[]): string {
  const per = classes.length > 1 ? `<br><span class="per-class">${classes.map((c) => `${e(c)} ${p.diceByClass[c] === undefined ? DASH : fmt(p.diceByClass[c]!)}`).join(' · ')}</span>` : '';
  return `<span class="dice">Dice ${fmt(p.dice)}</span>${per}`;
}

function legend(classes: string[]): string {
  const swatch = (c: string, k: number) => `<span class="swatch" style="background:${css(classColour(k))}"></span>${e(c)}`;
  const mark = (c: Rgb, what: string) => `<span class="swatch point" style="background:${css(c)}"></span>${what}`;
  return `<span class="legend">${classes.map(swatch).join(' ')} · ${mark(PROMPT_COLOURS.positive, 'positive click or box')} · ${mark(PROMPT_COLOURS.negative, 'negative click')}</span>`;
}

function group(g: GalleryGroup, section: GallerySection, many: boolean): string {
  const head = ['Image and prompt', 'Ground truth', ...g.runs.map((r) => r.label)];
  const table = g.images.length
    ? `<div class="gallery-wrap"><table class="gallery"><thead><tr>${head.map((h) => `<th>${e(h)}</th>`).join('')}</tr></thead><tbody>${g.images
        .map(
          (im, k) =>
            `<tr>${[
              pic(im.image, `#${im.index} <code>${e(im.name)}</code>`),
              pic(im.truth, 'ground truth'),
              ...g.runs.map((r) => pic(r.predictions[k]!.picture, diceCaption(r.predictions[k]!, g.classes))),
            ]
              .map((c) => `<td>${c}</td>`)
              .join('')}</tr>`,
        )
        .join('\n')}</tbody></table></div>`
    : '';
  const other = g.runs.filter((r) => r.otherPrompts);
  const otherNote = other.length
    ? ` ${other.map((r) => e(r.label)).join(', ')} ${other.length === 1 ? 'is' : 'are'} evaluated with other prompt settings: ${other.length === 1 ? 'its' : 'their'} Dice per image here is under the shared prompts and may differ from its own <code>peft eval</code>.`
    : '';
  const worst = section.worst > 0
    ? g.runs
        .map(
          (r) => `<h4>${e(r.label)}: its ${r.worst.length} worst of ${r.scored} images</h4>
<div class="worst">${r.worst.map((w) => `<div class="pair">${pic(w.truth, `#${w.index} <code>${e(w.name)}</code>: ground truth`)}${pic(w.picture, diceCaption(w, g.classes))}</div>`).join('')}</div>`,
        )
        .join('\n')
    : '';
  return `<section class="gallery-group">${many ? `<h3>${e(g.dataset)}</h3>` : ''}
<p class="note">${g.images.length} of the ${g.splitSize} validation images, spread evenly over the split (image #⌊(j + ½)·${g.splitSize}/${g.images.length}⌋). Prompt: ${e(g.prompts).replace(/`([^`]+)`/g, '<code>$1</code>')}, the same for every run. Masks at threshold 0.5: ${legend(g.classes)}. Dice as <code>peft eval</code> computes it (mean over the thresholds 0.1…0.9, then over classes).${otherNote}</p>
${table}
${worst}</section>`;
}

/** The section's HTML (empty when the section was not asked for). */
export function galleryHtml(section: GallerySection | undefined): string {
  if (!section) return '';
  // the reason usually names the run's folder already; otherwise the line does
  const skipped = section.skipped
    .map((s) => `<p class="skipped"><span class="badge">no pictures</span> ${e(s.label)}${s.reason.includes(s.dir) ? '' : ` (<code>${e(s.dir)}</code>)`}: ${e(s.reason)}</p>`)
    .join('\n');
  const groups = section.groups.map((g) => group(g, section, section.groups.length > 1)).join('\n');
  const none = section.groups.length === 0 ? '<p class="note">No run could be re-evaluated.</p>' : '';
  const checkpoints = section.groups.flatMap((g) => g.runs).length
    ? `<p class="note">Each run's model is rebuilt from its folder and its ${section.checkpoint === 'best' ? 'best checkpoint (else its last)' : 'last checkpoint'} and re-evaluated: ${section.seconds.toFixed(1)} s for this section.</p>`
    : '';
  return `<section id="predictions"><h2>Predictions</h2>
${checkpoints}
${skipped}
${none}
${groups}</section>`;
}
