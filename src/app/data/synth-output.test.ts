import { describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PeftError } from '../../core/errors.js';
import { ensureDefaultDataset, readSynthMarker, synthesize } from './synth-output.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'peft-synth-'));

describe('synthesize (peft data synth)', () => {
  it('creates a new folder, then replaces its own previous output (stale samples removed)', async () => {
    const out = join(tmp(), 'a', 'fundus');
    const s1 = await synthesize(out, { n: 5, size: 32, seed: 1 });
    expect(s1).toMatchObject({ train: 4, test: 1, files: 5 * 15 + 1, replaced: false });
    expect(readSynthMarker(out)?.splits['Training-400']).toEqual(['S0001', 'S0002', 'S0003', 'S0004']);
    const s2 = await synthesize(out, { n: 3, size: 32, seed: 2 });
    expect(s2).toMatchObject({ train: 2, test: 1, replaced: true });
    expect(readdirSync(join(out, 'Training-400')).sort()).toEqual(['S0001', 'S0002']);
    expect(readdirSync(join(out, 'Test-400'))).toEqual(['S0003']);
    expect(readdirSync(join(out, '..')).filter((f) => f.startsWith('.'))).toEqual([]); // no temp folders left
  });

  it('refuses a non-empty folder of the user; --force adds beside it and never overwrites', async () => {
    const out = tmp();
    writeFileSync(join(out, 'notes.txt'), 'mine');
    await expect(synthesize(out, { n: 2, size: 32 })).rejects.toThrow(PeftError);
    await expect(synthesize(out, { n: 2, size: 32 })).rejects.toThrow(/is not a previous 'peft data synth' output \(e\.g\. notes\.txt\); use --force/);
    const s = await synthesize(out, { n: 2, size: 32 }, true);
    expect(s.train + s.test).toBe(2);
    expect(readFileSync(join(out, 'notes.txt'), 'utf8')).toBe('mine');
    // a user file at a path we would write: refused even with --force, nothing written
    const clash = tmp();
    mkdirSync(join(clash, 'Training-400', 'S0001'), { recursive: true });
    writeFileSync(join(clash, 'Training-400', 'S0001', 'S0001.jpg'), 'my photo');
    await expect(synthesize(clash, { n: 2, size: 32 }, true)).rejects.toThrow(/S0001\.jpg: exists and was not written by 'peft data synth'/);
    expect(readFileSync(join(clash, 'Training-400', 'S0001', 'S0001.jpg'), 'utf8')).toBe('my photo');
    expect(existsSync(join(clash, 'peft-synth.json'))).toBe(false);
    // an empty folder is fine; a file is not
    const empty = tmp();
    expect((await synthesize(empty, { n: 2, size: 32 })).files).toBe(31);
    writeFileSync(join(empty, 'file'), '');
    await expect(synthesize(join(empty, 'file'), { n: 2 })).rejects.toThrow(/exists and is not a folder/);
    await expect(synthesize(tmp(), { n: 1 })).rejects.toThrow(/--n must be an integer between 2 and 100000/);
    await expect(synthesize(tmp(), { size: 8 })).rejects.toThrow(/--size must be/);
  });

  it.skipIf(!existsSync('/proc/self'))('fails at once with one line naming the folder where it cannot be created (under /proc)', async () => {
    await expect(synthesize('/proc/peftjs-x', { n: 2, size: 32 })).rejects.toThrow(/^\/proc\/peftjs-x: cannot write the synthetic dataset \(ENOENT\)$/);
    await expect(synthesize('/proc/peftjs-x/a/b', { n: 2, size: 32 })).rejects.toThrow(/^\/proc\/peftjs-x\/a\/b: cannot create the folder it goes in \(ENOENT\)$/);
    await expect(ensureDefaultDataset('/proc/peftjs-cache', { n: 2, size: 32 })).rejects.toThrow(/^\/proc\/peftjs-cache: cannot create the cache folder \(ENOENT\)$/);
  });

  it('ensureDefaultDataset generates once into the cache and reuses it', async () => {
    const cache = tmp();
    const p = await ensureDefaultDataset(cache, { n: 2, size: 32 });
    expect(p).toBe(join(cache, 'synth-0-2-32'));
    const marker = readFileSync(join(p, 'peft-synth.json'), 'utf8');
    const t0 = Date.now();
    expect(await ensureDefaultDataset(cache, { n: 2, size: 32 })).toBe(p);
    expect(Date.now() - t0).toBeLessThan(200);
    expect(readFileSync(join(p, 'peft-synth.json'), 'utf8')).toBe(marker);
    expect(readdirSync(cache)).toEqual(['synth-0-2-32']);
    const prev = process.env.PEFT_CACHE;
    process.env.PEFT_CACHE = join(cache, 'env');
    try {
      expect(await ensureDefaultDataset(undefined, { n: 2, size: 32, seed: 5 })).toBe(join(cache, 'env', 'synth-5-2-32'));
    } finally {
      if (prev === undefined) delete process.env.PEFT_CACHE;
      else process.env.PEFT_CACHE = prev;
    }
  });
});
