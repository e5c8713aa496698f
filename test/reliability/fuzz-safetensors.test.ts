// safetensors under hostile input: mutated valid files, headers that lie about
// lengths, offsets, dtypes and shapes, non-UTF-8 and enormous names.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadTensors, parseSafetensors, serializeSafetensors, toFloat32, toTensor, type TensorToWrite } from '../../src/core/io/safetensors.js';
import { fuzz, hostileCase, mutatedArb, runs, verdict } from '../support/fuzz-harness.js';

const FILE = '/fuzz/model.safetensors';
const dir = mkdtempSync(join(tmpdir(), 'peft-fuzz-st-'));

function seeds(): Uint8Array[] {
  const f32 = (shape: number[]): TensorToWrite => ({ dtype: 'F32', shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => i / 7 - 1) });
  return [
    serializeSafetensors(new Map([['w', f32([3, 4])], ['b', f32([4])]]), { format: 'pt' }),
    serializeSafetensors(new Map<string, TensorToWrite>([
      ['blocks.0.attn.qkv.lora_A', f32([2, 8])],
      ['idx', { dtype: 'I32', shape: [5], data: Int32Array.from([1, -2, 3, 2 ** 31 - 1, -(2 ** 31)]) }],
      ['steps', { dtype: 'I64', shape: [2], data: BigInt64Array.from([7n, -9n]) }],
      ['empty', f32([0, 3])],
      ['scalar', f32([])],
    ])),
    serializeSafetensors(new Map()),
  ];
}

/** Every accepted file must also convert: each tensor's bytes lie in the file and decode. */
function consume(bytes: Uint8Array) {
  const f = parseSafetensors(bytes, FILE);
  for (const [, t] of f.tensors) {
    expect(t.bytes.byteLength).toBeLessThanOrEqual(bytes.byteLength);
    toFloat32(t);
  }
  return f;
}

/** A file from a header object given as JSON text (any bytes), and a data section. */
function rawFile(headerText: Uint8Array, data: Uint8Array, declaredLength?: bigint): Uint8Array {
  const out = new Uint8Array(8 + headerText.length + data.length);
  new DataView(out.buffer).setBigUint64(0, declaredLength ?? BigInt(headerText.length), true);
  out.set(headerText, 8);
  out.set(data, 8 + headerText.length);
  return out;
}

const enc = new TextEncoder();

