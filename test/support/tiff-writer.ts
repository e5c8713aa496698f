// A small baseline TIFF writer for the tests (the `tiff` package decodes only):
// one or more pages of 8/16-bit integer or 32-bit float samples, grey or RGB
// (channels-last), in strips or tiles, uncompressed, LZW or deflated, little
// or big endian. `extraTags` replace or add directory entries and `rawChunks`
// replaces the image data, so a test can also write a lying file.
import { zlibSync } from 'fflate';

export interface TiffPage {
  width: number;
  height: number;
  /** Samples, channels-last, row by row. */
  data: ArrayLike<number>;
  samplesPerPixel?: number;
  bitsPerSample?: 8 | 16 | 32;
  /** 1 unsigned, 2 signed, 3 float. */
  sampleFormat?: 1 | 2 | 3;
  /** Default: 1 (BlackIsZero) for 1-2 samples, 2 (RGB) for 3-4. */
  photometric?: number;
  rowsPerStrip?: number;
  tile?: { width: number; height: number };
  /** 1 none, 5 LZW, 8 deflate. */
  compression?: 1 | 5 | 8;
  /** The strips or tiles as they are to be stored (already compressed), instead of encoding `data`. */
  rawChunks?: Uint8Array[];
  /** [tag, type (3 SHORT, 4 LONG), values]: replaces or adds an entry. */
  extraTags?: [number, 3 | 4, number[]][];
}

type Tag = [number, number, number[] | Uint8Array];

/** Writes the pages as one TIFF file. */
export function writeTiff(pages: TiffPage[], little = true): Uint8Array {
  const chunks: Uint8Array[] = [];
  let size = 8;
  const put = (b: Uint8Array): number => {
    if (size % 2) {
      chunks.push(new Uint8Array(1));
      size++;
    }
    const at = size;
    chunks.push(b);
    size += b.length;
    return at;
  };
  const head = new Uint8Array(8);
  const hdv = new DataView(head.buffer);
  head[0] = head[1] = little ? 0x49 : 0x4d;
  hdv.setUint16(2, 42, little);
  const ifdOffsets: number[] = [];
  const nextPointers: number[] = [];
  for (const p of pages) {
    const spp = p.samplesPerPixel ?? 1;
    const bits = p.bitsPerSample ?? 8;
    const fmt = p.sampleFormat ?? (bits === 32 ? 3 : 1);
    const bps = bits / 8;
    const sample = (v: number): Uint8Array => {
      const b = new Uint8Array(bps);
      const dv = new DataView(b.buffer);
      if (bits === 8) b[0] = v & 0xff;
      else if (bits === 16) dv.setUint16(0, v & 0xffff, little);
      else dv.setFloat32(0, v, little);
      return b;
    };
    const region = (x0: number, y0: number, w: number, h: number): Uint8Array => {
      const out = new Uint8Array(w * h * spp * bps);
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          for (let c = 0; c < spp; c++) {
            const sx = x0 + x;
            const sy = y0 + y;
            const v = sx < p.width && sy < p.height ? p.data[(sy * p.width + sx) * spp + c]! : 0;
            out.set(sample(v), ((y * w + x) * spp + c) * bps);
          }
        }
      }
      return p.compression === 8 ? zlibSync(out) : p.compression === 5 ? lzwEncode(out) : out;
    };
    const offsets: number[] = [];
    const counts: number[] = [];
    const tags: Tag[] = [];
    if (p.tile) {
      const { width: tw, height: th } = p.tile;
      for (let ty = 0; ty < Math.ceil(p.height / th); ty++) {
        for (let tx = 0; tx < Math.ceil(p.width / tw); tx++) {
          const b = p.rawChunks?.[offsets.length] ?? region(tx * tw, ty * th, tw, th);
          offsets.push(put(b));
          counts.push(b.length);
        }
      }
      tags.push([322, 3, [tw]], [323, 3, [th]], [324, 4, offsets], [325, 4, counts]);
    } else {
      const rps = p.rowsPerStrip ?? p.height;
      for (let y = 0; y < p.height; y += rps) {
        const b = p.rawChunks?.[offsets.length] ?? region(0, y, p.width, Math.min(rps, p.height - y));
        offsets.push(put(b));
        counts.push(b.length);
      }
      tags.push([273, 4, offsets], [278, 4, [rps]], [279, 4, counts]);
    }
    tags.push(
      [256, 4, [p.width]],
      [257, 4, [p.height]],
      [258, 3, Array(spp).fill(bits)],
      [259, 3, [p.compression ?? 1]],
      [262, 3, [p.photometric ?? (spp >= 3 ? 2 : 1)]],
      [277, 3, [spp]],
      [284, 3, [1]],
      [339, 3, Array(spp).fill(fmt)],
    );
    if (spp === 2 || spp === 4) tags.push([338, 3, [2]]); // unassociated alpha
    for (const [tag, type, values] of p.extraTags ?? []) {
      const at = tags.findIndex((t) => t[0] === tag);
      if (at >= 0) tags[at] = [tag, type, values];
      else tags.push([tag, type, values]);
    }
    tags.sort((a, b) => a[0] - b[0]);
    // values longer than 4 bytes go before the directory
    const entries = tags.map(([tag, type, values]) => {
      const size = type === 3 ? 2 : 4;
      const b = new Uint8Array(values.length * size);
      const dv = new DataView(b.buffer);
      Array.from(values).forEach((v, i) => (size === 2 ? dv.setUint16(i * 2, v, little) : dv.setUint32(i * 4, v, little)));
      return { tag, type, count: values.length, bytes: b, at: b.length > 4 ? put(b) : -1 };
    });
    const ifd = new Uint8Array(2 + entries.length * 12 + 4);
    const dv = new DataView(ifd.buffer);
    dv.setUint16(0, entries.length, little);
    entries.forEach((e, k) => {
      const o = 2 + k * 12;
      dv.setUint16(o, e.tag, little);
      dv.setUint16(o + 2, e.type, little);
      dv.setUint32(o + 4, e.count, little);
      if (e.at >= 0) dv.setUint32(o + 8, e.at, little);
      else ifd.set(e.bytes, o + 8);
    });
    const at = put(ifd);
    ifdOffsets.push(at);
    nextPointers.push(at + 2 + entries.length * 12);
  }
  const out = new Uint8Array(size);
  out.set(head);
  let o = 8;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  const dv = new DataView(out.buffer);
  dv.setUint32(4, ifdOffsets[0]!, little);
  for (let i = 0; i < pages.length; i++) dv.setUint32(nextPointers[i]!, ifdOffsets[i + 1] ?? 0, little);
  return out;
}

