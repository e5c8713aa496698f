// The torch.save reader (zip container + restricted unpickler) under hostile
// input: mutated valid archives, random pickle programs with opcodes torch.save
// never writes, zip entries with path traversal, non-UTF-8 and NUL names,
// overlapping entries (zip bombs), lying sizes, offsets, CRCs and ZIP64
// records, tensors whose sizes and strides claim more than the file holds.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkpointToTensors, parseTorchCheckpoint } from '../../src/core/io/torch-checkpoint.js';
import { openZip } from '../../src/core/io/torch-zip.js';
import type { RawTensor } from '../../src/core/io/safetensors.js';
import { FIXTURES, HAVE_FIXTURES } from '../support/fixtures.js';
import { fuzz, hostileCase, mutate, mutatedArb, mutationArb, runs, verdict } from '../support/fuzz-harness.js';
import { bytes, dictPkl, f32, glob, i64, int, MARK, ptArchive, str, tensorPkl, tuple, u32, u64, zip, type ZipItem } from '../support/torch-builders.js';

const FILE = '/fuzz/sam_vit_b.pth';

/** Parses, then converts every tensor (as a checkpoint load does) and frees them. */
function consume(buf: Uint8Array) {
  const before = tf.memory().numTensors;
  const m = parseTorchCheckpoint(buf, FILE);
  try {
    const t = checkpointToTensors(m, { source: FILE });
    tf.dispose([...t.values()]);
  } finally {
    expect(tf.memory().numTensors).toBe(before);
  }
  return m;
}

const check = (buf: Uint8Array) => verdict(hostileCase(FILE, buf.length, () => consume(buf)));

function seeds(): Uint8Array[] {
  const w = tensorPkl('0', 'FloatStorage', 6, 0, [2, 3], [3, 1]);
  const t = tensorPkl('0', 'FloatStorage', 6, 0, [3, 2], [1, 3]);
  const n = tensorPkl('1', 'LongStorage', 1, 0, [], []);
  const h = tensorPkl('2', 'HalfStorage', 2, 0, [2], [1]);
  const storages = { '0': f32(1, 2, 3, 4, 5, 6), '1': i64(7n), '2': new Uint8Array([0, 0x3c, 0, 0xc0]) };
  const wrapped = bytes(
    [0x80, 2],
    '}',
    MARK,
    str('state_dict'),
    glob('collections', 'OrderedDict'),
    ')',
    'R',
    MARK,
    str('a.weight'),
    w,
    'u',
    '}',
    MARK,
    str('_metadata'),
    glob('collections', 'OrderedDict'),
    ')',
    'R',
    'u',
    'b',
    str('epoch'),
    int(3),
    'u',
    '.',
  );
  return [
    ptArchive(dictPkl([['w', w], ['t', t], ['n', n], ['h', h]]), storages),
    ptArchive(dictPkl([['w', w], ['n', n]], true), storages, { method: 8, top: 'sam_vit_b' }),
    ptArchive(wrapped, { '0': storages['0'] }),
  ];
}

