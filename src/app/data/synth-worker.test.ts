// The worker threads of writeSyntheticFundus exist only in the compiled build
// (dist/, which `npm ci` builds): from the TypeScript sources it writes inline.
// These tests run the compiled module and compare its bytes with the inline ones.
import { describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeSyntheticFundus } from './synthetic-fundus.js';

const compiled = fileURLToPath(new URL('../../../dist/src/app/data/synthetic-fundus.js', import.meta.url));
const tmp = () => mkdtempSync(join(tmpdir(), 'peft-synth-workers-'));

function allFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name).slice(dir.length)).sort();
}

describe.skipIf(!existsSync(compiled) && !process.env.CI)('writeSyntheticFundus on worker threads (compiled build)', () => {
  it('writes the same files, bytes and summary on 3 threads as inline', async () => {
    const build = (await import(compiled)) as typeof import('./synthetic-fundus.js');
    const opts = { n: 200, size: 32, seed: 11 };
    const inline = join(tmp(), 'inline');
    const threaded = join(tmp(), 'threaded');
    const a = await writeSyntheticFundus(inline, opts, 1);
    const b = await build.writeSyntheticFundus(threaded, opts, 3);
    expect({ ...b, dir: '' }).toEqual({ ...a, dir: '' });
    const files = allFiles(inline);
    expect(files).toHaveLength(200 * 15 + 1);
    expect(allFiles(threaded)).toEqual(files);
    for (const f of files) expect(readFileSync(join(threaded, f)).equals(readFileSync(join(inline, f))), f).toBe(true);
  });

  it("a worker's failure is one error naming the folder and the cause", async () => {
    const build = (await import(compiled)) as typeof import('./synthetic-fundus.js');
    const dir = join(tmp(), 'out');
    // the last worker's range holds S0150; a file where its folder goes makes it fail
    mkdirSync(join(dir, 'Training-400'), { recursive: true });
    writeFileSync(join(dir, 'Training-400', 'S0150'), 'in the way');
    await expect(build.writeSyntheticFundus(dir, { n: 200, size: 32, seed: 11 }, 3)).rejects.toThrow(new RegExp(`^${dir}: cannot write the synthetic dataset \\((EEXIST|ENOTDIR)\\)$`));
    expect(existsSync(join(dir, 'peft-synth.json'))).toBe(false);
  });
});
