// Amplification (issue 19, class 4): small files that declare huge sizes, or
// many small files that are huge together. Every declared size is budgeted
// before anything is allocated: views of a checkpoint's storages, a zip's
// deflated entries, an image's decoded bytes, a sample's files together.
// Each case measures the PEAK resident memory while it runs (support/peak-rss.ts:
// the kernel's high-water mark, reset before the case), not what is held after,
// and asserts a bound; the cases the attack reported took 0.4 to 4 GB before.
import { afterAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { constants, crc32, deflateRawSync } from 'node:zlib';
import { PeftError } from '../../src/core/errors.js';
import { checkpointToTensors, parseTorchCheckpoint } from '../../src/core/io/torch-checkpoint.js';
import { decodeImage, readImage } from '../../src/app/data/image-io.js';
import { openRefuge } from '../../src/app/data/refuge.js';
import { imageLimits } from '../../src/app/data/image-limits.js';
import { bytes, dictPkl, tensorPkl, u16, u32, zip } from '../support/torch-builders.js';
import { measurePeak, peakRssAvailable } from '../support/peak-rss.js';
import { recordTable } from '../support/fuzz-harness.js';
import { createDefaultRegistry } from '../../src/builtins.js';
import { serializeSafetensors, tensorsToEntries } from '../../src/core/io/safetensors.js';
import { loadBackboneWeights } from '../../src/core/peft/backbone-weights.js';

const MiB = 1024 * 1024;
const tmp = mkdtempSync(join(tmpdir(), 'peft-amplification-'));
const results: ('accepted' | 'rejected' | 'failed')[] = [];
const peaks: string[] = [];
const started = performance.now();
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
  recordTable('hostile files', 'amplification: declared sizes budgeted before allocating (peak RSS per case)', results, (performance.now() - started) / 1000);
  console.log(`peak RSS per case: ${peaks.join('; ')}`);
});

/**
 * Runs a case that must be refused with a PeftError matching `pattern`,
 * and whose resident memory may rise at most `boundMiB` while it runs.
 */
async function refusedWithin(name: string, boundMiB: number, pattern: RegExp, work: () => unknown): Promise<void> {
  const { outcome, peakMiB } = await measurePeak(work);
  peaks.push(`${name} ${peakMiB.toFixed(0)} MiB`);
  if ('value' in outcome) {
    results.push('failed');
    throw new Error(`${name}: accepted, expected a PeftError matching ${pattern}`);
  }
  expect(outcome.error, String(outcome.error)).toBeInstanceOf(PeftError);
  expect((outcome.error as Error).message).toMatch(pattern);
  expect(peakMiB, `${name}: peak RSS rose ${peakMiB.toFixed(0)} MiB`).toBeLessThan(boundMiB);
  results.push('rejected');
}

/** `n` bytes of zeros as a raw deflate stream, built from 1 MiB pieces (each flushed to a byte boundary) without deflating `n` bytes. */
function zerosDeflated(n: number): Uint8Array {
  const piece = deflateRawSync(Buffer.alloc(MiB), { finishFlush: constants.Z_SYNC_FLUSH });
  const parts: Uint8Array[] = [];
  for (let left = n; left > 0; left -= MiB) parts.push(left >= MiB ? piece : deflateRawSync(Buffer.alloc(left), { finishFlush: constants.Z_SYNC_FLUSH }));
  parts.push(deflateRawSync(Buffer.alloc(0))); // the final (empty) block
  return bytes(...parts);
}

/** `n` zeros as a zlib stream (a PNG's IDAT): header, deflate, Adler-32. */
function zerosZlib(n: number): Uint8Array {
  const adler = ((n % 65521) * 65536 + 1) >>> 0;
  return bytes([0x78, 0x9c], zerosDeflated(n), [adler >>> 24, (adler >>> 16) & 255, (adler >>> 8) & 255, adler & 255]);
}

function pngChunk(type: string, body: Uint8Array): Uint8Array {
  const head = bytes(type, body);
  const be = (v: number) => [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255];
  return bytes(be(body.length), head, be(crc32(head)));
}

/** A PNG of zeros: `width` x `height`, colour type and depth as given, its image data really that large once inflated. */
function zeroPng(width: number, height: number, colorType: number, depth: number): Uint8Array {
  const channels = { 0: 1, 2: 3, 4: 2, 6: 4 }[colorType]!;
  const raw = height * (Math.ceil((width * channels * depth) / 8) + 1);
  const be = (v: number) => [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255];
  const ihdr = bytes(be(width), be(height), [depth, colorType, 0, 0, 0]);
  return bytes([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], pngChunk('IHDR', ihdr), pngChunk('IDAT', zerosZlib(raw)), pngChunk('IEND', new Uint8Array(0)));
}

