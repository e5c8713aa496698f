// Products on oneDNN under a storm of signals. oneDNN before 3.11.2 points
// rsp at a heap buffer inside its JIT sgemm kernels, so a signal delivered
// then wrote its frame into the heap: Ctrl-C during `peft train` (CI's stop
// 22: "corrupted size vs. prev_size while consolidating"), a profiler's
// SIGPROF (every run of `node --cpu-prof` aborted). The addon holds the
// asynchronous signals during such a product (native/src/gemm.cc). Here a
// child makes oneDNN products for a second on one and on two threads under
// Node's CPU profiler sampling every 50 us (a SIGPROF each time); without the
// hold it aborted within milliseconds ("malloc(): unaligned tcache chunk
// detected"). Skipped with the reason when the addon or oneDNN is not built.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { built, load, whyNotBuilt } from '../../../test/support/native.js';

const products = built ? load.addon!.info().products : '';
const onDnnl = products.startsWith('oneDNN');
if (!onDnnl) console.log(`native signal test skipped: ${built ? `products on ${products}` : whyNotBuilt}`);
const nativeIndex = createRequire(import.meta.url).resolve('@peftjs/native');

// 192^3 products: above oneDNN's one-thread threshold, and split over the pool on two threads
const CHILD = `
const a = require(process.argv[1]).load();
a.setThreads(Number(process.argv[2]));
const n = 192, x = new Float32Array(n * n).fill(1), y = new Float32Array(n * n);
let calls = 0;
for (const until = Date.now() + 1000; Date.now() < until; calls++) a.gemm(x, x, y, new Int32Array([1, n, n, n, 0, 0, 0, 0, 0, 0, 0, 0]));
if (y.some((v) => v !== n)) throw new Error('wrong product');
console.log(calls + ' products');
`;

describe('native products under signals', () => {
  it.skipIf(!onDnnl).each([1, 2])('oneDNN products on %i thread(s) survive a SIGPROF every 50 us', (threads) => {
    const dir = mkdtempSync(join(tmpdir(), 'peft-signals-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const r = spawnSync(process.execPath, ['--cpu-prof', '--cpu-prof-dir', dir, '--cpu-prof-interval', '50', '-e', CHILD, nativeIndex, String(threads)], {
      encoding: 'utf8',
      timeout: 60_000,
      cwd: dir, // a core dump, should it die, lands in the temp folder
    });
    expect(r.stderr).not.toMatch(/corrupt|tcache|double free|peftjs native: SIG/);
    expect({ status: r.status, signal: r.signal }).toEqual({ status: 0, signal: null });
    expect(r.stdout).toMatch(/^\d+ products/);
  });

  it.skipIf(!onDnnl)('says in the engine line that signals are held, for the oneDNN versions that need it', () => {
    const [major, minor, patch] = (/oneDNN (\d+)\.(\d+)\.(\d+)/.exec(products) ?? []).slice(1).map(Number) as [number, number, number];
    const needs = major < 3 || (major === 3 && (minor < 11 || (minor === 11 && patch < 2)));
    expect(products.includes('signals held during its products')).toBe(needs);
  });
});
