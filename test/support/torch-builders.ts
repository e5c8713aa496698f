// Builders of torch.save-like files for the hostile-input tests: a pickle
// writer (the opcodes torch.save emits, and any other on demand) and a zip
// writer that can lie (names as raw bytes, sizes, offsets, CRCs, ZIP64).
import { crc32, deflateRawSync } from 'node:zlib';

const enc = new TextEncoder();
export type Part = number[] | Uint8Array | string;

export function bytes(...parts: Part[]): Uint8Array {
  const arrs = parts.map((p) => (typeof p === 'string' ? enc.encode(p) : p instanceof Uint8Array ? p : Uint8Array.from(p)));
  const out = new Uint8Array(arrs.reduce((n, a) => n + a.length, 0));
  let at = 0;
  for (const a of arrs) {
    out.set(a, at);
    at += a.length;
  }
  return out;
}

export const u16 = (n: number) => [n & 255, (n >> 8) & 255];
export const u32 = (n: number) => [n & 255, (n >>> 8) & 255, (n >>> 16) & 255, (n >>> 24) & 255];
export const u64 = (n: bigint) => Array.from({ length: 8 }, (_, i) => Number((n >> BigInt(8 * i)) & 255n));

// --- pickle (protocol 2, as torch.save writes it)
export const str = (s: string) => bytes([0x58, ...u32(enc.encode(s).length)], s);
export const int = (n: number) => (n >= 0 && n < 256 ? bytes([0x4b, n]) : n >= 0 && n < 65536 ? bytes([0x4d, ...u16(n)]) : bytes([0x4a, ...u32(n)]));
export const glob = (mod: string, name: string) => bytes('c', `${mod}\n${name}\n`);
export const tuple = (...xs: Part[]) => bytes('(', ...xs, 't');
export const MARK = '(';

export function tensorPkl(key: string, type: string, numel: number, offset: number, size: number[], stride: number[]): Uint8Array {
  const pid = bytes(tuple(str('storage'), glob('torch', type), str(key), str('cpu'), int(numel)), 'Q');
  return bytes(
    glob('torch._utils', '_rebuild_tensor_v2'),
    tuple(pid, int(offset), tuple(...size.map(int)), tuple(...stride.map(int)), [0x89], glob('collections', 'OrderedDict'), ')', 'R'),
    'R',
  );
}

export function dictPkl(entries: [string, Uint8Array][], ordered = false): Uint8Array {
  const open = ordered ? bytes(glob('collections', 'OrderedDict'), ')', 'R') : bytes('}');
  return bytes([0x80, 2], open, MARK, ...entries.flatMap(([k, v]) => [str(k), v]), 'u', '.');
}

export const f32 = (...v: number[]) => new Uint8Array(Float32Array.from(v).buffer);
export const i64 = (...v: bigint[]) => new Uint8Array(BigInt64Array.from(v).buffer);

// --- zip
export interface ZipItem {
  name: string | Uint8Array;
  data: Uint8Array;
  /** 0 stored (default) or 8 deflate. */
  method?: 0 | 8;
  /** Override what the directory declares. */
  crc?: number;
  size?: number;
  compressedSize?: number;
  localOffset?: number;
  flags?: number;
}

export interface ZipOptions {
  /** Override the entry count in the end record. */
  count?: number;
  cdOffset?: number;
  cdSize?: number;
  /** Write a ZIP64 end record and locator (with the given values) and 0xffff.. in the classic one. */
  zip64?: { count?: bigint; cdSize?: bigint; cdOffset?: bigint };
}

/** A zip archive written by hand, so that every field can lie. */
export function zip(items: ZipItem[], options: ZipOptions = {}): Uint8Array {
  const locals: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const it of items) {
    const name = typeof it.name === 'string' ? enc.encode(it.name) : it.name;
    const method = it.method ?? 0;
    const body = method === 8 ? new Uint8Array(deflateRawSync(it.data)) : it.data;
    const crc = it.crc ?? crc32(it.data);
    const size = it.size ?? it.data.length;
    const csize = it.compressedSize ?? body.length;
    const flags = it.flags ?? (typeof it.name === 'string' ? 0x800 : 0);
    const local = bytes([0x50, 0x4b, 0x03, 0x04], u16(20), u16(flags), u16(method), u16(0), u16(0), u32(crc), u32(csize), u32(size), u16(name.length), u16(0), name, body);
    central.push(
      bytes([0x50, 0x4b, 0x01, 0x02], u16(20), u16(20), u16(flags), u16(method), u16(0), u16(0), u32(crc), u32(csize), u32(size), u16(name.length), u16(0), u16(0), u16(0), u16(0), u32(0), u32(it.localOffset ?? offset), name),
    );
    locals.push(local);
    offset += local.length;
  }
  const cd = bytes(...central);
  const cdOffset = options.cdOffset ?? offset;
  const cdSize = options.cdSize ?? cd.length;
  const count = options.count ?? items.length;
  const parts: Uint8Array[] = [...locals, cd];
  if (options.zip64) {
    const z64At = offset + cd.length;
    const z = options.zip64;
    parts.push(
      bytes([0x50, 0x4b, 0x06, 0x06], u64(44n), u16(45), u16(45), u32(0), u32(0), u64(z.count ?? BigInt(count)), u64(z.count ?? BigInt(count)), u64(z.cdSize ?? BigInt(cdSize)), u64(z.cdOffset ?? BigInt(cdOffset))),
      bytes([0x50, 0x4b, 0x06, 0x07], u32(0), u64(BigInt(z64At)), u32(1)),
      bytes([0x50, 0x4b, 0x05, 0x06], u16(0), u16(0), u16(0xffff), u16(0xffff), u32(0xffffffff), u32(0xffffffff), u16(0)),
    );
  } else {
    parts.push(bytes([0x50, 0x4b, 0x05, 0x06], u16(0), u16(0), u16(count & 0xffff), u16(count & 0xffff), u32(cdSize), u32(cdOffset), u16(0)));
  }
  return bytes(...parts);
}

/** A torch.save-like archive: `<top>/data.pkl`, `<top>/data/<key>`, `<top>/version`. */
export function ptArchive(pkl: Uint8Array, storages: Record<string, Uint8Array> = {}, options: { top?: string; method?: 0 | 8 } = {}): Uint8Array {
  const top = options.top ?? 'archive';
  const items: ZipItem[] = [{ name: `${top}/data.pkl`, data: pkl, method: options.method }];
  for (const [k, v] of Object.entries(storages)) items.push({ name: `${top}/data/${k}`, data: v, method: options.method });
  items.push({ name: `${top}/version`, data: enc.encode('3\n') }, { name: `${top}/byteorder`, data: enc.encode('little') });
  return zip(items);
}