/** Header entries that lie: dtypes, shapes, offsets, names (incl. non-UTF-8 bytes spliced in). */
const lyingEntry = fc.record({
  dtype: fc.oneof(fc.constantFrom('F32', 'F16', 'BF16', 'F64', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL', 'Q4', '', 'f32', 'toString', 'constructor', '__proto__'), fc.anything()),
  shape: fc.oneof(
    fc.array(fc.integer({ min: 0, max: 6 }), { maxLength: 4 }),
    fc.array(fc.constantFrom(0, 1, 2 ** 31, 2 ** 32, 2 ** 53 - 1, 2 ** 53, 1e300, -1, 0.5, 1e9), { maxLength: 5 }),
    fc.anything(),
  ),
  data_offsets: fc.oneof(
    fc.tuple(fc.integer({ min: 0, max: 64 }), fc.integer({ min: 0, max: 64 })),
    fc.tuple(fc.constantFrom(0, 2 ** 32, 2 ** 53, -8, 1.5), fc.constantFrom(0, 4, 2 ** 32 + 4, 2 ** 53, 1e308)),
    fc.anything(),
  ),
});
const headerArb = fc.tuple(
  fc.dictionary(fc.oneof(fc.string({ maxLength: 8 }), fc.constant('__metadata__'), fc.constant('__proto__')), fc.oneof(lyingEntry, fc.anything()), { maxKeys: 4 }),
  fc.option(fc.dictionary(fc.string({ maxLength: 4 }), fc.oneof(fc.string(), fc.anything())), { nil: undefined }),
  fc.option(fc.uint8Array({ minLength: 1, maxLength: 4 }).map((b) => b.map((x) => x | 0x80)), { nil: undefined }),
  fc.uint8Array({ maxLength: 96 }),
  fc.option(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), { nil: undefined }),
);

describe('safetensors parser under hostile input', () => {
  it('mutated valid files: accepted or a one-line PeftError naming the file', () => {
    const s = seeds();
    fuzz('safetensors', 'mutated valid files', mutatedArb(s), (bytes) => verdict(hostileCase(FILE, bytes.length, () => consume(bytes))), runs(400));
  });

  it('headers that lie (offsets, shapes, dtypes, lengths, non-UTF-8 names, metadata)', () => {
    fuzz(
      'safetensors',
      'lying headers',
      headerArb,
      ([entries, meta, badUtf8, data, declared]) => {
        const header: Record<string, unknown> = { ...entries };
        if (meta !== undefined) header.__metadata__ = meta;
        let text = enc.encode(JSON.stringify(header) ?? 'null');
        if (badUtf8 && text.length > 2) {
          // splice invalid UTF-8 into the header (inside the first string when there is one)
          const at = Math.max(1, text.indexOf(0x22) + 1);
          const out = new Uint8Array(text.length + badUtf8.length);
          out.set(text.subarray(0, at));
          out.set(badUtf8, at);
          out.set(text.subarray(at), at + badUtf8.length);
          text = out;
        }
        const bytes = rawFile(text, data, declared);
        return verdict(hostileCase(FILE, bytes.length, () => consume(bytes)));
      },
      runs(400),
    );
  });

  it('huge declared shapes and header lengths are refused before any allocation', () => {
    const cases = [
      rawFile(enc.encode(JSON.stringify({ w: { dtype: 'F32', shape: [2 ** 26, 2 ** 26], data_offsets: [0, 4] } })), new Uint8Array(4)),
      rawFile(enc.encode(JSON.stringify({ w: { dtype: 'F64', shape: [2 ** 53 - 1], data_offsets: [0, 8] } })), new Uint8Array(8)),
      rawFile(enc.encode(JSON.stringify({ w: { dtype: 'F32', shape: Array(2000).fill(2), data_offsets: [0, 4] } })), new Uint8Array(4)),
      rawFile(enc.encode('{}'), new Uint8Array(0), 2n ** 64n - 1n),
      rawFile(enc.encode('{}'), new Uint8Array(0), 99_999_999n),
      rawFile(enc.encode(JSON.stringify({ ['k'.repeat(100_000)]: { dtype: 'F32', shape: [-1], data_offsets: [0, 0] } })), new Uint8Array(0)),
      rawFile(enc.encode(JSON.stringify({ w: { dtype: 'F32', shape: Array(5000).fill(-1), data_offsets: [0, 0] } })), new Uint8Array(0)),
      rawFile(enc.encode(JSON.stringify({ w: { dtype: 'toString', shape: [1], data_offsets: [0, 4] } })), new Uint8Array(4)),
    ];
    for (const bytes of cases) {
      const o = hostileCase(FILE, bytes.length, () => consume(bytes), { allowance: 4 * 2 ** 20 + 64 * bytes.length });
      expect(o.ok).toBe(false);
    }
  });

  it('loadTensors disposes what it made when a later tensor fails', () => {
    const path = join(dir, 'partial.safetensors');
    writeFileSync(path, serializeSafetensors(new Map<string, TensorToWrite>([
      ['a', { dtype: 'F32', shape: [2], data: Float32Array.from([1, 2]) }],
      ['z', { dtype: 'I64', shape: [1], data: BigInt64Array.from([1n << 40n]) }],
    ])));
    const before = tf.memory().numTensors;
    const o = hostileCase(path, 64, () => loadTensors(path));
    expect(o.ok).toBe(false);
    expect(tf.memory().numTensors).toBe(before);
    const t = toTensor({ dtype: 'F32', shape: [1], bytes: new Uint8Array(4) });
    t.dispose();
  });
});
