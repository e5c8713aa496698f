import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { zipSync } from 'fflate';
import * as tf from '@tensorflow/tfjs';
import { PeftError } from '../errors.js';
import { readSafetensors, serializeSafetensors } from './safetensors.js';
import {
  checkpointTensor,
  checkpointToTensors,
  loadCheckpoint,
  parseTorchCheckpoint,
  readTorchCheckpoint,
  torchDtypeName,
} from './torch-checkpoint.js';
import { FIXTURES } from '../../../test/support/fixtures.js';


const dir = mkdtempSync(join(tmpdir(), 'peftjs-pt-'));

// --- a tiny pickle writer: just enough opcodes to build hostile and unusual files
const enc = new TextEncoder();
type Part = number[] | Uint8Array | string;
function bytes(...parts: Part[]): Uint8Array {
  const arrs = parts.map((p) => (typeof p === 'string' ? enc.encode(p) : p instanceof Uint8Array ? p : Uint8Array.from(p)));
  const out = new Uint8Array(arrs.reduce((n, a) => n + a.length, 0));
  let at = 0;
  for (const a of arrs) {
    out.set(a, at);
    at += a.length;
  }
  return out;
}
const u32 = (n: number) => [n & 255, (n >> 8) & 255, (n >> 16) & 255, (n >>> 24) & 255];
const str = (s: string) => bytes([0x58, ...u32(enc.encode(s).length)], s);
const int = (n: number) => (n < 256 ? bytes([0x4b, n]) : bytes([0x4a, ...u32(n)]));
const glob = (mod: string, name: string) => bytes('c', `${mod}\n${name}\n`);
const tuple = (...xs: Part[]) => bytes('(', ...xs, 't');
const MARK = '(';
function tensor(key: string, type: string, numel: number, offset: number, size: number[], stride: number[]): Uint8Array {
  const pid = bytes(tuple(str('storage'), glob('torch', type), str(key), str('cpu'), int(numel)), 'Q');
  return bytes(
    glob('torch._utils', '_rebuild_tensor_v2'),
    tuple(pid, int(offset), tuple(...size.map(int)), tuple(...stride.map(int)), [0x89], glob('collections', 'OrderedDict'), ')', 'R'),
    'R',
  );
}
function dict(entries: [string, Uint8Array][]): Uint8Array {
  return bytes([0x80, 2], '}', MARK, ...entries.flatMap(([k, v]) => [str(k), v]), 'u', '.');
}
function ptFile(name: string, pkl: Uint8Array, storages: Record<string, Uint8Array> = {}, top = 'archive'): string {
  const files: Record<string, [Uint8Array, { level: 0 }]> = { [`${top}/data.pkl`]: [pkl, { level: 0 }] };
  for (const [k, v] of Object.entries(storages)) files[`${top}/data/${k}`] = [v, { level: 0 }];
  files[`${top}/version`] = [enc.encode('3\n'), { level: 0 }];
  const path = join(dir, name);
  writeFileSync(path, zipSync(files));
  return path;
}
const f32 = (...v: number[]) => new Uint8Array(Float32Array.from(v).buffer);
const i64 = (...v: bigint[]) => new Uint8Array(BigInt64Array.from(v).buffer);

function peftError(f: () => unknown): PeftError {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(PeftError);
    return err as PeftError;
  }
  throw new Error('expected a PeftError');
}

