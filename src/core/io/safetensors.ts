// safetensors: an 8-byte little-endian header length, a JSON header mapping
// names to {dtype, shape, data_offsets}, then the raw little-endian data.
// The reader validates everything before touching data and names the file
// and the key in every error.
import * as tf from '@tensorflow/tfjs';
import { PeftError } from '../errors.js';
import { briefValue } from '../text.js';
import { readRegularFile } from './read-regular-file.js';
import { writeFileAtomic } from './atomic.js';

export type SafeDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

const DTYPE_BYTES: Record<SafeDtype, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

/** Headers larger than this are refused (the format's own reference limit is 100 MB). */
export const MAX_HEADER_BYTES = 100_000_000;
/** Most tensors one file may hold (as torch.save checkpoints: TORCH_CHECKPOINT_LIMITS). */
export const MAX_TENSORS = 100_000;

export interface RawTensor {
  dtype: SafeDtype;
  shape: number[];
  /** The tensor's bytes, little-endian, a view into the file's buffer. */
  bytes: Uint8Array;
}

export interface SafetensorsFile {
  tensors: Map<string, RawTensor>;
  metadata: Record<string, string>;
}

function fail(source: string, what: string): never {
  throw new PeftError(`${source}: not a valid safetensors file: ${what}`);
}

/** A value or a name for a message: escaped and cut short (a hostile file can hold megabytes in one field; core/text.ts). */
const brief = (v: unknown, max = 60): string => briefValue(v, max);

