import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROBE_CACHE_FILE, pluginTimeoutMs, probePlugin } from './probe.js';

const tmp = mkdtempSync(join(tmpdir(), 'peft-probe-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A plugin whose every import appends a line to a log beside it, so the test sees when it was probed. */
function countingPlugin(name: string, body = 'export function register() {}'): { dir: string; entry: string; imports: () => number } {
  const dir = join(tmp, name);
  mkdirSync(dir, { recursive: true });
  const log = join(tmp, `${name}-imports.log`); // outside the folder: the fingerprint covers the folder
  const entry = join(dir, 'index.js');
  writeFileSync(entry, `import { appendFileSync } from 'node:fs';\nappendFileSync(${JSON.stringify(log)}, 'x\\n');\n${body}\n`);
  return { dir, entry, imports: () => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean).length : 0) };
}

describe('probePlugin', () => {
  it('stops a spinning plugin at the time limit, and a good one is probed once until its files change', async () => {
    const spin = countingPlugin('spin', 'export function register() { for (;;) {} }');
    const t0 = performance.now();
    expect(await probePlugin([{ entry: spin.entry, contract: 'register' }], { timeoutMs: 300, root: spin.dir })).toMatch(/did not finish loading within 0\.3 s/);
    expect(performance.now() - t0).toBeLessThan(3000);

    const cacheDir = join(tmp, 'cache');
    const good = countingPlugin('good');
    const probe = () => probePlugin([{ entry: good.entry, contract: 'register' }], { timeoutMs: 5000, cacheDir, root: good.dir });
    expect(await probe()).toBeUndefined();
    expect(good.imports()).toBe(1);
    expect(existsSync(join(cacheDir, PROBE_CACHE_FILE))).toBe(true);
    expect(await probe()).toBeUndefined();
    expect(good.imports()).toBe(1); // remembered: not imported again
    // a file of the plugin changes: probed again
    writeFileSync(join(good.dir, 'helper.js'), 'export const x = 1;\n');
    expect(await probe()).toBeUndefined();
    expect(good.imports()).toBe(2);
    // a damaged cache is only a cache
    writeFileSync(join(cacheDir, PROBE_CACHE_FILE), '{ not json');
    expect(await probe()).toBeUndefined();
    expect(good.imports()).toBe(3);
  }, 30_000);

  it('reads its time limit from PEFT_PLUGIN_TIMEOUT_MS', () => {
    expect(pluginTimeoutMs({})).toBe(10_000);
    expect(pluginTimeoutMs({ PEFT_PLUGIN_TIMEOUT_MS: '250' })).toBe(250);
    expect(() => pluginTimeoutMs({ PEFT_PLUGIN_TIMEOUT_MS: '0' })).toThrow(/PEFT_PLUGIN_TIMEOUT_MS must be a positive whole number/);
    expect(() => pluginTimeoutMs({ PEFT_PLUGIN_TIMEOUT_MS: 'soon' })).toThrow(/got 'soon'/);
  });
});
