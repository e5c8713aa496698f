// PyTorch checkpoints (`torch.save`, zip format since PyTorch 1.6) read without
// PyTorch and without running code. The archive holds, under one top folder,
// `data.pkl` (a pickle of the state dict whose tensors are
// `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)` calls
// and whose storages are persistent ids `('storage', torch.FloatStorage, key,
// location, numel)`), one raw little-endian file `data/<key>` per storage,
// and `version`. The unpickler accepts only the globals a state dict needs.
import * as tf from '@tensorflow/tfjs';
import { extname } from 'node:path';
import { PeftError } from '../errors.js';
import { briefValue } from '../text.js';
import { readRegularFile } from './read-regular-file.js';
import { parseSafetensors, toFloat32, type RawTensor, type SafeDtype } from './safetensors.js';
import { PickleDict, PickleFunction, PickleTuple, describePickled, unpickle } from './torch-pickle.js';
import { openZip, type ZipArchive } from './torch-zip.js';

/** Storage classes torch.save names, and the dtype each stores. */
export const TORCH_STORAGE_DTYPES: Readonly<Record<string, SafeDtype>> = {
  FloatStorage: 'F32',
  DoubleStorage: 'F64',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  LongStorage: 'I64',
  IntStorage: 'I32',
  ShortStorage: 'I16',
  CharStorage: 'I8',
  ByteStorage: 'U8',
  BoolStorage: 'BOOL',
};

const ITEM_BYTES: Record<SafeDtype, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

const TORCH_DTYPE_NAMES: Record<SafeDtype, string> = {
  F64: 'torch.float64',
  F32: 'torch.float32',
  F16: 'torch.float16',
  BF16: 'torch.bfloat16',
  I64: 'torch.int64',
  I32: 'torch.int32',
  I16: 'torch.int16',
  I8: 'torch.int8',
  U8: 'torch.uint8',
  BOOL: 'torch.bool',
};

/** PyTorch's name for a dtype (`I64` → `torch.int64`). */
export function torchDtypeName(dtype: SafeDtype): string {
  return TORCH_DTYPE_NAMES[dtype];
}

class StorageType {
  constructor(
    readonly name: string,
    readonly dtype: SafeDtype,
  ) {}
}

class Storage {
  constructor(
    readonly key: string,
    readonly dtype: SafeDtype,
    readonly bytes: Uint8Array,
    readonly numel: number,
  ) {}
}

/** A tensor the unpickler rebuilt: a RawTensor (little-endian bytes, dtype, shape). */
class TorchTensor implements RawTensor {
  constructor(
    readonly dtype: SafeDtype,
    readonly shape: number[],
    readonly bytes: Uint8Array,
  ) {}
}

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v);
}

/**
 * Parses a torch.save zip held in `buf`. Returns the state dict's tensors by
 * key (a dict wrapped under a top-level `model` or `state_dict` key is
 * unwrapped). `source` names the file in every error.
 */
export function parseTorchCheckpoint(buf: Uint8Array, source = 'checkpoint'): Map<string, RawTensor> {
  if (buf.byteLength >= 2 && buf[0] === 0x80 && buf[1]! <= 5) {
    throw new PeftError(
      `${source}: legacy (pre-zip) torch.save format is not supported; re-save it with PyTorch >= 1.6 (torch.save writes zip by default)`,
    );
  }
  if (buf.byteLength < 4 || buf[0] !== 0x50 || buf[1] !== 0x4b) {
    throw new PeftError(`${source}: not a torch.save checkpoint (not a zip archive)`);
  }
  const zip = openZip(buf, source);
  const pkls = [...zip.entries.keys()].filter((n) => n === 'data.pkl' || /^[^/]+\/data\.pkl$/.test(n));
  if (pkls.length === 0) throw new PeftError(`${source}: zip archive has no data.pkl (not a torch.save checkpoint)`);
  if (pkls.length > 1) throw new PeftError(`${source}: zip archive has several data.pkl entries (${pkls.join(', ')})`);
  const prefix = pkls[0]!.slice(0, -'data.pkl'.length);
  if (zip.has(`${prefix}byteorder`)) {
    const order = new TextDecoder().decode(zip.read(`${prefix}byteorder`)).trim();
    if (order !== 'little') throw new PeftError(`${source}: storages are ${order}-endian; only little-endian checkpoints are read`);
  }
  const top = unpickle(zip.read(pkls[0]!), torchHooks(zip, prefix, source, buf.byteLength), `${source}: data.pkl`);
  return stateDictOf(top, source);
}

