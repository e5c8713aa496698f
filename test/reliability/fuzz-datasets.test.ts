// Dataset files under hostile input: the CSV parser on mutated CSVs (quotes,
// NULs, invalid UTF-8, lying line structure), the ISIC loader on CSVs whose
// paths escape the folder (.., absolute, symlinks, NUL, non-UTF-8, folders),
// and the REFUGE layout with missing, empty, folder-shaped and corrupt masks.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCsv } from '../../src/app/data/csv.js';
import { openIsic, scanIsicCsv } from '../../src/app/data/isic.js';
import { openRefuge, refugeMaskPaths } from '../../src/app/data/refuge.js';
import { encodeJpeg, encodePng } from '../../src/app/data/image-io.js';
import { fuzz, fuzzAsync, hostileCase, hostileCaseAsync, mutatedArb, runs, verdict } from '../support/fuzz-harness.js';

const enc = new TextEncoder();
const root = mkdtempSync(join(tmpdir(), 'peft-fuzz-data-'));
const grey = (w: number, h: number) => ({ width: w, height: h, channels: 1 as const, data: Uint8Array.from({ length: w * h }, (_, i) => (i % 7 < 3 ? 255 : 0)) });
const rgb = (w: number, h: number) => ({ width: w, height: h, channels: 3 as const, data: Uint8Array.from({ length: w * h * 3 }, (_, i) => (i * 5) & 255) });

// an ISIC-style folder: images/, masks/, and a file outside it
const isic = join(root, 'isic');
mkdirSync(join(isic, 'images'), { recursive: true });
mkdirSync(join(isic, 'masks'), { recursive: true });
for (const n of ['a', 'b']) {
  writeFileSync(join(isic, 'images', `${n}.jpg`), encodeJpeg(rgb(16, 12)));
  writeFileSync(join(isic, 'masks', `${n}.png`), encodePng(grey(16, 12)));
}
writeFileSync(join(root, 'secret.png'), encodePng(grey(4, 4)));
symlinkSync(join(root, 'secret.png'), join(isic, 'masks', 'escape.png'));
const validCsv = ',img,seg\n0,images/a.jpg,masks/a.png\n1,"images/b.jpg","masks/b.png"\r\n';

describe('CSV and dataset layouts under hostile input', () => {
  it('parseCsv on mutated CSV bytes (decoded as UTF-8, invalid bytes included)', () => {
    const seeds = [enc.encode(validCsv), enc.encode('a,b\n"x ""quoted"", y",z\n\n"multi\nline",2\n'), Uint8Array.of(0xef, 0xbb, 0xbf, ...enc.encode('img,mask\nx.png,y.png'))];
    const file = join(isic, 'train.csv');
    fuzz('datasets', 'CSV parser on mutated CSVs', mutatedArb(seeds, 4), (b) => {
      const text = Buffer.from(b).toString('utf8');
      return verdict(hostileCase(file, b.length, () => parseCsv(text, file)));
    }, runs(500));
  });

  it('ISIC CSVs with mutated content, read from disk', async () => {
    const file = join(isic, 'fuzz.csv');
    await fuzzAsync('datasets', 'ISIC loader on mutated CSVs', mutatedArb([enc.encode(validCsv)], 3), async (b) => {
      writeFileSync(file, b);
      return verdict(await hostileCaseAsync(file, () => scanIsicCsv(file)));
    }, runs(200));
  });

  it('ISIC CSVs whose paths escape the folder or are not files', async () => {
    const path = fc.oneof(
      fc.constantFrom('../secret.png', '../../etc/passwd', '/etc/passwd', 'images/../../secret.png', 'masks/escape.png', 'images', 'masks/', '', ' ', 'images/a.jpg\u0000.png', 'nosuch.png', 'images/' + 'x'.repeat(5000) + '.png', 'C:\\\\images\\\\a.jpg', '~/a.png'),
      fc.uint8Array({ minLength: 1, maxLength: 6 }).map((b) => Buffer.from(Uint8Array.of(...enc.encode('images/'), ...b.map((x) => x | 0x80))).toString('latin1')),
    );
    const file = join(isic, 'paths.csv');
    const stats = await fuzzAsync('datasets', 'ISIC paths escaping the folder', fc.tuple(path, fc.boolean()), async ([p, inImage]) => {
      const row = inImage ? `0,"${p.replace(/"/g, '""')}",masks/a.png` : `0,images/a.jpg,"${p.replace(/"/g, '""')}"`;
      writeFileSync(file, Buffer.concat([Buffer.from(',img,seg\n'), Buffer.from(row, 'latin1'), Buffer.from('\n')]));
      const o = await hostileCaseAsync(file, () => scanIsicCsv(file));
      if (o.ok) throw new Error(`accepted the path ${JSON.stringify(p)}`);
      return 'rejected';
    }, runs(200));
    expect(stats.rejected).toBe(stats.runs);
    // the valid CSV still opens
    writeFileSync(file, validCsv);
    const ds = await openIsic(file, { imageSize: 32, outSize: 8 });
    expect(ds.length).toBe(2);
    expect((await ds.get(1)).target.length).toBe(64);
  });

  it('REFUGE layouts with missing, empty, folder-shaped, text and corrupt masks', async () => {
    const cases = ['missing', 'empty', 'folder', 'text', 'truncated', 'image-is-folder'] as const;
    const results: ('accepted' | 'rejected')[] = [];
    for (const c of cases) {
      const r = join(root, `refuge-${c}`);
      const dir = join(r, 'Training-400', 'g0001');
      mkdirSync(dir, { recursive: true });
      if (c === 'image-is-folder') mkdirSync(join(dir, 'g0001.jpg'));
      else writeFileSync(join(dir, 'g0001.jpg'), encodeJpeg(rgb(16, 16)));
      const { cup, disc } = refugeMaskPaths(dir, 'g0001');
      const png = encodePng(grey(16, 16));
      for (const f of [...cup, ...disc]) writeFileSync(f, png);
      const victim = cup[3]!;
      if (c === 'missing') {
        const { rmSync } = await import('node:fs');
        rmSync(victim);
      } else if (c === 'empty') writeFileSync(victim, '');
      else if (c === 'folder') {
        const { rmSync } = await import('node:fs');
        rmSync(victim);
        mkdirSync(victim);
      } else if (c === 'text') writeFileSync(victim, 'not a mask\n');
      else if (c === 'truncated') writeFileSync(victim, png.subarray(0, png.length - 20));
      const o = await hostileCaseAsync(r, async () => {
        const ds = await openRefuge(r, { imageSize: 32, outSize: 8 });
        return ds.get(0);
      });
      expect(o.ok, c).toBe(false);
      if (!o.ok) expect(o.error.message, c).toContain(c === 'image-is-folder' ? 'g0001' : victim);
      results.push(verdict(o));
    }
  });
});