/** A zip of one stored data.pkl and one storage entry whose deflated body and declared size are given as they are. */
function archiveWithDeflated(pkl: Uint8Array, key: string, body: Uint8Array, size: number): Uint8Array {
  const stored = zip([{ name: 'archive/data.pkl', data: pkl }]);
  // the entry written by hand after data.pkl: the builder deflates what it is given, this body is already deflated
  const pklLocal = stored.subarray(0, stored.length - 22 - (46 + 'archive/data.pkl'.length));
  const name = new TextEncoder().encode(`archive/data/${key}`);
  const at = pklLocal.length;
  const local = bytes([0x50, 0x4b, 0x03, 0x04], u16(20), u16(0x800), u16(8), u16(0), u16(0), u32(0), u32(body.length), u32(size), u16(name.length), u16(0), name, body);
  const pklName = new TextEncoder().encode('archive/data.pkl');
  const cd = bytes(
    bytes([0x50, 0x4b, 0x01, 0x02], u16(20), u16(20), u16(0x800), u16(0), u16(0), u16(0), u32(crc32(pkl)), u32(pkl.length), u32(pkl.length), u16(pklName.length), u16(0), u16(0), u16(0), u16(0), u32(0), u32(0), pklName),
    bytes([0x50, 0x4b, 0x01, 0x02], u16(20), u16(20), u16(0x800), u16(8), u16(0), u16(0), u32(0), u32(body.length), u32(size), u16(name.length), u16(0), u16(0), u16(0), u16(0), u32(0), u32(at), name),
  );
  const cdAt = at + local.length;
  return bytes(pklLocal, local, cd, [0x50, 0x4b, 0x05, 0x06], u16(0), u16(0), u16(2), u16(2), u32(cd.length), u32(cdAt), u16(0));
}