/**
 * Limits of a torch.save checkpoint, beyond the file's own size (4 GiB,
 * read-regular-file.ts). A tensor is a view of a storage: many views of one
 * storage cost nothing in the file but each becomes a tensor of its own when
 * loaded, so the views' bytes are budgeted for the whole checkpoint.
 */
export const TORCH_CHECKPOINT_LIMITS = {
  /** Most tensors one checkpoint may hold (SAM ViT-H has about 600). */
  maxTensors: 100_000,
  /** All tensors together may span at most this many times the file's bytes (each storage viewed twice over; strided copies included)... */
  viewBytesPerFileByte: 2,
  /** ...or this many bytes, for a small file. */
  minViewBytes: 1 << 20,
} as const;

/** The allowed globals and the storage loader of a torch.save archive. */
function torchHooks(zip: ZipArchive, prefix: string, source: string, fileBytes: number) {
  const entryBytes = new Map<string, Uint8Array>();
  // every view's bytes, contiguous or gathered into a copy, count against one budget for the whole checkpoint
  const viewBudget = Math.max(TORCH_CHECKPOINT_LIMITS.viewBytesPerFileByte * fileBytes, TORCH_CHECKPOINT_LIMITS.minViewBytes);
  let viewed = 0;
  let tensors = 0;
  const fail = (what: string): never => {
    throw new PeftError(`${source}: data.pkl: ${what}`);
  };

  const rebuildTensor = new PickleFunction('torch._utils._rebuild_tensor_v2', (args) => {
    if (args.length < 6 || args.length > 7) fail(`_rebuild_tensor_v2 takes 6 or 7 arguments, got ${args.length}`);
    const [storage, offset, size, stride] = args;
    if (!(storage instanceof Storage)) return fail(`_rebuild_tensor_v2 on a ${describePickled(storage)}, not a storage`);
    if (!isInt(offset) || offset < 0) return fail(`tensor offset ${String(offset)} is not a non-negative integer`);
    if (!(size instanceof PickleTuple) || !(stride instanceof PickleTuple) || size.items.length !== stride.items.length) {
      return fail(`tensor size and stride must be tuples of one length`);
    }
    const shape = size.items as number[];
    const strides = stride.items as number[];
    if (!shape.every((d) => isInt(d) && d >= 0) || !strides.every((s) => isInt(s) && s >= 0)) {
      return fail(`tensor size (${shape.join(', ')}) or stride (${strides.join(', ')}) is not non-negative integers`);
    }
    const item = ITEM_BYTES[storage.dtype];
    let numel = 1;
    for (const d of shape) {
      numel *= d;
      if (numel * item > fileBytes) fail(`tensor of size (${shape.join(', ')}) is larger than the file`);
    }
    if (++tensors > TORCH_CHECKPOINT_LIMITS.maxTensors) fail(`more than ${TORCH_CHECKPOINT_LIMITS.maxTensors} tensors, the limit of a checkpoint`);
    // counted before the view is made: 4,500 views of one 1 MB storage would become 4.5 GB of tensors
    viewed += numel * item;
    if (viewed > viewBudget) {
      fail(`its tensors would take ${viewed} bytes once loaded (views of the same storages), more than ${TORCH_CHECKPOINT_LIMITS.viewBytesPerFileByte} x the file's ${fileBytes} bytes`);
    }
    if (numel === 0) return new TorchTensor(storage.dtype, shape, new Uint8Array(0));
    let last = offset;
    shape.forEach((d, i) => (last += (d - 1) * strides[i]!));
    if (last >= storage.numel) {
      fail(`tensor of size (${shape.join(', ')}) at offset ${offset} reads past storage '${storage.key}' (${storage.numel} elements)`);
    }
    let contiguous = true;
    let expect = 1;
    for (let i = shape.length - 1; i >= 0; i--) {
      if (shape[i]! !== 1 && strides[i]! !== expect) contiguous = false;
      expect *= shape[i]!;
    }
    if (contiguous) return new TorchTensor(storage.dtype, shape, storage.bytes.subarray(offset * item, (offset + numel) * item));
    // gather a strided view into a new contiguous buffer (its bytes were counted above)
    const out = new Uint8Array(numel * item);
    const index = new Array<number>(shape.length).fill(0);
    let src = offset;
    for (let n = 0; n < numel; n++) {
      out.set(storage.bytes.subarray(src * item, (src + 1) * item), n * item);
      for (let i = shape.length - 1; i >= 0; i--) {
        index[i]!++;
        src += strides[i]!;
        if (index[i]! < shape[i]!) break;
        src -= strides[i]! * shape[i]!;
        index[i] = 0;
      }
    }
    return new TorchTensor(storage.dtype, shape, out);
  });

  const rebuildParameter = new PickleFunction('torch._utils._rebuild_parameter', (args) => {
    if (args.length !== 3 || !(args[0] instanceof TorchTensor)) fail('_rebuild_parameter expects (tensor, requires_grad, hooks)');
    return args[0];
  });

  const orderedDict = new PickleFunction('collections.OrderedDict', (args) => {
    const d = new PickleDict(true);
    if (args.length === 0) return d;
    const items = args[0];
    const pairs = items instanceof PickleTuple ? items.items : items;
    if (args.length !== 1 || !Array.isArray(pairs)) return fail('OrderedDict takes at most one list of pairs');
    for (const pair of pairs) {
      const kv = pair instanceof PickleTuple ? pair.items : pair;
      if (!Array.isArray(kv) || kv.length !== 2) fail('OrderedDict pair is not a (key, value) pair');
      d.set((kv as unknown[])[0], (kv as unknown[])[1]);
    }
    return d;
  });

  return {
    findClass(module: string, name: string): unknown {
      if (module === 'collections' && name === 'OrderedDict') return orderedDict;
      if (module === 'torch._utils' && name === '_rebuild_tensor_v2') return rebuildTensor;
      if (module === 'torch._utils' && name === '_rebuild_parameter') return rebuildParameter;
      if (module === 'torch' && Object.hasOwn(TORCH_STORAGE_DTYPES, name)) return new StorageType(name, TORCH_STORAGE_DTYPES[name]!);
      throw new PeftError(`${source}: data.pkl: global '${briefValue(`${String(module)}.${String(name)}`, 120)}' is not allowed in a checkpoint (unpickling never runs code)`);
    },
    persistentLoad(pid: unknown): unknown {
      const items = pid instanceof PickleTuple ? pid.items : undefined;
      if (!items || items.length !== 5 || items[0] !== 'storage') return fail(`unsupported persistent id (${describePickled(pid)})`);
      const [, type, key, , numel] = items;
      if (!(type instanceof StorageType)) return fail(`storage type is a ${describePickled(type)}, not a torch storage class`);
      if (typeof key !== 'string') return fail('storage key is not a string');
      if (!isInt(numel) || numel < 0) return fail(`storage '${briefValue(key)}' has an invalid size ${String(numel)}`);
      let bytes = entryBytes.get(key);
      if (!bytes) {
        const name = `${prefix}data/${key}`;
        if (!zip.has(name)) fail(`storage '${briefValue(key)}' has no entry ${briefValue(name)} in the archive`);
        bytes = zip.read(name);
        entryBytes.set(key, bytes);
      }
      const need = numel * ITEM_BYTES[type.dtype];
      if (need > bytes.byteLength) {
        fail(`storage '${briefValue(key)}' declares ${numel} ${type.name} elements (${need} bytes) but holds ${bytes.byteLength} bytes`);
      }
      return new Storage(key, type.dtype, bytes, numel);
    },
  };
}