describe('torch.save checkpoint reader', () => {
  it('reads the fixture exactly as its safetensors twin, with the integer entries', () => {
    const json = JSON.parse(readFileSync(join(FIXTURES, 'mobile_sam_tiny.json'), 'utf8'));
    const pt = readTorchCheckpoint(join(FIXTURES, 'mobile_sam_tiny.pt'));
    const twin = readSafetensors(join(FIXTURES, json.config.twin)).tensors;
    for (const [key, t] of twin) {
      const got = pt.get(key);
      expect(got, key).toBeDefined();
      expect(got!.dtype).toBe(t.dtype);
      expect(got!.shape).toEqual(t.shape);
      expect(Buffer.compare(Buffer.from(got!.bytes), Buffer.from(t.bytes)), key).toBe(0);
    }
    const ints = json.config.non_float_entries as Record<string, [string, number[]]>;
    for (const [key, [dtype, shape]] of Object.entries(ints)) {
      expect(torchDtypeName(pt.get(key)!.dtype)).toBe(dtype);
      expect(pt.get(key)!.shape).toEqual(shape);
    }
    expect(pt.size).toBe(twin.size + Object.keys(ints).length);
  });

  it('loadCheckpoint dispatches on the file: safetensors and torch zip give the same floats', () => {
    const a = loadCheckpoint(join(FIXTURES, 'mobile_sam_tiny.pt'));
    const b = loadCheckpoint(join(FIXTURES, 'mobile_sam_tiny.safetensors'));
    for (const [k, t] of b) expect(Buffer.compare(Buffer.from(a.get(k)!.bytes), Buffer.from(t.bytes))).toBe(0);
    const tensors = checkpointToTensors(a, { prefix: 'image_encoder.' });
    expect(tensors.get('patch_embed.seq.0.bn.num_batches_tracked')!.dtype).toBe('int32');
    expect(tensors.get('neck.0.weight')!.shape).toEqual([256, 320, 1, 1]);
    for (const t of tensors.values()) t.dispose();
  });

  it('shares storages between tensors and gathers non-contiguous strides', () => {
    // storage '0' holds a 2x3 matrix; 'w' is it, 't' its transpose (a strided view), 'row' a slice at an offset
    const pkl = dict([
      ['w', tensor('0', 'FloatStorage', 6, 0, [2, 3], [3, 1])],
      ['t', tensor('0', 'FloatStorage', 6, 0, [3, 2], [1, 3])],
      ['row', tensor('0', 'FloatStorage', 6, 3, [3], [1])],
      ['n', tensor('1', 'LongStorage', 1, 0, [], [])],
    ]);
    const m = readTorchCheckpoint(ptFile('shared.pt', pkl, { '0': f32(1, 2, 3, 4, 5, 6), '1': i64(7n) }, 'weird_name'));
    expect(Array.from(new Float32Array(m.get('t')!.bytes.slice().buffer))).toEqual([1, 4, 2, 5, 3, 6]);
    expect(Array.from(new Float32Array(m.get('row')!.bytes.slice().buffer))).toEqual([4, 5, 6]);
    expect(m.get('w')!.bytes.buffer).toBe(m.get('row')!.bytes.buffer);
    const n = checkpointTensor(m.get('n')!);
    expect(n.dtype).toBe('int32');
    expect(n.shape).toEqual([]);
    expect(n.dataSync()[0]).toBe(7);
    n.dispose();
  });

  it('unwraps a state dict under "model" and accepts an OrderedDict with _metadata (BUILD)', () => {
    const inner = bytes(glob('collections', 'OrderedDict'), ')', 'R', MARK, str('a.weight'), tensor('0', 'FloatStorage', 2, 0, [2], [1]), 'u');
    const meta = bytes('}', MARK, str('_metadata'), glob('collections', 'OrderedDict'), ')', 'R', 'u', 'b');
    const pkl = bytes([0x80, 2], '}', MARK, str('model'), inner, meta, str('epoch'), int(3), 'u', '.');
    const m = readTorchCheckpoint(ptFile('wrapped.pth', pkl, { '0': f32(1, 2) }));
    expect([...m.keys()]).toEqual(['a.weight']);
  });

  it('rejects int64 values outside int32 when converting', () => {
    const m = readTorchCheckpoint(ptFile('big.pt', dict([['n', tensor('0', 'LongStorage', 1, 0, [1], [1])]]), { '0': i64(1n << 40n) }));
    expect(peftError(() => checkpointTensor(m.get('n')!, 'n')).message).toMatch(/does not fit int32/);
  });

  describe('hostile inputs give one-line PeftErrors naming the file', () => {
    const fixturePt = readFileSync(join(FIXTURES, 'mobile_sam_tiny.pt'));

    it('truncated .pt', () => {
      const path = join(dir, 'truncated.pt');
      writeFileSync(path, fixturePt.subarray(0, Math.floor(fixturePt.length / 2)));
      const e = peftError(() => loadCheckpoint(path));
      expect(e.message).toContain(path);
      expect(e.message).toMatch(/truncated/);
    });

    it('a zip without data.pkl', () => {
      const path = join(dir, 'nopkl.pt');
      writeFileSync(path, zipSync({ 'archive/version': [enc.encode('3\n'), { level: 0 }] }));
      expect(peftError(() => loadCheckpoint(path)).message).toMatch(new RegExp(`${path}.*no data\\.pkl`));
    });

    it('forbidden globals: os.system via GLOBAL, builtins.eval via STACK_GLOBAL', () => {
      const sys = ptFile('os.pt', bytes([0x80, 2], glob('os', 'system'), str('echo pwned'), [0x85], 'R', '.'));
      const e = peftError(() => loadCheckpoint(sys));
      expect(e.message).toContain(sys);
      expect(e.message).toContain("'os.system' is not allowed");
      const ev = ptFile('eval.pt', bytes([0x80, 4], [0x8c, 8], 'builtins', [0x8c, 4], 'eval', [0x93], str('1+1'), [0x85], 'R', '.'));
      expect(peftError(() => loadCheckpoint(ev)).message).toContain("'builtins.eval' is not allowed");
    });

    it('disallowed opcodes and calls', () => {
      const newobj = ptFile('newobj.pt', bytes([0x80, 2], glob('collections', 'OrderedDict'), ')', [0x81], '.'));
      expect(peftError(() => loadCheckpoint(newobj)).message).toMatch(/NEWOBJ .* not allowed/);
      const storageCall = ptFile('storcall.pt', bytes([0x80, 2], glob('torch', 'FloatStorage'), ')', 'R', '.'));
      expect(peftError(() => loadCheckpoint(storageCall)).message).toMatch(/REDUCE .* not an allowed callable/);
      const unknown = ptFile('unknown.pt', bytes([0x80, 2], [0xff], '.'));
      expect(peftError(() => loadCheckpoint(unknown)).message).toMatch(/unknown opcode 0xff/);
    });

    it('storages and tensors that claim more than the file holds', () => {
      const over = ptFile('over.pt', dict([['w', tensor('0', 'FloatStorage', 1000, 0, [1000], [1])]]), { '0': f32(1, 2) });
      expect(peftError(() => loadCheckpoint(over)).message).toMatch(/declares 1000 FloatStorage elements/);
      const past = ptFile('past.pt', dict([['w', tensor('0', 'FloatStorage', 2, 1, [2], [1])]]), { '0': f32(1, 2) });
      expect(peftError(() => loadCheckpoint(past)).message).toMatch(/reads past storage/);
      const huge = ptFile('huge.pt', dict([['w', tensor('0', 'FloatStorage', 1, 0, [100000, 100000], [0, 0])]]), { '0': f32(1) });
      expect(peftError(() => loadCheckpoint(huge)).message).toMatch(/larger than the file/);
      const missing = ptFile('missing.pt', dict([['w', tensor('7', 'FloatStorage', 1, 0, [1], [1])]]));
      expect(peftError(() => loadCheckpoint(missing)).message).toMatch(/storage '7' has no entry/);
    });

    it('a plain text file, an empty file, a pickle that is not a state dict, a legacy pickle', () => {
      const text = join(dir, 'notes.pt');
      writeFileSync(text, 'hello, this is not a checkpoint\n');
      expect(peftError(() => loadCheckpoint(text)).message).toMatch(new RegExp(`^${text}: not a checkpoint`));
      const empty = join(dir, 'empty.pth');
      writeFileSync(empty, '');
      expect(peftError(() => loadCheckpoint(empty)).message).toContain(empty);
      const list = ptFile('list.pt', bytes([0x80, 2], ']', '.'));
      expect(peftError(() => loadCheckpoint(list)).message).toMatch(/holds a list of 0, not a state dict/);
      const nums = ptFile('nums.pt', dict([['a', int(1)]]));
      expect(peftError(() => loadCheckpoint(nums)).message).toMatch(/entry 'a' is a number, not a tensor/);
      const legacy = join(dir, 'legacy.pt');
      writeFileSync(legacy, bytes([0x80, 2, 0x8a, 0x0a], '......'));
      expect(peftError(() => loadCheckpoint(legacy)).message).toMatch(/legacy/);
      const unterminated = ptFile('noend.pt', bytes([0x80, 2], '}'));
      expect(peftError(() => loadCheckpoint(unterminated)).message).toMatch(/without STOP/);
    });

    it('a text file named .safetensors', () => {
      const path = join(dir, 'x.safetensors');
      writeFileSync(path, 'not safetensors at all');
      expect(peftError(() => loadCheckpoint(path)).message).toContain(path);
    });
  });

  it('parses in-memory buffers and round-trips safetensors written by peftjs', () => {
    const st = serializeSafetensors(new Map([['k', { dtype: 'F32' as const, shape: [2], data: Float32Array.from([1, 2]) }]]));
    const path = join(dir, 'k.safetensors');
    writeFileSync(path, st);
    const t = checkpointToTensors(loadCheckpoint(path));
    expect(Array.from(t.get('k')!.dataSync())).toEqual([1, 2]);
    tf.dispose([...t.values()]);
    expect(() => parseTorchCheckpoint(new Uint8Array([1, 2, 3]), 'buf')).toThrow(/buf: not a torch.save checkpoint/);
  });
});
