// Panels: pictures side by side, each with a caption under it, on a white
// ground; rows of them stacked into one image. Used by the training run's
// `--vis` panels and open to any other page of pictures.
import type { Image8 } from '../data/image-io.js';
import { drawText, type TextItem } from './text.js';

export interface Tile {
  /** RGB or grey. */
  image: Image8;
  /** One line under the tile, cut with an ellipsis to the tile's width. */
  caption?: string;
}

export interface PanelLayout {
  /** Space between tiles and between rows, pixels (default 4). */
  gap: number;
  /** Space around the whole panel (default 4). */
  margin: number;
  /** Height of the caption strip under each tile (default 18). */
  caption: number;
  /** Caption font size in pixels (default 12). */
  fontSize: number;
}

export const defaultPanelLayout: PanelLayout = { gap: 4, margin: 4, caption: 18, fontSize: 12 };

const WHITE = 255;

/** A blank RGB canvas. */
function canvas(width: number, height: number, value = WHITE): Image8 {
  return { width, height, channels: 3, data: new Uint8Array(width * height * 3).fill(value) };
}

/** Copies `src` (RGB or grey) into `dst` (RGB) with its top-left corner at (x, y). */
export function blit(dst: Image8, src: Image8, x: number, y: number): void {
  for (let r = 0; r < src.height; r++) {
    const dy = y + r;
    if (dy < 0 || dy >= dst.height) continue;
    for (let c = 0; c < src.width; c++) {
      const dx = x + c;
      if (dx < 0 || dx >= dst.width) continue;
      const s = (r * src.width + c) * src.channels;
      const d = (dy * dst.width + dx) * 3;
      for (let k = 0; k < 3; k++) dst.data[d + k] = src.data[s + (src.channels === 3 ? k : 0)]!;
    }
  }
}

/** The size `panelRow` gives tiles of these sizes. */
export function panelRowSize(tiles: readonly { width: number; height: number }[], layout: Partial<PanelLayout> = {}): { width: number; height: number } {
  const l = { ...defaultPanelLayout, ...layout };
  const width = 2 * l.margin + tiles.reduce((w, t) => w + t.width, 0) + Math.max(0, tiles.length - 1) * l.gap;
  const height = 2 * l.margin + Math.max(0, ...tiles.map((t) => t.height)) + l.caption;
  return { width, height };
}

/** The tiles left to right, top-aligned, each caption under its tile. */
export function panelRow(tiles: readonly Tile[], layout: Partial<PanelLayout> = {}): Image8 {
  const l = { ...defaultPanelLayout, ...layout };
  const { width, height } = panelRowSize(tiles.map((t) => t.image), l);
  const out = canvas(width, height);
  const texts: TextItem[] = [];
  let x = l.margin;
  const tallest = Math.max(0, ...tiles.map((t) => t.image.height));
  for (const t of tiles) {
    blit(out, t.image, x, l.margin);
    if (t.caption) texts.push({ text: t.caption, x: x + 1, y: l.margin + tallest + Math.round((l.caption + l.fontSize) / 2) - 2, size: l.fontSize, maxWidth: t.image.width - 2 });
    x += t.image.width + l.gap;
  }
  drawText(out, texts);
  return out;
}

/** Rows one under the other, left-aligned (the widest sets the width); no extra margin (rows carry theirs). */
export function stackRows(rows: readonly Image8[]): Image8 {
  const width = Math.max(0, ...rows.map((r) => r.width));
  const height = rows.reduce((h, r) => h + r.height, 0);
  const out = canvas(width, height);
  let y = 0;
  for (const r of rows) {
    blit(out, r, 0, y);
    y += r.height;
  }
  return out;
}