function stateDictOf(top: unknown, source: string): Map<string, RawTensor> {
  if (!(top instanceof PickleDict)) throw new PeftError(`${source}: data.pkl holds a ${describePickled(top)}, not a state dict`);
  let dict: PickleDict = top;
  for (const wrapper of ['model', 'state_dict']) {
    const inner = top.get(wrapper);
    if (inner instanceof PickleDict) {
      dict = inner;
      break;
    }
  }
  const out = new Map<string, RawTensor>();
  for (const [key, value] of dict) {
    if (typeof key !== 'string') throw new PeftError(`${source}: state dict has a non-string key (${describePickled(key)})`);
    if (!(value instanceof TorchTensor)) throw new PeftError(`${source}: state dict entry '${briefValue(key, 120)}' is a ${describePickled(value)}, not a tensor`);
    out.set(key, value);
  }
  if (out.size === 0) throw new PeftError(`${source}: data.pkl holds no tensors (not a state dict)`);
  return out;
}

/** The file's bytes: a regular file only, within the weights' size limit (read-regular-file.ts). */
function readBytes(path: string): Uint8Array {
  const buf = readRegularFile(path, 'weights');
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** Reads a torch.save (zip) checkpoint file. */
export function readTorchCheckpoint(path: string): Map<string, RawTensor> {
  return parseTorchCheckpoint(readBytes(path), path);
}

/**
 * Reads a checkpoint's tensors by key, whatever the format: `.safetensors`, or
 * a torch.save zip (`.pt`, `.pth`, `.bin`, ...; recognised by content).
 */
export function loadCheckpoint(path: string): Map<string, RawTensor> {
  const buf = readBytes(path);
  const ext = extname(path).toLowerCase();
  if (ext === '.safetensors') return parseSafetensors(buf, path).tensors;
  if (buf.byteLength >= 2 && buf[0] === 0x50 && buf[1] === 0x4b) return parseTorchCheckpoint(buf, path);
  if (buf.byteLength >= 2 && buf[0] === 0x80) return parseTorchCheckpoint(buf, path);
  if (buf.byteLength >= 9 && buf[8] === 0x7b && !['.pt', '.pth', '.bin', '.ckpt'].includes(ext)) return parseSafetensors(buf, path).tensors;
  throw new PeftError(
    `${path}: not a checkpoint (neither a torch.save zip nor safetensors${buf.byteLength === 0 ? '; the file is empty' : ''})`,
  );
}

/**
 * A tf tensor of a checkpoint entry: floating point becomes float32, integers
 * become int32 exactly (an int64 value outside int32 is an error), bool stays bool.
 */
export function checkpointTensor(raw: RawTensor, key = 'tensor'): tf.Tensor {
  const n = raw.shape.reduce((a, b) => a * b, 1);
  switch (raw.dtype) {
    case 'F32':
    case 'F64':
    case 'F16':
    case 'BF16':
      return tf.tensor(toFloat32(raw), raw.shape, 'float32');
    case 'BOOL':
      return tf.tensor(Uint8Array.from(raw.bytes.subarray(0, n), (b) => (b ? 1 : 0)), raw.shape, 'bool');
    case 'I64': {
      const dv = new DataView(raw.bytes.buffer, raw.bytes.byteOffset, raw.bytes.byteLength);
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const v = dv.getBigInt64(i * 8, true);
        if (v > 2147483647n || v < -2147483648n) throw new PeftError(`${key}: int64 value ${v} does not fit int32`);
        out[i] = Number(v);
      }
      return tf.tensor(out, raw.shape, 'int32');
    }
    default:
      // I32, I16, I8, U8: read as integers, exactly
      return tf.tensor(intValues(raw, n), raw.shape, 'int32');
  }
}

