import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { parseSafetensors, serializeSafetensors, toFloat32, readSafetensors, saveTensors, loadTensors, type TensorToWrite } from './safetensors.js';
import { PeftError } from '../errors.js';

const shapeArb = fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 0, maxLength: 3 });
const entryArb = shapeArb.chain((shape) => {
  const n = shape.reduce((a, b) => a * b, 1);
  return fc.oneof(
    fc.array(fc.float({ noDefaultInfinity: false }), { minLength: n, maxLength: n }).map((v): TensorToWrite => ({ dtype: 'F32', shape, data: Float32Array.from(v) })),
    fc.array(fc.integer(), { minLength: n, maxLength: n }).map((v): TensorToWrite => ({ dtype: 'I32', shape, data: Int32Array.from(v) })),
    fc.array(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), { minLength: n, maxLength: n }).map((v): TensorToWrite => ({ dtype: 'I64', shape, data: BigInt64Array.from(v) })),
  );
});
const fileArb = fc.dictionary(fc.string({ minLength: 1, maxLength: 12 }).filter((k) => k !== '__metadata__'), entryArb, { maxKeys: 5 });

function bytesOf(d: TensorToWrite['data']): Uint8Array {
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

describe('safetensors', () => {
  it('write then read is bit-exact for any names, shapes and dtypes', () => {
    fc.assert(
      fc.property(fileArb, fc.dictionary(fc.string(), fc.string(), { maxKeys: 3 }), (entries, metadata) => {
        const map = new Map(Object.entries(entries));
        const buf = serializeSafetensors(map, metadata);
        const back = parseSafetensors(buf, 'mem');
        expect([...back.tensors.keys()].sort()).toEqual([...map.keys()].sort());
        for (const [k, e] of map) {
          const r = back.tensors.get(k)!;
          expect(r.dtype).toBe(e.dtype);
          expect(r.shape).toEqual(e.shape);
          expect(Buffer.compare(Buffer.from(r.bytes), Buffer.from(bytesOf(e.data)))).toBe(0);
        }
        if (Object.keys(metadata).length) expect(back.metadata).toEqual(metadata);
      }),
      { numRuns: 150 },
    );
  });

  it('names that are Object.prototype keys (__proto__, constructor, toString) are tensors like any other', () => {
    const names = ['__proto__', 'constructor', 'toString', 'hasOwnProperty'];
    const map = new Map(names.map((n, i): [string, TensorToWrite] => [n, { dtype: 'I32', shape: [1], data: Int32Array.of(i) }]));
    const metadata = JSON.parse('{"__proto__":"p","constructor":"c"}') as Record<string, string>;
    const back = parseSafetensors(serializeSafetensors(map, metadata), 'mem');
    expect([...back.tensors.keys()].sort()).toEqual([...names].sort());
    for (const [i, n] of names.entries()) expect(new Int32Array(back.tensors.get(n)!.bytes.slice().buffer)[0]).toBe(i);
    expect(Object.entries(back.metadata).sort()).toEqual([['__proto__', 'p'], ['constructor', 'c']]);
  });

  it('any truncation is a PeftError naming the source, never a crash', () => {
    fc.assert(
      fc.property(fileArb.filter((e) => Object.keys(e).length > 0), fc.nat(), (entries, cut) => {
        const buf = serializeSafetensors(new Map(Object.entries(entries)));
        const n = cut % buf.length;
        const hasData = [...Object.values(entries)].some((e) => e.data.byteLength > 0);
        try {
          parseSafetensors(buf.subarray(0, n), 'cut.safetensors');
          // a cut that removes nothing but padding-free data may still parse only if no tensor bytes were lost
          expect(hasData).toBe(false);
        } catch (err) {
          expect(err).toBeInstanceOf(PeftError);
          expect((err as Error).message).toContain('cut.safetensors');
        }
      }),
      { numRuns: 150 },
    );
  });

  it('bit flips in the header give a PeftError or a valid parse, never a crash', () => {
    fc.assert(
      fc.property(fileArb, fc.nat(), fc.integer({ min: 0, max: 7 }), (entries, pos, bit) => {
        const buf = serializeSafetensors(new Map(Object.entries(entries)));
        const headerEnd = 8 + Number(new DataView(buf.buffer).getBigUint64(0, true));
        const copy = buf.slice();
        const i = pos % headerEnd;
        copy[i]! ^= 1 << bit;
        try {
          const f = parseSafetensors(copy, 'flip');
          for (const t of f.tensors.values()) expect(t.bytes.byteLength).toBeLessThanOrEqual(copy.byteLength);
        } catch (err) {
          expect(err).toBeInstanceOf(PeftError);
        }
      }),
      { numRuns: 200 },
    );
  });

  const header = (h: unknown, dataLen = 0) => {
    const json = new TextEncoder().encode(JSON.stringify(h));
    const buf = new Uint8Array(8 + json.length + dataLen);
    new DataView(buf.buffer).setBigUint64(0, BigInt(json.length), true);
    buf.set(json, 8);
    return buf;
  };

  it.each([
    ['a lying header length', (() => { const b = header({}); new DataView(b.buffer).setBigUint64(0, 10n ** 12n, true); return b; })(), /header length/],
    ['offsets outside the data', header({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, 4), /'w'.*outside/],
    ['dtype x shape != bytes', header({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 16), /'w'.*12 bytes/],
    ['overlapping tensors', header({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, 12), /overlaps/],
    ['an unknown dtype', header({ w: { dtype: 'Q7', shape: [1], data_offsets: [0, 1] } }, 1), /'w'.*unsupported dtype/],
    ['a huge declared shape', header({ w: { dtype: 'F32', shape: [1e9, 1e9], data_offsets: [0, 4] } }, 4), /'w'.*more bytes/],
    ['a negative dimension', header({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, 4), /'w'.*invalid shape/],
    ['a header that is not JSON', (() => { const b = header({}); b[8] = 0x7b; b[9] = 0x7b; return b; })(), /not UTF-8 JSON/],
  ])('rejects %s with a clear message', (_name, buf, pattern) => {
    expect(() => parseSafetensors(buf, 'bad.safetensors')).toThrow(PeftError);
    expect(() => parseSafetensors(buf, 'bad.safetensors')).toThrow(pattern);
    expect(() => parseSafetensors(buf, 'bad.safetensors')).toThrow(/bad\.safetensors/);
  });

  it('decodes F16 and BF16 exactly', () => {
    const f16 = new Uint16Array([0x3c00, 0xc000, 0x0001, 0x7c00, 0x3555]);
    const bf16 = new Uint16Array([0x3f80, 0xc040, 0x0000]);
    const f = toFloat32({ dtype: 'F16', shape: [5], bytes: new Uint8Array(f16.buffer) });
    expect(Array.from(f)).toEqual([1, -2, 2 ** -24, Infinity, Math.fround(0.333251953125)]);
    const b = toFloat32({ dtype: 'BF16', shape: [3], bytes: new Uint8Array(bf16.buffer) });
    expect(Array.from(b)).toEqual([1, -3, 0]);
  });

  it('saves and loads tf tensors through a file atomically', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'st-'));
    const path = join(dir, 'm.safetensors');
    const w = tf.tensor2d([[1.5, -2], [3, 4e-8]]);
    const i = tf.tensor1d([7, -9], 'int32');
    await saveTensors(path, new Map<string, tf.Tensor>([['w', w], ['i', i]]), { format: 'pt' });
    const back = loadTensors(path);
    expect(Array.from(await back.get('w')!.data())).toEqual(Array.from(await w.data()));
    expect(back.get('i')!.dtype).toBe('int32');
    expect(readSafetensors(path).metadata).toEqual({ format: 'pt' });
    tf.dispose([w, i, ...back.values()]);
    writeFileSync(join(dir, 'x.safetensors'), 'not a tensor file');
    expect(() => readSafetensors(join(dir, 'x.safetensors'))).toThrow(/x\.safetensors: not a valid safetensors file/);
    expect(() => readSafetensors(join(dir, 'missing.safetensors'))).toThrow(/missing\.safetensors: no such file$/);
    expect(readFileSync(path).length % 1).toBe(0);
  });
});
