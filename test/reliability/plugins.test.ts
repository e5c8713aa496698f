// External plugins that misbehave cannot break the built-ins: a plugin that
// throws (at import or in register, before or after registering something),
// registers an id or alias a built-in has, violates the definition contract
// (no zod schema, a schema that throws, a backbone preset its own schema
// rejects), or never finishes registering. `peft list --plugin <dir>` still
// lists every built-in, `peft plan` still composes sam + lora, the plugin's
// registrations are all rolled back, and one warning line names the plugin.
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { recordTable } from '../support/fuzz-harness.js';

const bin = fileURLToPath(new URL('../../bin/run.js', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'peft-bad-plugins-'));
const BUILT_INS = ['sam', 'mobile_sam', 'efficient_sam', 'lora', 'adapter', 'adalora'];

/** A plugin folder named `name` whose index.js is `source`. */
function plugin(name: string, source: string): string {
  const dir = join(tmp, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, type: 'module', main: 'index.js' }));
  writeFileSync(join(dir, 'index.js'), source);
  return dir;
}

const okMethod = (id: string, extra = '') => `registry.registerMethod({ id: '${id}', summary: 's', schema: peftjs.z.object({ k: peftjs.z.number().default(1) }), create: () => { throw new Error('unused'); } ${extra} });`;

/**
 * Whose fix lies in src/core/plugins (another engineer's, in progress): run and
 * reported in docs/reliability.md, not failed on. A register() that never
 * settles leaves the CLI with an unsettled top-level await: exit 13, nothing listed.
 */
const knownOpen = new Set<string>(); // the never-settling register() is now timed out by src/core/plugins

/** [plugin name, source, an id it tried to register that must not remain (or null)] */
const cases: [string, string, string | null][] = [
  ['peft-throws-at-import', `throw new Error('boom at import');\nexport function register() {}`, null],
  ['peft-syntax-error', `export function register( {`, null],
  ['peft-throws-in-register', `export function register() { throw new Error('boom in register'); }`, null],
  ['peft-throws-after-registering', `export function register(registry, peftjs) { ${okMethod('half_method')} throw new Error('boom after'); }`, 'half_method'],
  ['peft-rejects', `export async function register() { await null; throw new TypeError('async boom'); }`, null],
  ['peft-duplicate-id', `export function register(registry, peftjs) { ${okMethod('lora')} }`, null],
  ['peft-duplicate-alias', `export function register(registry, peftjs) { ${okMethod('my_lora', ", aliases: ['sam_lora']")} }`, 'my_lora'],
  ['peft-no-schema', `export function register(registry) { registry.registerMethod({ id: 'bad_schema', summary: 's', schema: { keys: ['r'] }, create: () => null }); }`, 'bad_schema'],
  ['peft-schema-throws', `export function register(registry) { registry.registerMethod({ id: 'throwing_schema', summary: 's', schema: { safeParse() { throw new Error('no'); } }, create: () => null }); }`, 'throwing_schema'],
  ['peft-bad-preset', `export function register(registry, peftjs) { registry.registerBackbone({ id: 'bad_bb', summary: 's', schema: peftjs.z.object({ depth: peftjs.z.number().int().min(1) }), presets: { tiny: { depth: 0 } }, defaultPreset: 'tiny', create: () => null }); }`, 'bad_bb'],
  ['peft-not-a-function', `export const register = 42;`, null],
  ['peft-never-finishes', `export function register(registry, peftjs) { ${okMethod('slow_method')} return new Promise(() => {}); }`, 'slow_method'],
];

function peft(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string; ms: number; timedOut: boolean }> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const p = spawn(process.execPath, [bin, ...args], { env: { ...process.env, PEFT_BACKEND: 'cpu', PEFT_PLUGINS: '', PEFT_CONFIG_DIR: join(tmp, 'config') } });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      p.kill('SIGKILL');
    }, 30_000);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: performance.now() - t0, timedOut });
    });
  });
}

describe('misbehaving external plugins', () => {
  it(`${cases.length - knownOpen.size} broken plugins leave the built-ins working and are named in one warning line`, async () => {
    const t0 = performance.now();
    const problems: string[] = [];
    const verdicts: ('rejected' | 'failed')[] = [];
    const open: string[] = [];
    const dirs = cases.map(([name, source]) => plugin(name, source));
    // two at a time
    const results: Awaited<ReturnType<typeof peft>>[] = new Array(cases.length);
    let next = 0;
    await Promise.all([0, 1].map(async () => {
      while (next < cases.length) {
        const i = next++;
        results[i] = await peft(['list', '--plugin', dirs[i]!]);
      }
    }));
    cases.forEach(([name, , id], i) => {
      const r = results[i]!;
      const before = problems.length;
      const warnings = r.stderr.trim().split('\n').filter(Boolean);
      if (r.timedOut) problems.push(`${name}: 'peft list' did not finish within 30 s`);
      else if (r.code !== 0) problems.push(`${name}: 'peft list' exit ${r.code}: ${r.stderr.trim().split('\n')[0]}`);
      else {
        for (const b of BUILT_INS) if (!new RegExp(`^${b}\\s`, 'm').test(r.stdout)) problems.push(`${name}: built-in '${b}' missing from peft list`);
        if (warnings.length !== 1 || !warnings[0]!.startsWith(`peft: warning: plugin '${name}' failed to load: `)) problems.push(`${name}: expected one warning line naming it, got ${JSON.stringify(warnings)}`);
        if (id && new RegExp(`^${id}\\s`, 'm').test(r.stdout)) problems.push(`${name}: its '${id}' was not rolled back`);
        if (/\bat .*\.js:\d+/.test(r.stderr)) problems.push(`${name}: a stack trace`);
      }
      if (knownOpen.has(name)) open.push(...problems.splice(before));
      else verdicts.push(problems.length > before ? 'failed' : 'rejected');
    });
    if (open.length) console.warn(`known open (src/core/plugins):\n${open.join('\n')}`);
    recordTable('plugins', 'known open: a register() that never settles (src/core/plugins)', open.length ? ['failed'] : ['rejected'], 0);
    // the built-ins still compose with the worst of them loaded
    const plan = await peft(['plan', '--backbone', 'sam', '--preset', 'tiny', '--method', 'lora', '--json', '--plugin', dirs[5]!, '--plugin', dirs[3]!]);
    if (plan.code !== 0) problems.push(`peft plan with two broken plugins: exit ${plan.code}: ${plan.stderr}`);
    else expect(JSON.parse(plan.stdout).methodConfig.r).toBe(4);
    recordTable('plugins', 'broken external plugins leave the built-ins intact, named in one warning', verdicts, (performance.now() - t0) / 1000);
    expect(problems, problems.join('\n')).toEqual([]);
  }, 300_000);
});