function intValues(raw: RawTensor, n: number): Int32Array {
  const dv = new DataView(raw.bytes.buffer, raw.bytes.byteOffset, raw.bytes.byteLength);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    if (raw.dtype === 'I32') out[i] = dv.getInt32(i * 4, true);
    else if (raw.dtype === 'I16') out[i] = dv.getInt16(i * 2, true);
    else if (raw.dtype === 'I8') out[i] = dv.getInt8(i);
    else out[i] = dv.getUint8(i);
  }
  return out;
}

export interface CheckpointTensorOptions {
  /** Keep only keys starting with this prefix, and strip it (`image_encoder.`). */
  prefix?: string;
  /** Names the source in errors. */
  source?: string;
}

/** tf tensors of checkpoint entries (the caller disposes them). */
export function checkpointToTensors(entries: Map<string, RawTensor>, options: CheckpointTensorOptions = {}): Map<string, tf.Tensor> {
  const prefix = options.prefix ?? '';
  const out = new Map<string, tf.Tensor>();
  try {
    for (const [key, raw] of entries) {
      if (!key.startsWith(prefix)) continue;
      out.set(key.slice(prefix.length), checkpointTensor(raw, options.source ? `${options.source}: ${key}` : key));
    }
  } catch (err) {
    for (const t of out.values()) t.dispose();
    throw err;
  }
  if (prefix && out.size === 0) {
    throw new PeftError(`${options.source ?? 'checkpoint'}: no key starts with '${prefix}'`);
  }
  return out;
}
