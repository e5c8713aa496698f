// The zip container of a torch.save file, read in place: the central directory
// locates every entry, stored entries are views into the file's buffer (no
// copy), deflated ones are inflated with fflate into a buffer whose size the
// directory declares. ZIP64 records are understood (large checkpoints use
// them). Every offset and size is checked against the buffer before use.
import { inflateSync } from 'fflate';
import { PeftError } from '../errors.js';

export interface ZipEntry {
  name: string;
  /** 0 = stored, 8 = deflate. */
  method: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;

export class ZipArchive {
  constructor(
    readonly source: string,
    private readonly buf: Uint8Array,
    readonly entries: Map<string, ZipEntry>,
  ) {}

  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** The entry's bytes: a view into the file for stored entries, a new buffer for deflated ones. */
  read(name: string): Uint8Array {
    const e = this.entries.get(name);
    if (!e) throw new PeftError(`${this.source}: zip archive has no entry '${name}'`);
    const view = dataView(this.buf);
    const at = e.localHeaderOffset;
    if (at + 30 > this.buf.byteLength || view.getUint32(at, true) !== LOCAL) {
      this.fail(`entry '${name}' has no local header at offset ${at}`);
    }
    const start = at + 30 + view.getUint16(at + 26, true) + view.getUint16(at + 28, true);
    const end = start + e.compressedSize;
    if (end > this.buf.byteLength) this.fail(`entry '${name}' runs past the end of the file (truncated?)`);
    const raw = this.buf.subarray(start, end);
    if (e.method === 0) {
      if (e.compressedSize !== e.size) this.fail(`stored entry '${name}' has different compressed and plain sizes`);
      return raw;
    }
    // deflate cannot expand data by more than ~1032x: refuse sizes that cannot be genuine
    if (e.size > Math.max(1024, e.compressedSize * 1032)) this.fail(`entry '${name}' declares an impossible size ${e.size}`);
    try {
      const out = inflateSync(raw, { out: new Uint8Array(e.size) });
      if (out.byteLength !== e.size) this.fail(`entry '${name}' inflates to ${out.byteLength} bytes, not ${e.size}`);
      return out;
    } catch (err) {
      if (err instanceof PeftError) throw err;
      this.fail(`entry '${name}' does not inflate (${(err as Error).message})`);
    }
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
  const entries = new Map<string, ZipEntry>();
  const decoder = new TextDecoder('utf-8');
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
    const name = decoder.decode(buf.subarray(p + 46, p + 46 + nameLen));
    // ZIP64 extended information: the 0xffffffff fields, in this order
    let q = p + 46 + nameLen;
    const extraEnd = q + extraLen;
    while (q + 4 <= extraEnd) {
      const id = view.getUint16(q, true);
      const n = view.getUint16(q + 2, true);
      if (q + 4 + n > extraEnd) fail(`entry '${name}' has a damaged extra field`);
      if (id === 0x0001) {
        let r = q + 4;
        const take = (): number => {
          if (r + 8 > q + 4 + n) fail(`entry '${name}' has a short ZIP64 field`);
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
    if (flags & 1) fail(`entry '${name}' is encrypted`);
    if (method !== 0 && method !== 8) fail(`entry '${name}' uses compression method ${method} (only stored and deflate are read)`);
    if (localHeaderOffset + compressedSize > len) fail(`entry '${name}' lies outside the file (truncated?)`);
    entries.set(name, { name, method, compressedSize, size, localHeaderOffset });
    p = next;
  }
  return new ZipArchive(source, buf, entries);
}