// --- random pickle programs
const names = fc.constantFrom(
  ['collections', 'OrderedDict'],
  ['torch._utils', '_rebuild_tensor_v2'],
  ['torch._utils', '_rebuild_parameter'],
  ['torch', 'FloatStorage'],
  ['torch', 'LongStorage'],
  ['torch', 'constructor'],
  ['torch', '__proto__'],
  ['builtins', 'eval'],
  ['os', 'system'],
  ['torch', 'Tensor'],
  ['__builtin__', 'getattr'],
);
const opArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  // opcodes with well-formed (but arbitrary) arguments
  fc.constantFrom(0x28, 0x2e, 0x30, 0x31, 0x32, 0x4e, 0x88, 0x89, 0x7d, 0x5d, 0x29, 0x74, 0x85, 0x86, 0x87, 0x94, 0x93, 0x51, 0x52, 0x62, 0x73, 0x75, 0x61, 0x65).map((o) => Uint8Array.of(o)),
  fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }).map((n) => bytes([0x4a, ...u32(n)])),
  fc.integer({ min: 0, max: 255 }).map((n) => bytes([0x4b, n])),
  fc.integer({ min: 0, max: 255 }).map((n) => bytes([0x71, n])),
  fc.integer({ min: 0, max: 255 }).map((n) => bytes([0x68, n])),
  fc.nat().map((n) => bytes([0x72, ...u32(n % 8)])),
  fc.nat().map((n) => bytes([0x6a, ...u32(n % 8)])),
  fc.uint8Array({ maxLength: 12 }).map((b) => bytes([0x8a, b.length], b)),
  fc.string({ maxLength: 8 }).map(str),
  fc.string({ maxLength: 8 }).map((s) => bytes([0x8c, new TextEncoder().encode(s).length], s)),
  names.map(([m, n]) => glob(m, n)),
  names.map(([m, n]) => bytes([0x8c, m.length], m, [0x8c, n.length], n, [0x93])),
  fc.tuple(fc.constantFrom('0', '1', '9'), fc.constantFrom('FloatStorage', 'LongStorage', 'HalfStorage'), fc.nat({ max: 12 }), fc.nat({ max: 8 }), fc.array(fc.nat({ max: 5 }), { maxLength: 3 }), fc.array(fc.nat({ max: 5 }), { maxLength: 3 })).map(
    ([k, ty, numel, off, size, stride]) => tensorPkl(k, ty, numel, off, size, stride),
  ),
  // lying lengths: strings, frames, unicode8 claiming more than the data
  fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map((n) => bytes([0x8d, ...u64(n)], 'abc')),
  fc.nat().map((n) => bytes([0x58, ...u32(n)], 'abc')),
  fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map((n) => bytes([0x95, ...u64(n)])),
  fc.integer({ min: 0, max: 255 }).map((v) => bytes([0x80, v])),
  // opcodes torch.save never writes, and raw bytes
  fc.constantFrom('i__builtin__\nobject\n', 'o', 'S\'x\'\n', 'I1\n', 'L1L\n', 'F1.0\n', 'P0\n', 'd', 'l', 'p0\n', 'g0\n').map((s) => bytes(s)),
  fc.constantFrom(0x81, 0x82, 0x83, 0x84, 0x8b, 0x42, 0x43, 0x54, 0x55, 0x8e, 0x8f, 0x90, 0x91, 0x92, 0x96, 0x97, 0x98, 0x47, 0x4c, 0x00, 0xff).map((o) => bytes([o], [1, 0, 0, 0, 0, 0, 0, 0])),
  fc.uint8Array({ minLength: 1, maxLength: 8 }),
);
const programArb = fc.tuple(fc.array(opArb, { maxLength: 24 }), fc.boolean()).map(([ops, stop]) => bytes([0x80, 2], ...ops, stop ? '.' : ''));

// --- hostile zip entry names
const evilName = fc.oneof(
  fc.constantFrom('../data.pkl', '../../../../etc/data.pkl', '/abs/data.pkl', 'archive/../data.pkl', 'archive\\data.pkl', 'C:\\data.pkl', 'archive/data.pkl\u0000.txt', './data.pkl', 'archive//data.pkl', ''),
  fc.uint8Array({ minLength: 1, maxLength: 6 }).map((b) => bytes('archive', b.map((x) => x | 0x80), '/data.pkl')),
  fc.uint8Array({ maxLength: 12 }).map((b) => bytes(b, [0xff])),
);

