// Captions on pictures: text laid out in an SVG and rasterised by resvg, then
// blended into an RGB image. resvg is given ONE font file, found once in the
// usual font folders (DejaVu Sans or Liberation Sans preferred): asking it to
// load the system's fonts instead makes it read fontconfig's whole setup,
// which took over ten seconds (and sometimes never ended) on a busy machine.
// Without any font file, captions are left out and the picture is otherwise
// the same.
import { readdirSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Resvg } from '@resvg/resvg-js';
import type { Image8 } from '../data/image-io.js';
import type { Rgb } from './mask-image.js';

const preferred = ['DejaVuSans.ttf', 'LiberationSans-Regular.ttf', 'Arial.ttf', 'arial.ttf', 'Helvetica.ttc', 'NotoSans-Regular.ttf'];

function fontFolders(): string[] {
  const home = homedir();
  return ['/usr/share/fonts', '/usr/local/share/fonts', join(home, '.local/share/fonts'), join(home, '.fonts'), '/System/Library/Fonts', '/Library/Fonts', 'C:\\Windows\\Fonts'];
}

/** A .ttf/.otf/.ttc under `folders` (the preferred names first), looking at no more than a few thousand entries. */
export function findFontFile(folders: readonly string[] = fontFolders()): string | undefined {
  let budget = 5000;
  let fallback: string | undefined;
  const found = new Map<string, string>();
  const walk = (dir: string, depth: number) => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of names) {
      if (--budget < 0) return;
      const path = join(dir, name);
      if (/\.(ttf|otf|ttc)$/i.test(name)) {
        if (preferred.includes(name) && !found.has(name)) found.set(name, path);
        fallback ??= /\.ttf$/i.test(name) ? path : undefined;
        continue;
      }
      if (depth < 4) {
        try {
          if (statSync(path).isDirectory()) walk(path, depth + 1);
        } catch {
          // unreadable entry: skip it
        }
      }
    }
  };
  for (const f of folders) walk(f, 0);
  for (const name of preferred) if (found.has(name)) return found.get(name);
  return fallback;
}

let fontFile: string | undefined | null = null;

/** The font captions use (searched once per process); undefined when the machine has none. */
export function captionFont(): string | undefined {
  if (fontFile === null) fontFile = process.env.PEFT_FONT || findFontFile();
  return fontFile;
}

export interface TextItem {
  text: string;
  /** Left edge and baseline, pixels. */
  x: number;
  y: number;
  /** Font size in pixels (default 13). */
  size?: number;
  colour?: Rgb;
  /** Longest width the text may take: cut with an ellipsis beyond it. */
  maxWidth?: number;
  bold?: boolean;
}

const escapeXml = (s: string) => s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`).replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, '?');

/** `text` cut to about `width` pixels at `size` (a sans-serif glyph averages ~0.6 em). */
export function fitText(text: string, width: number, size: number): string {
  const max = Math.floor(width / (0.6 * size));
  if (text.length <= max) return text;
  return max <= 1 ? '' : `${text.slice(0, max - 1)}…`;
}

/**
 * Draws the items onto `image` (RGB, in place). Returns false (drawing
 * nothing) when no font is found.
 */
export function drawText(image: Image8, items: readonly TextItem[]): boolean {
  if (image.channels !== 3) throw new Error('drawText: an RGB image is expected');
  const font = captionFont();
  if (!font || items.length === 0) return false;
  const { width, height } = image;
  const parts = items.map((t) => {
    const size = t.size ?? 13;
    const text = t.maxWidth === undefined ? t.text : fitText(t.text, t.maxWidth, size);
    const [r, g, b] = t.colour ?? [30, 30, 30];
    return `<text x="${t.x}" y="${t.y}" font-size="${size}"${t.bold ? ' font-weight="bold"' : ''} fill="rgb(${r},${g},${b})" xml:space="preserve">${escapeXml(text)}</text>`;
  });
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">${parts.join('')}</svg>`;
  const rendered = new Resvg(svg, { font: { loadSystemFonts: false, fontFiles: [font] } }).render();
  const rgba = rendered.pixels;
  // resvg's pixels are premultiplied RGBA: out = src + dst * (1 - alpha)
  for (let i = 0; i < width * height; i++) {
    const a = rgba[i * 4 + 3]!;
    if (a === 0) continue;
    const keep = 1 - a / 255;
    for (let c = 0; c < 3; c++) image.data[i * 3 + c] = Math.round(rgba[i * 4 + c]! + image.data[i * 3 + c]! * keep);
  }
  return true;
}
