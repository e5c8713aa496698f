// The zip container of a torch.save file, read in place: the central directory
// locates every entry, stored entries are views into the file's buffer (no
// copy), deflated ones are inflated with fflate into a buffer whose size the
// directory declares. ZIP64 records are understood (large checkpoints use
// them). Every offset and size is checked against the buffer before use;
// entry names must be plain relative UTF-8 paths; entries may not overlap
// (overlapping entries are how zip bombs multiply one compressed stream); an
// entry's CRC-32, when the archive records one, is verified on read.
import { Inflate } from 'fflate';
import * as zlib from 'node:zlib';
import { PeftError } from '../errors.js';
import { briefValue } from '../text.js';

export interface ZipEntry {
  name: string;
  /** 0 = stored, 8 = deflate. */
  method: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
  /** CRC-32 of the plain bytes as the directory records it (0: not recorded, not checked). */
  crc32?: number;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (zip's): node's native one when present (Node >= 20.15), else a table. */
export function crc32(data: Uint8Array): number {
  const native = (zlib as { crc32?: (d: Uint8Array) => number }).crc32;
  if (typeof native === 'function') return native(data) >>> 0;
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** An entry name for a message: printable, cut short. */
function shown(name: string): string {
  return briefValue(name, 80);
}

/** A plain relative path: no absolute or drive prefix, no '.' or '..' segments, no backslash or control characters. */
function unsafeName(name: string): string | undefined {
  if (name.length === 0) return 'an empty name';
  if (/[\u0000-\u001f\u007f]/.test(name)) return 'control characters';
  if (name.includes('\\')) return 'a backslash';
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) return 'an absolute path';
  const parts = name.split('/');
  if (parts.some((p, i) => p === '..' || p === '.' || (p === '' && i < parts.length - 1))) return "'.', '..' or empty path segments";
  return undefined;
}

/** Limits of a zip archive beyond its file's size. */
export const ZIP_LIMITS = {
  /** Most entries a directory may list (a checkpoint has one per storage, plus data.pkl, version and byteorder). */
  maxEntries: 100_010,
  /** Deflated entries read from one archive may inflate to this many times the file's bytes in all... */
  inflateBytesPerFileByte: 16,
  /** ...or this many bytes, for a small file. */
  minInflateBytes: 64 * 1024 * 1024,
} as const;

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;

export class ZipArchive {
  /** What deflated entries read so far declared they inflate to. */
  private inflated = 0;
  /** What they may inflate to in all (ZIP_LIMITS): a few MB of deflate can declare gigabytes. */
  readonly inflateBudget: number;

  constructor(
    readonly source: string,
    private readonly buf: Uint8Array,
    readonly entries: Map<string, ZipEntry>,
  ) {
    this.inflateBudget = Math.max(ZIP_LIMITS.inflateBytesPerFileByte * buf.byteLength, ZIP_LIMITS.minInflateBytes);
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** The entry's bytes: a view into the file for stored entries, a new buffer for deflated ones. */
  read(name: string): Uint8Array {
    const e = this.entries.get(name);
    if (!e) throw new PeftError(`${this.source}: zip archive has no entry '${shown(name)}'`);
    const view = dataView(this.buf);
    const at = e.localHeaderOffset;
    if (at + 30 > this.buf.byteLength || view.getUint32(at, true) !== LOCAL) {
      this.fail(`entry '${shown(name)}' has no local header at offset ${at}`);
    }
    const start = at + 30 + view.getUint16(at + 26, true) + view.getUint16(at + 28, true);
    const end = start + e.compressedSize;
    if (end > this.buf.byteLength) this.fail(`entry '${shown(name)}' runs past the end of the file (truncated?)`);
    const raw = this.buf.subarray(start, end);
    if (e.method === 0) {
      if (e.compressedSize !== e.size) this.fail(`stored entry '${shown(name)}' has different compressed and plain sizes`);
      return this.checked(e, raw);
    }
    // deflate cannot expand data by more than ~1032x: refuse sizes that cannot be genuine
    if (e.size > Math.max(1024, e.compressedSize * 1032)) this.fail(`entry '${shown(name)}' declares an impossible size ${e.size}`);
    // the declared size is budgeted before it is allocated, and the stream may not exceed it
    this.inflated += e.size;
    if (this.inflated > this.inflateBudget) {
      this.fail(`entry '${shown(name)}' would inflate the entries read to ${this.inflated} bytes, more than the ${this.inflateBudget}-byte limit for a ${this.buf.byteLength}-byte file`);
    }
    const out = new Uint8Array(e.size);
    let got = 0;
    let ended = false;
    const inflater = new Inflate((chunk, final) => {
      if (got + chunk.length > e.size) this.fail(`entry '${shown(name)}' inflates to more than the ${e.size} bytes it declares`);
      out.set(chunk, got);
      got += chunk.length;
      if (final) ended = true;
    });
    try {
      // small slices bound what one push can inflate at once (fflate inflates a whole push)
      const slice = 16384;
      if (raw.length === 0) inflater.push(raw, true);
      for (let s = 0; s < raw.length; s += slice) inflater.push(raw.subarray(s, s + slice), s + slice >= raw.length);
    } catch (err) {
      if (err instanceof PeftError) throw err;
      this.fail(`entry '${shown(name)}' does not inflate (${(err as Error).message})`);
    }
    if (!ended || got !== e.size) this.fail(`entry '${shown(name)}' inflates to ${got} bytes, not ${e.size}`);
    return this.checked(e, out);
  }

  /** The bytes, after checking them against the recorded CRC-32 (when there is one). */
  private checked(e: ZipEntry, bytes: Uint8Array): Uint8Array {
    if (e.crc32 && crc32(bytes) !== e.crc32) this.fail(`entry '${shown(e.name)}' is corrupt (CRC-32 mismatch)`);
    return bytes;
  }

  private fail(what: string): never {
    throw new PeftError(`${this.source}: not a valid zip archive: ${what}`);
  }
}

function dataView(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

function u64(view: DataView, at: number): number {
  const v = view.getBigUint64(at, true);
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
}

/** Reads a zip archive's directory. `source` names the file in errors. */
export function openZip(buf: Uint8Array, source: string): ZipArchive {
  const fail = (what: string): never => {
    throw new PeftError(`${source}: not a valid zip archive: ${what}`);
  };
  const view = dataView(buf);
  const len = buf.byteLength;
  if (len < 22) fail(`${len} bytes is too short for a zip archive`);
  let eocd = -1;
  for (let i = len - 22; i >= Math.max(0, len - 22 - 0xffff); i--) {
    if (view.getUint32(i, true) === EOCD && i + 22 + view.getUint16(i + 20, true) <= len) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) {
    fail(view.getUint32(0, true) === LOCAL ? 'no central directory at the end (the file is truncated)' : 'no end-of-central-directory record');
  }
  let count = view.getUint16(eocd + 10, true);
  let cdSize = view.getUint32(eocd + 12, true);
  let cdOffset = view.getUint32(eocd + 16, true);
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    const loc = eocd - 20;
    if (loc < 0 || view.getUint32(loc, true) !== ZIP64_LOCATOR) fail('ZIP64 sizes without a ZIP64 locator');
    const z = u64(view, loc + 8);
    if (z + 56 > len || view.getUint32(z, true) !== ZIP64_EOCD) fail('ZIP64 end record missing');
    count = u64(view, z + 32);
    cdSize = u64(view, z + 40);
    cdOffset = u64(view, z + 48);
  }
  if (cdOffset + cdSize > len) fail(`central directory (${cdSize} bytes at ${cdOffset}) lies outside the file (truncated?)`);
  // every central record is at least 46 bytes: the count cannot exceed what fits
  if (count * 46 > cdSize) fail(`${count} entries cannot fit in a ${cdSize}-byte directory`);
  if (count > ZIP_LIMITS.maxEntries) fail(`${count} entries, more than the limit of ${ZIP_LIMITS.maxEntries}`);
  const entries = new Map<string, ZipEntry>();
  const decoder = new TextDecoder('utf-8', { fatal: true });
  /** Each entry's smallest footprint: local header (30 + name) and its data. */
  const spans: [number, number, string][] = [];
  let p = cdOffset;
  const end = cdOffset + cdSize;
  for (let i = 0; i < count; i++) {
    if (p + 46 > end || view.getUint32(p, true) !== CENTRAL) fail(`central directory record ${i} is damaged`);
    const flags = view.getUint16(p + 8, true);
    const method = view.getUint16(p + 10, true);
    let compressedSize = view.getUint32(p + 20, true);
    let size = view.getUint32(p + 24, true);
    const nameLen = view.getUint16(p + 28, true);
    const extraLen = view.getUint16(p + 30, true);
    const commentLen = view.getUint16(p + 32, true);
    let localHeaderOffset = view.getUint32(p + 42, true);
    const next = p + 46 + nameLen + extraLen + commentLen;
    if (next > end) fail(`central directory record ${i} runs past the directory`);
    let name = '';
    try {
      name = decoder.decode(buf.subarray(p + 46, p + 46 + nameLen));
    } catch {
      fail(`entry ${i} has a name that is not valid UTF-8`);
    }
    const unsafe = unsafeName(name);
    if (unsafe) fail(`entry '${shown(name)}' has an unsafe name (${unsafe})`);
    const crc = view.getUint32(p + 16, true);
    // ZIP64 extended information: the 0xffffffff fields, in this order
    let q = p + 46 + nameLen;
    const extraEnd = q + extraLen;
    while (q + 4 <= extraEnd) {
      const id = view.getUint16(q, true);
      const n = view.getUint16(q + 2, true);
      if (q + 4 + n > extraEnd) fail(`entry '${shown(name)}' has a damaged extra field`);
      if (id === 0x0001) {
        let r = q + 4;
        const take = (): number => {
          if (r + 8 > q + 4 + n) fail(`entry '${shown(name)}' has a short ZIP64 field`);
          const v = u64(view, r);
          r += 8;
          return v;
        };
        if (size === 0xffffffff) size = take();
        if (compressedSize === 0xffffffff) compressedSize = take();
        if (localHeaderOffset === 0xffffffff) localHeaderOffset = take();
      }
      q += 4 + n;
    }
    if (flags & 1) fail(`entry '${shown(name)}' is encrypted`);
    if (method !== 0 && method !== 8) fail(`entry '${shown(name)}' uses compression method ${method} (only stored and deflate are read)`);
    if (localHeaderOffset + compressedSize > len) fail(`entry '${shown(name)}' lies outside the file (truncated?)`);
    if (entries.has(name)) fail(`entry '${shown(name)}' appears twice`);
    entries.set(name, { name, method, compressedSize, size, localHeaderOffset, crc32: crc });
    spans.push([localHeaderOffset, localHeaderOffset + 30 + nameLen + compressedSize, name]);
    p = next;
  }
  spans.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < spans.length; i++) {
    if (spans[i]![0] < spans[i - 1]![1]) fail(`entries '${shown(spans[i - 1]![2])}' and '${shown(spans[i]![2])}' overlap (a zip bomb or a damaged archive)`);
  }
  return new ZipArchive(source, buf, entries);
}