describe.skipIf(!peakRssAvailable)('amplification: declared sizes are budgeted before anything is allocated (peak RSS per case)', () => {
  it('a checkpoint of 600 keys that are views of one 1 MiB storage (600 MiB of tensors once loaded)', async () => {
    const numel = MiB / 4;
    const view = tensorPkl('0', 'FloatStorage', numel, 0, [numel], [1]);
    const pkl = dictPkl(Array.from({ length: 600 }, (_, i) => [`blocks.${i}.weight`, view] as [string, Uint8Array]));
    const file = zip([
      { name: 'archive/data.pkl', data: pkl },
      { name: 'archive/data/0', data: new Uint8Array(MiB) },
    ]);
    expect(file.length).toBeLessThan(2 * MiB);
    await refusedWithin('600 views of one storage', 48, /data\.pkl: its tensors would take \d+ bytes once loaded \(views of the same storages\), more than 2 x the file's/, () =>
      checkpointToTensors(parseTorchCheckpoint(file, 'views.pt')),
    );
  });

  it('a zip entry of 400 kB of deflate that declares (and inflates to) 400 MiB', async () => {
    const body = zerosDeflated(400 * MiB);
    expect(body.length).toBeLessThan(MiB);
    const numel = (400 * MiB) / 4;
    const file = archiveWithDeflated(dictPkl([['w', tensorPkl('0', 'FloatStorage', numel, 0, [numel], [1])]]), '0', body, 400 * MiB);
    await refusedWithin('deflate bomb in a .pt', 48, /bomb\.pt: not a valid zip archive: entry 'archive\/data\/0' would inflate the entries read to 419430400 bytes, more than the 67108864-byte limit/, () =>
      parseTorchCheckpoint(file, 'bomb.pt'),
    );
  });

  it('a 256 kB JPEG whose frame declares 16384 x 16384', async () => {
    const sof = [0xff, 0xc0, 0, 17, 8, 0x40, 0x00, 0x40, 0x00, 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1];
    const filler = Array.from({ length: 4 }, () => bytes([0xff, 0xfe, 0xff, 0xff], new Uint8Array(0xfffd)));
    const jpeg = bytes([0xff, 0xd8], ...filler, sof, [0xff, 0xd9]);
    expect(jpeg.length).toBeGreaterThan(256 * 1024);
    await refusedWithin('16384² JPEG', 32, /big\.jpg: 16384x16384x3 decodes to 768 MiB, more than the limit of 128 MiB per image/, () => decodeImage(jpeg, 'big.jpg'));
  });

  it('an 8192 x 8192 16-bit RGBA PNG (512 MiB declared, 1.65 GB before) from 500 kB', async () => {
    const png = zeroPng(8192, 8192, 6, 16);
    expect(png.length).toBeLessThan(MiB);
    await refusedWithin('8192² 16-bit RGBA PNG', 32, /rgba\.png: 8192x8192x4 at 16 bits decodes to 512 MiB, more than the limit of 128 MiB per image/, () => decodeImage(png, 'rgba.png'));
  });

  it('a REFUGE sample of 15 1-bit 16384 x 16384 PNGs (2.75 GB before): the first is refused by the per-image limit', async () => {
    const dir = join(tmp, 'huge', 'Training-400', 'S1');
    mkdirSync(dir, { recursive: true });
    const png = zeroPng(16384, 16384, 0, 1);
    writeFileSync(join(dir, 'S1.png'), png);
    for (const c of ['cup', 'disc']) for (let k = 1; k <= 7; k++) writeFileSync(join(dir, `S1_seg_${c}_${k}.png`), png);
    const ds = await openRefuge(join(tmp, 'huge'), { imageSize: 64, outSize: 16 });
    await refusedWithin('REFUGE sample of 16384² masks', 32, /S1\.png: 16384x16384x1 decodes to 256 MiB, more than the limit of 128 MiB per image/, () => ds.get(0));
  });

  it('a REFUGE sample of 15 1-bit 6000 x 6000 PNGs, each within the image limit: the per-sample budget refuses it before decoding any', async () => {
    const dir = join(tmp, 'many', 'Training-400', 'S1');
    mkdirSync(dir, { recursive: true });
    const png = zeroPng(6000, 6000, 0, 1);
    writeFileSync(join(dir, 'S1.png'), png);
    for (const c of ['cup', 'disc']) for (let k = 1; k <= 7; k++) writeFileSync(join(dir, `S1_seg_${c}_${k}.png`), png);
    const ds = await openRefuge(join(tmp, 'many'), { imageSize: 64, outSize: 16 });
    // 8 files of 34.3 MiB go over 256 MiB: the eighth is named (the image, then cup 1..7)
    await refusedWithin('REFUGE sample over its budget', 32, /S1_seg_cup_7\.png: sample 'S1''s files decode to 274\.7 MiB with this one, more than the limit of 256 MiB per sample/, () => ds.get(0));
    // one such mask alone is decoded, within a bound of a few times its decoded size
    const { outcome, peakMiB } = await measurePeak(() => readImage(join(dir, 'S1_seg_cup_1.png'), 'grey'));
    peaks.push(`one 6000² 1-bit mask decoded ${peakMiB.toFixed(0)} MiB`);
    expect('value' in outcome && outcome.value.width).toBe(6000);
    expect(peakMiB).toBeLessThan((4 * imageLimits.maxImageBytes) / MiB);
    results.push('accepted');
  });
});

describe('a checkpoint\'s keys are checked before its tensors are made', () => {
  it('a key the backbone does not have is reported as unexpected, without converting it (strict), and left out (partial)', async () => {
    const registry = await createDefaultRegistry();
    const a = registry.createBackbone('sam', 'tiny', { img_size: 64 });
    const entries = await tensorsToEntries(a.model.stateDict());
    // a value that cannot become an int32 tensor: converting it first would fail on it, not on the key
    entries.set('extra.counter', { dtype: 'I64', shape: [1], data: BigInt64Array.from([2n ** 40n]) });
    const path = join(tmp, 'extra.safetensors');
    writeFileSync(path, serializeSafetensors(entries));
    const b = registry.createBackbone('sam', 'tiny', { img_size: 64 });
    const def = registry.backbone('sam');
    expect(() => loadBackboneWeights(b, def, path)).toThrow(/extra\.safetensors: state dict does not fit the model \(unexpected: extra\.counter\) — is this a checkpoint for sam preset 'tiny'\?$/);
    const report = loadBackboneWeights(b, def, path, { partial: true });
    expect(report.unexpected).toEqual(['extra.counter']);
    expect(report.loaded).toBe(a.model.stateDict().size);
    a.model.dispose();
    b.model.dispose();
  });
});
