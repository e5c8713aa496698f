// Plugins that never return (issue 19, class 10). A plugin that loops at
// import or in register(), whose top-level await never settles, or that ends
// the process while loading used to hang every command (or exit 13 without a
// word); one that leaves a promise to reject later printed a raw stack. Each
// is probed in a worker with a time limit (PEFT_PLUGIN_TIMEOUT_MS, short
// here), so `peft list` still lists the built-ins, exits 0 and names the
// plugin in one warning line, within the limit plus the CLI's start; `peft
// plugins link` refuses it with one line (exit 2).
import { describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { recordTable } from '../support/fuzz-harness.js';
import { inPool, peftTimed } from '../support/cli-timed.js';

const tmp = mkdtempSync(join(tmpdir(), 'peft-hangs-'));
const LIMIT_MS = 1500;
const BUILT_INS = ['sam', 'mobile_sam', 'efficient_sam', 'lora', 'adapter', 'adalora'];

function plugin(name: string, source: string): string {
  const dir = join(tmp, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, type: 'module', main: 'index.js' }));
  writeFileSync(join(dir, 'index.js'), source);
  return dir;
}

const method = (id: string) => `registry.registerMethod({ id: '${id}', summary: 's', schema: peftjs.z.object({ k: peftjs.z.number().default(1) }), create: () => { throw new Error('unused'); } });`;

/** [name, source, what its one warning must say] */
const cases: [string, string, RegExp][] = [
  ['spins-at-import', `while (true) {}\nexport function register() {}`, /did not finish loading within 1\.5 s/],
  ['spins-in-register', `export function register(registry, peftjs) { ${method('spin_method')} for (;;) {} }`, /did not finish loading within 1\.5 s/],
  ['await-never-settles', `await new Promise(() => {});\nexport function register() {}`, /never finished loading: a top-level await or a promise from register\(\) that can never settle/],
  ['register-never-settles', `export function register(registry, peftjs) { ${method('slow_method')} return new Promise(() => {}); }`, /never finished loading/],
  ['exits-at-import', `process.exit(7);\nexport function register() {}`, /called process\.exit\(7\) while loading/],
  ['allocates-forever', `const keep = []; for (;;) keep.push(new Array(1e6).fill(1));\nexport function register() {}`, /did not finish loading within|ran out of memory/],
  // rejected after the probe's window: the command's own handler names the plugin
  ['rejects-late', `export function register(registry, peftjs) { ${method('late_method')} setTimeout(() => { Promise.reject(new Error('late \\x1b[31mboom')); }, 900); }`, /plugin 'rejects-late' left a promise that rejected unhandled \(late \\u001b\[31mboom\); the command goes on/],
];

describe('plugins that never return', () => {
  it(`${cases.length} plugins that hang, exit or reject late: one warning naming each, within the ${LIMIT_MS / 1000} s limit (+ start), built-ins intact`, async () => {
    const t0 = performance.now();
    const dirs = cases.map(([name, source]) => plugin(name, source));
    const env = { PEFT_PLUGIN_TIMEOUT_MS: String(LIMIT_MS), PEFT_PLUGINS: '', PEFT_CONFIG_DIR: join(tmp, 'config') };
    const runs = await inPool(dirs, 2, (dir) => peftTimed(['list', '--plugin', dir], { env, timeoutMs: 30_000 }));
    const problems: string[] = [];
    cases.forEach(([name, , want], i) => {
      const r = runs[i]!;
      const warnings = r.stderr.trim().split('\n').filter(Boolean);
      if (r.timedOut) problems.push(`${name}: peft list still running after 30 s`);
      else if (r.code !== 0) problems.push(`${name}: exit ${r.code}: ${r.stderr.slice(0, 300)}`);
      else {
        for (const b of BUILT_INS) if (!new RegExp(`^${b}\\s`, 'm').test(r.stdout)) problems.push(`${name}: built-in '${b}' missing from peft list`);
        if (warnings.length !== 1 || !warnings[0]!.startsWith(`peft: warning: plugin '${name}' `) || !want.test(warnings[0]!)) problems.push(`${name}: expected one warning naming it (${want}), got ${JSON.stringify(warnings)}`);
        if (r.stderr.includes('\x1b')) problems.push(`${name}: an escape character on stderr`);
        // startup of the CLI on two shared cores, plus the limit (twice: the probe, then nothing else may wait)
        if (r.ms > LIMIT_MS + 12_000) problems.push(`${name}: took ${Math.round(r.ms)} ms`);
      }
    });
    recordTable('plugins', 'plugins that spin, never settle, exit or reject late: one warning, within the time limit', problems.length ? ['failed'] : cases.map(() => 'rejected'), (performance.now() - t0) / 1000);
    expect(problems, problems.join('\n')).toEqual([]);
  }, 300_000);

  it('the same through PEFT_PLUGINS, and `peft plugins link` refuses a spinning plugin with one line', async () => {
    const spin = plugin('spins-linked', `export function register() { while (true) {} }`);
    const env = { PEFT_PLUGIN_TIMEOUT_MS: String(LIMIT_MS), PEFT_CONFIG_DIR: join(tmp, 'config-link') };
    const [viaEnv, link] = await Promise.all([
      peftTimed(['list'], { env: { ...env, PEFT_PLUGINS: spin }, timeoutMs: 30_000 }),
      peftTimed(['plugins', 'link', spin], { env: { ...env, PEFT_PLUGINS: '' }, timeoutMs: 30_000 }),
    ]);
    expect(viaEnv.timedOut).toBe(false);
    expect(viaEnv.code, viaEnv.stderr).toBe(0);
    expect(viaEnv.stderr.trim()).toMatch(/^peft: warning: plugin 'spins-linked' failed to load: it did not finish loading within 1\.5 s/);
    expect(link.timedOut).toBe(false);
    expect(link.code, link.stderr).toBe(2);
    expect(link.stderr.trim().split('\n')).toHaveLength(1);
    expect(link.stderr).toMatch(/^peft: error: plugin 'spins-linked' was not linked: it did not finish loading within 1\.5 s/);
  }, 120_000);
});
