// Provenance through the CLI (bin/run.js, from dist/): a run trained with an
// external plugin records it in run.json and in its checkpoints' adapter
// configs; a later command without the plugin says which plugin to load and
// how, instead of guessing a near id; `peft plugins link` refuses an id that
// a linked plugin already registers.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const bin = join(root, 'bin', 'run.js');
const tmp = mkdtempSync(join(tmpdir(), 'peftjs-provenance-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const peftjsVersion = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
// a copy of the example plugin, so that the test can move it away
const plugin = join(tmp, 'plugins', 'peftjs-ia3');
const ia3 = JSON.parse(readFileSync(join(root, 'examples', 'peftjs-ia3', 'package.json'), 'utf8')) as { name: string; version: string };
const data = join(tmp, 'data');
const runs = join(tmp, 'runs');
const run = join(runs, 'ia3');

/** `peft args` with an empty plugin config (nothing linked) and no PEFT_PLUGINS. */
function peft(...args: string[]) {
  const env: NodeJS.ProcessEnv = { ...process.env, PEFT_BACKEND: 'cpu', PEFT_CONFIG_DIR: join(tmp, 'config'), PEFT_CACHE: join(tmp, 'cache') };
  delete env.PEFT_PLUGINS;
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', cwd: tmp, env, timeout: 300_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** What a command without the plugin must say. */
const notLoaded = (what: string, path = plugin) =>
  `peft: error: ${what} needs method 'ia3' from plugin '${ia3.name}' ${ia3.version} (${path}), which is not loaded: add --plugin ${path}, set PEFT_PLUGINS, or run 'peft plugins link ${path}'\n`;

describe('provenance through the CLI', () => {
  beforeAll(() => {
    cpSync(join(root, 'examples', 'peftjs-ia3'), plugin, { recursive: true, filter: (src) => !src.endsWith('.test.ts') });
    const synth = peft('data', 'synth', '--out', data, '--n', '6', '--size', '64');
    expect(synth.code, synth.stderr).toBe(0);
    const r = peft('train', '--plugin', plugin, '--method', 'ia3', '--data-path', data, '--preset', 'tiny', '--image-size', '64', '--steps', '1', '--batch', '1', '--out', runs, '--exp-name', 'ia3');
    expect(r.code, r.stderr).toBe(0);
  });

  it('run.json and the checkpoint adapter_config.json record the plugins of the method and the backbone', () => {
    const spec = JSON.parse(readFileSync(join(run, 'run.json'), 'utf8')) as { backbone: { id: string }; plugins?: Record<string, unknown> };
    expect(spec.plugins?.method).toEqual({ name: ia3.name, version: ia3.version, path: plugin });
    expect(spec.plugins?.backbone).toMatchObject({ version: peftjsVersion, path: 'built-in' });
    const adapter = JSON.parse(readFileSync(join(run, 'checkpoints', 'last', 'adapter_config.json'), 'utf8')) as { plugins?: unknown };
    expect(adapter.plugins).toEqual(spec.plugins);
  });

  it('eval, export, merge and train --resume without the plugin name it and say how to load it', () => {
    for (const args of [
      ['eval', '--run', run],
      ['export', '--run', run, '--out', join(tmp, 'exported')],
      ['merge', '--run', run, '--out', join(tmp, 'merged.safetensors')],
      ['train', '--resume', '--out', runs, '--exp-name', 'ia3'],
    ]) {
      const r = peft(...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toBe(notLoaded(`run '${run}'`));
    }
    expect(existsSync(join(tmp, 'exported'))).toBe(false);
    // with the plugin, the same run evaluates
    const ok = peft('eval', '--run', run, '--plugin', plugin, '--json');
    expect(ok.code, ok.stderr).toBe(0);
  });

  it('train --adapter with an adapter of a plugin that is not loaded names the plugin', () => {
    const best = join(run, 'checkpoints', 'last');
    const r = peft('train', '--adapter', best, '--data-path', data, '--preset', 'tiny', '--image-size', '64', '--steps', '1', '--out', runs, '--exp-name', 'again');
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(notLoaded(`adapter '${best}'`));
  });

  it('an old run.json without provenance still works, and a missing id gets no guess', () => {
    const path = join(run, 'run.json');
    const spec = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
    delete spec.plugins;
    writeFileSync(path, JSON.stringify(spec));
    const ok = peft('eval', '--run', run, '--plugin', plugin, '--json');
    expect(ok.code, ok.stderr).toBe(0);
    const r = peft('eval', '--run', run);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^peft: error: run '.*' needs method 'ia3', which no loaded plugin registers \(loaded methods: [a-z_, ]+\); load the plugin that provides it: add --plugin <its folder>, set PEFT_PLUGINS, or run 'peft plugins link <its folder>'\n$/);
    expect(r.stderr).not.toMatch(/did you mean/);
  });

  it('a plugin folder that moved away is named, with what to do', () => {
    const checkpoint = join(run, 'checkpoints', 'last');
    const moved = join(tmp, 'plugins', 'moved');
    renameSync(plugin, moved);
    try {
      const r = peft('train', '--adapter', checkpoint, '--data-path', data, '--preset', 'tiny', '--image-size', '64', '--steps', '1', '--out', runs, '--exp-name', 'again');
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`needs method 'ia3' from plugin '${ia3.name}' ${ia3.version} (${plugin}), which is not loaded: ${plugin} no longer exists: install the plugin, then add --plugin <its folder>`);
    } finally {
      renameSync(moved, plugin);
    }
  });
});

describe('peft plugins link', () => {
  it('refuses an id another linked plugin registers, naming both plugins and the id, and keeps plugins.json', () => {
    const linked = peft('plugins', 'link', plugin);
    expect(linked.code, linked.stderr).toBe(0);
    const list = join(tmp, 'config', 'plugins.json');
    const before = readFileSync(list, 'utf8');
    const twin = join(tmp, 'plugins', 'ia3-twin');
    cpSync(plugin, twin, { recursive: true });
    const pkg = JSON.parse(readFileSync(join(twin, 'package.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(twin, 'package.json'), JSON.stringify({ ...pkg, name: 'ia3-twin' }));
    const r = peft('plugins', 'link', twin);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`peft: error: plugin 'ia3-twin' was not linked: method 'ia3' from plugin 'ia3-twin' is already registered by plugin '${ia3.name}'\n`);
    expect(readFileSync(list, 'utf8')).toBe(before);
    // once linked, the plugin is loaded by every command: the run evaluates without --plugin
    const ok = peft('eval', '--run', run, '--json');
    expect(ok.code, ok.stderr).toBe(0);
    expect(peft('plugins', 'unlink', ia3.name).code).toBe(0);
  });
});