/** Parses a safetensors buffer. `source` names it in errors. */
export function parseSafetensors(buf: Uint8Array, source = 'safetensors'): SafetensorsFile {
  if (buf.byteLength < 8) fail(source, `${buf.byteLength} bytes is shorter than the 8-byte header length`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const headerLen = view.getBigUint64(0, true);
  if (headerLen > BigInt(Math.min(MAX_HEADER_BYTES, buf.byteLength - 8))) {
    fail(source, `header length ${headerLen} exceeds the file (${buf.byteLength} bytes)`);
  }
  const n = Number(headerLen);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(8, 8 + n)));
  } catch (err) {
    fail(source, `header is not UTF-8 JSON (${(err as Error).message.split('\n')[0]})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail(source, 'header is not a JSON object');
  // offsets may not overlap (below), so the tensors' bytes together never exceed the file's
  const count = Object.keys(header as object).length;
  if (count > MAX_TENSORS + 1) fail(source, `${count} entries, more than the limit of ${MAX_TENSORS} tensors`);
  const dataStart = 8 + n;
  const dataLen = buf.byteLength - dataStart;
  const tensors = new Map<string, RawTensor>();
  let metadata: Record<string, string> = {};
  const spans: [number, number, string][] = [];
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    const key = brief(name);
    if (name === '__metadata__') {
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) fail(source, '__metadata__ is not an object');
      for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(source, `__metadata__.${brief(k)} is not a string`);
      }
      metadata = entry as Record<string, string>;
      continue;
    }
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== 'object' || e === null) fail(source, `'${key}' is not an object`);
    if (typeof e.dtype !== 'string' || !Object.hasOwn(DTYPE_BYTES, e.dtype)) fail(source, `'${key}' has unsupported dtype ${brief(e.dtype)}`);
    const dtype = e.dtype as SafeDtype;
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(source, `'${key}' has an invalid shape ${brief(e.shape)}`);
    }
    const shape = e.shape as number[];
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      fail(source, `'${key}' has invalid data_offsets ${brief(offs)}`);
    }
    const [begin, end] = offs as [number, number];
    if (end < begin || end > dataLen) fail(source, `'${key}' data_offsets [${begin}, ${end}] lie outside the data (${dataLen} bytes)`);
    let count = shape.includes(0) ? 0 : 1;
    for (const d of count === 0 ? [] : shape) {
      count *= d;
      if (count * DTYPE_BYTES[dtype] > dataLen) fail(source, `'${key}' shape ${brief(shape)} needs more bytes than the file holds`);
    }
    if (count * DTYPE_BYTES[dtype] !== end - begin) {
      fail(source, `'${key}' is ${dtype} ${brief(shape)} (${count * DTYPE_BYTES[dtype]} bytes) but its offsets span ${end - begin} bytes`);
    }
    spans.push([begin, end, key]);
    tensors.set(name, { dtype, shape, bytes: buf.subarray(dataStart + begin, dataStart + end) });
  }
  spans.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  for (let i = 1; i < spans.length; i++) {
    const prev = spans[i - 1]!;
    const cur = spans[i]!;
    if (cur[0] < prev[1]) fail(source, `'${cur[2]}' overlaps '${prev[2]}'`);
  }
  return { tensors, metadata };
}

export function readSafetensors(path: string): SafetensorsFile {
  const buf = readRegularFile(path, 'weights');
  return parseSafetensors(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), path);
}

function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/** The tensor's values as float32 (exact for F32, F16, BF16; integers converted). */
export function toFloat32(t: RawTensor): Float32Array {
  const n = t.shape.reduce((a, b) => a * b, 1);
  const dv = new DataView(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength);
  const out = new Float32Array(n);
  switch (t.dtype) {
    case 'F32':
      for (let i = 0; i < n; i++) out[i] = dv.getFloat32(i * 4, true);
      break;
    case 'F64':
      for (let i = 0; i < n; i++) out[i] = dv.getFloat64(i * 8, true);
      break;
    case 'F16':
      for (let i = 0; i < n; i++) out[i] = f16ToF32(dv.getUint16(i * 2, true));
      break;
    case 'BF16': {
      // bfloat16 is the top half of a float32
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) bits[i] = dv.getUint16(i * 2, true) << 16;
      break;
    }
    case 'I64':
      for (let i = 0; i < n; i++) out[i] = Number(dv.getBigInt64(i * 8, true));
      break;
    case 'I32':
      for (let i = 0; i < n; i++) out[i] = dv.getInt32(i * 4, true);
      break;
    case 'I16':
      for (let i = 0; i < n; i++) out[i] = dv.getInt16(i * 2, true);
      break;
    case 'I8':
      for (let i = 0; i < n; i++) out[i] = dv.getInt8(i);
      break;
    case 'U8':
    case 'BOOL':
      for (let i = 0; i < n; i++) out[i] = dv.getUint8(i);
      break;
  }
  return out;
}

/** A tf tensor of the raw tensor: floats become float32, integers int32 (range-checked). */
export function toTensor(t: RawTensor, key = 'tensor'): tf.Tensor {
  const values = toFloat32(t);
  if (t.dtype.startsWith('F') || t.dtype === 'BF16') return tf.tensor(values, t.shape, 'float32');
  if (t.dtype === 'BOOL') return tf.tensor(values, t.shape, 'bool');
  for (const v of values) {
    if (!Number.isInteger(v) || Math.abs(v) > 2 ** 31 - 1) throw new PeftError(`${key}: integer value ${v} does not fit int32`);
  }
  return tf.tensor(Int32Array.from(values), t.shape, 'int32');
}

/** Loads every tensor of a safetensors file as tf tensors (the caller disposes them). */
export function loadTensors(path: string, filter: (key: string) => boolean = () => true): Map<string, tf.Tensor> {
  const file = readSafetensors(path);
  const out = new Map<string, tf.Tensor>();
  try {
    for (const [key, raw] of file.tensors) if (filter(key)) out.set(key, toTensor(raw, `${path}: ${brief(key)}`));
  } catch (err) {
    tf.dispose([...out.values()]);
    throw err;
  }
  return out;
}

export interface TensorToWrite {
  dtype: 'F32' | 'I32' | 'I64';
  shape: number[];
  data: Float32Array | Int32Array | BigInt64Array;
}

/** Serialises tensors (sorted by name, 8-byte aligned data start) into a safetensors buffer. */
export function serializeSafetensors(entries: Map<string, TensorToWrite>, metadata: Record<string, string> = {}): Uint8Array {
  const names = [...entries.keys()].sort();
  // no prototype: a tensor named '__proto__' must be a key like any other, not a prototype assignment
  const header: Record<string, unknown> = Object.create(null);
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const name of names) {
    const e = entries.get(name)!;
    const count = e.shape.reduce((a, b) => a * b, 1);
    if (count !== e.data.length) throw new Error(`${name}: shape [${e.shape}] does not match ${e.data.length} values`);
    const bytes = e.data.byteLength;
    header[name] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let pos = 8 + headerBytes.length;
  for (const name of names) {
    const d = entries.get(name)!.data;
    out.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), pos);
    pos += d.byteLength;
  }
  return out;
}

/** Reads tf tensors' values into entries for `serializeSafetensors`. */
export async function tensorsToEntries(tensors: Map<string, tf.Tensor>): Promise<Map<string, TensorToWrite>> {
  const out = new Map<string, TensorToWrite>();
  for (const [name, t] of tensors) {
    if (t.dtype === 'float32') out.set(name, { dtype: 'F32', shape: t.shape, data: (await t.data()) as Float32Array });
    else if (t.dtype === 'int32') out.set(name, { dtype: 'I32', shape: t.shape, data: (await t.data()) as Int32Array });
    else throw new Error(`${name}: cannot save dtype ${t.dtype}`);
  }
  return out;
}

/** Writes tf tensors to a safetensors file atomically. */
export async function saveTensors(path: string, tensors: Map<string, tf.Tensor>, metadata: Record<string, string> = {}): Promise<void> {
  writeFileAtomic(path, serializeSafetensors(await tensorsToEntries(tensors), metadata));
}