/**
 * TIFF LZW (PS6 section 13): MSB-first codes from 9 to 12 bits, Clear (256)
 * first, End of Information (257) last, and the "early change": a reader
 * widens its codes when its table reaches 511, 1023, 2047 entries, and it
 * adds each entry one code later than the writer does.
 */
export function lzwEncode(data: Uint8Array): Uint8Array {
  const out: number[] = [];
  let acc = 0;
  let accBits = 0;
  let sinceClear = 0; // codes written since the last Clear
  const widthFor = (k: number) => {
    const table = 258 + Math.max(0, k - 2); // the reader's table size when it reads the k-th code
    return table < 511 ? 9 : table < 1023 ? 10 : table < 2047 ? 11 : 12;
  };
  const emit = (code: number) => {
    sinceClear++;
    const w = widthFor(sinceClear);
    acc = (acc << w) | code;
    accBits += w;
    while (accBits >= 8) {
      out.push((acc >>> (accBits - 8)) & 255);
      accBits -= 8;
    }
    acc &= (1 << accBits) - 1;
  };
  let dict = new Map<string, number>();
  let next = 258;
  const clear = () => {
    emit(256);
    sinceClear = 0;
    dict = new Map();
    next = 258;
  };
  clear();
  let w = -1;
  for (const c of data) {
    if (w < 0) {
      w = c;
      continue;
    }
    const key = `${w},${c}`;
    const hit = dict.get(key);
    if (hit !== undefined) {
      w = hit;
      continue;
    }
    emit(w);
    dict.set(key, next++);
    w = c;
    if (next >= 4093) {
      emit(w);
      w = -1;
      clear();
    }
  }
  if (w >= 0) emit(w);
  emit(257);
  if (accBits > 0) out.push((acc << (8 - accBits)) & 255);
  return Uint8Array.from(out);
}