describe('torch.save reader under hostile input', () => {
  it('mutated valid archives (truncated, bit-flipped, lying integers, spliced bytes)', () => {
    fuzz('torch.save', 'mutated valid archives', mutatedArb(seeds()), check, runs(400));
  });

  it('random pickle programs, including opcodes outside what torch.save writes', () => {
    const storages = { '0': f32(1, 2, 3, 4, 5, 6, 7, 8), '1': i64(1n, 2n) };
    fuzz('torch.save', 'random pickle programs', programArb, (pkl) => check(ptArchive(pkl, storages)), runs(400));
  });

  it('zip entries with path traversal, absolute, NUL, backslash and non-UTF-8 names', () => {
    const good = seeds()[0]!;
    const zipOf = (name: Uint8Array | string, where: number) => {
      const items: ZipItem[] = [
        { name: 'archive/data.pkl', data: dictPkl([['w', tensorPkl('0', 'FloatStorage', 2, 0, [2], [1])]]) },
        { name: 'archive/data/0', data: f32(1, 2) },
        { name: 'archive/version', data: bytes('3\n') },
      ];
      items[where % items.length] = { ...items[where % items.length]!, name };
      return zip(items);
    };
    const results = fuzz('torch.save', 'hostile entry names', fc.tuple(evilName, fc.nat()), ([name, where]) => {
      const buf = zipOf(name, where);
      const o = hostileCase(FILE, buf.length, () => consume(buf));
      if (o.ok) throw new Error(`accepted an archive with the entry name ${JSON.stringify(typeof name === 'string' ? name : Array.from(name))}`);
      return 'rejected';
    }, runs(200));
    expect(results.rejected).toBe(results.runs);
    expect(check(good)).toBe('accepted');
  });

  it('lying zip structure: sizes, offsets, CRCs, counts, ZIP64 records, overlapping entries', () => {
    const pkl = dictPkl([['w', tensorPkl('0', 'FloatStorage', 4, 0, [4], [1])]]);
    const data = f32(1, 2, 3, 4);
    const field = fc.constantFrom(0, 1, 4, 16, 0xffff, 0x7fffffff, 0xffffffff);
    const arb = fc.record({
      method: fc.constantFrom(0 as const, 8 as const),
      which: fc.constantFrom(0, 1),
      lie: fc.constantFrom('crc', 'size', 'compressedSize', 'localOffset', 'flags', 'count', 'cdOffset', 'cdSize', 'zip64', 'none'),
      value: field,
      big: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
    });
    fuzz('torch.save', 'lying zip structure', arb, ({ method, which, lie, value, big }) => {
      const items: ZipItem[] = [
        { name: 'archive/data.pkl', data: pkl, method },
        { name: 'archive/data/0', data, method },
      ];
      const it = items[which]!;
      if (lie === 'crc' || lie === 'size' || lie === 'compressedSize' || lie === 'localOffset' || lie === 'flags') it[lie] = value;
      const opts = lie === 'count' ? { count: value } : lie === 'cdOffset' ? { cdOffset: value } : lie === 'cdSize' ? { cdSize: value } : lie === 'zip64' ? { zip64: { count: big % 4n, cdSize: big, cdOffset: big >> 3n } } : {};
      return check(zip(items, opts));
    }, runs(300));
  });

  it('overlapping entries cannot multiply the inflated size (zip bomb)', () => {
    // one deflated 1 MB run of zeros (~1 kB), referenced by 40 directory entries as 40 storages
    const zeros = new Uint8Array(1 << 20);
    const n = 40;
    const entries: [string, Uint8Array][] = Array.from({ length: n }, (_, i) => [`w${i}`, tensorPkl(String(i), 'FloatStorage', 4, 0, [4], [1])]);
    const items: ZipItem[] = [{ name: 'archive/data/0', data: zeros, method: 8 }];
    for (let i = 1; i < n; i++) items.push({ name: `archive/data/${i}`, data: zeros, method: 8, localOffset: 0 });
    items.push({ name: 'archive/data.pkl', data: dictPkl(entries) });
    const bomb = zip(items);
    const o = hostileCase(FILE, bomb.length, () => consume(bomb), { allowance: 8 * 2 ** 20 });
    expect(o.ok).toBe(false);
    if (!o.ok) expect(o.error.message).toMatch(/overlap/);
  });

  it('tensors that claim more than the file: huge sizes, strides, offsets, broadcast copies', () => {
    const storages = { '0': f32(1, 2, 3, 4), '1': i64(5n) };
    const dim = fc.oneof(fc.nat({ max: 6 }), fc.constantFrom(2 ** 16, 2 ** 31 - 1, 2 ** 32, 2 ** 53 - 1));
    const arb = fc.record({
      numel: fc.oneof(fc.nat({ max: 8 }), fc.constantFrom(2 ** 31, 2 ** 53 - 1)),
      offset: fc.oneof(fc.nat({ max: 8 }), fc.constantFrom(2 ** 32, 2 ** 53 - 1)),
      size: fc.array(dim, { maxLength: 4 }),
      stride: fc.array(fc.oneof(fc.nat({ max: 4 }), fc.constantFrom(2 ** 32, 2 ** 53 - 1)), { maxLength: 4 }),
      copies: fc.integer({ min: 1, max: 3 }),
    });
    fuzz('torch.save', 'lying tensor sizes and strides', arb, ({ numel, offset, size, stride, copies }) => {
      const entries: [string, Uint8Array][] = Array.from({ length: copies }, (_, i) => [`w${i}`, tensorPkl('0', 'FloatStorage', numel, offset, size, stride)]);
      return check(ptArchive(dictPkl(entries), storages));
    }, runs(300));

    // a broadcast view (stride 0) copied by many tensors: each gather is "justified" alone, together they are not
    const many = 200;
    const entries: [string, Uint8Array][] = Array.from({ length: many }, (_, i) => [`w${i}`, tensorPkl('0', 'FloatStorage', 1, 0, [64, 1024], [0, 0])]);
    const buf = ptArchive(dictPkl(entries), { '0': f32(1) });
    const o = hostileCase(FILE, buf.length, () => parseTorchCheckpoint(buf, FILE), { allowance: 64 * buf.length + 8 * 2 ** 20 });
    expect(o.ok).toBe(false);
  });

  it('many views of one storage: what loading them makes stays within twice the file (amplification)', () => {
    const arb = fc.record({
      storage: fc.integer({ min: 1, max: 1 << 16 }),
      views: fc.integer({ min: 1, max: 1500 }),
      frac: fc.double({ min: 0, max: 1, noNaN: true }),
      strided: fc.boolean(),
    });
    fuzz('torch.save', 'views of one storage (budget of what loading makes)', arb, ({ storage, views, frac, strided }) => {
      const len = Math.max(1, Math.floor(storage * frac));
      const stride = strided && 2 * len - 1 <= storage ? 2 : 1;
      const view = tensorPkl('0', 'FloatStorage', storage, 0, [len], [stride]);
      const buf = ptArchive(dictPkl(Array.from({ length: views }, (_, i) => [`w${i}`, view] as [string, Uint8Array])), { '0': new Uint8Array(storage * 4) });
      const o = hostileCase(FILE, buf.length, () => parseTorchCheckpoint(buf, FILE));
      if (o.ok) {
        const made = [...(o.value as Map<string, RawTensor>).values()].reduce((n, t) => n + t.bytes.byteLength, 0);
        expect(made).toBeLessThanOrEqual(Math.max(2 * buf.length, 2 ** 20));
      }
      return verdict(o);
    }, runs(100));
  });

  it.skipIf(!HAVE_FIXTURES)('mutations of a real torch.save file in its directory and pickle', () => {
    const real = new Uint8Array(readFileSync(join(FIXTURES, 'mobile_sam_tiny.pt')));
    const z = openZip(real, 'fixture');
    const pkl = [...z.entries.values()].find((e) => e.name.endsWith('data.pkl'))!;
    // regions that are structure, not tensor data: the pickle and the tail (central directory)
    const regions: [number, number][] = [
      [pkl.localHeaderOffset, pkl.localHeaderOffset + 30 + pkl.name.length + pkl.compressedSize + 64],
      [Math.max(0, real.length - 16384), real.length],
    ];
    const arb = fc.tuple(fc.nat({ max: regions.length - 1 }), fc.array(mutationArb, { minLength: 1, maxLength: 2 }));
    fuzz('torch.save', 'mutated real checkpoint (structure)', arb, ([r, ms]) => {
      const [a, b] = regions[r]!;
      let buf: Uint8Array = real;
      for (const m of ms) {
        // place the mutation inside the region: rescale p to the region
        const p = (a + m.p * (b - a)) / real.length;
        buf = mutate(buf, { ...m, p: Math.min(p, 0.999999) });
      }
      const o = hostileCase(FILE, buf.length, () => parseTorchCheckpoint(buf, FILE), { allowance: 4 * buf.length + 16 * 2 ** 20 });
      return verdict(o);
    }, Math.min(runs(60), 600));
  });
});
