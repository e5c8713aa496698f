// The message for an id no loaded plugin registers: from the provenance a
// file recorded, which plugin to load and how; never a guess at a near id.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { registerToys } from '../../../test/support/toy-plugins.js';
import { PeftError } from '../errors.js';
import { ADAPTER_CONFIG_FILE, ADAPTER_FORMAT, ADAPTER_WEIGHTS_FILE } from '../io/adapter-files.js';
import { serializeSafetensors } from '../io/safetensors.js';
import { BUILT_IN, peftjsVersion, provenanceMetadata } from '../registry/provenance.js';
import { Registry } from '../registry/registry.js';
import { pluginNeeds, requireAdapterPlugins, requirePlugins, usedPlugins } from './require-plugins.js';

const tmp = mkdtempSync(join(tmpdir(), 'peftjs-require-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const toyPlugin = { name: 'toy-pack', version: '1.0.0', path: '/plugins/toy-pack' };

async function toys(): Promise<Registry> {
  const r = new Registry();
  await r.load(toyPlugin, registerToys);
  return r;
}

/** The PeftError message of `fn`, or a failure. */
function messageOf(fn: () => void): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(PeftError);
    return (err as Error).message;
  }
  throw new Error('expected a PeftError');
}

describe('requirePlugins', () => {
  it('passes when every id is registered (by id or alias), whichever plugin registers it now', async () => {
    const r = await toys();
    const elsewhere = { name: 'another', path: '/elsewhere' };
    expect(() => requirePlugins(r, "run 'x'", pluginNeeds({ backbone: 'toy', method: 'toy_scale' }, { method: elsewhere }))).not.toThrow();
    expect(usedPlugins(r, { backbone: 'toy', method: 'toy_scale' })).toEqual({ backbone: toyPlugin, method: toyPlugin });
  });

  it('names the plugin a file recorded, its version and folder, and how to load it', async () => {
    const r = await toys();
    const dir = join(tmp, 'peftjs-dora');
    mkdirSync(dir, { recursive: true });
    const dora = { name: 'peftjs-dora', version: '0.1.0', path: dir };
    const msg = messageOf(() => requirePlugins(r, "run 'runs/x'", pluginNeeds({ backbone: 'toy', method: 'dora' }, { backbone: toyPlugin, method: dora })));
    expect(msg).toBe(
      `run 'runs/x' needs method 'dora' from plugin 'peftjs-dora' 0.1.0 (${dir}), which is not loaded: add --plugin ${dir}, set PEFT_PLUGINS, or run 'peft plugins link ${dir}'`,
    );
    expect(msg).not.toMatch(/did you mean/);
  });

  it('a recorded folder that is gone, a built-in of another peftjs, and a file without provenance each get their own words', async () => {
    const r = await toys();
    const gone = messageOf(() => requirePlugins(r, "run 'a'", pluginNeeds({ method: 'dora' }, { method: { name: 'peftjs-dora', path: '/no/such/dir' } })));
    expect(gone).toBe("run 'a' needs method 'dora' from plugin 'peftjs-dora' (/no/such/dir), which is not loaded: /no/such/dir no longer exists: install the plugin, then add --plugin <its folder>, set PEFT_PLUGINS, or run 'peft plugins link <its folder>'");
    const builtIn = messageOf(() => requirePlugins(r, "run 'b'", pluginNeeds({ method: 'vera' }, { method: { name: 'method-vera', version: '9.0.0', path: BUILT_IN } })));
    expect(builtIn).toBe(`run 'b' needs method 'vera' from the built-in plugin 'method-vera' of peftjs 9.0.0, which this peftjs (${peftjsVersion()}) does not have`);
    // an old run.json: no provenance, and no guess at a near id ('scal' is one edit from 'scale')
    const old = messageOf(() => requirePlugins(r, "run 'c'", pluginNeeds({ backbone: 'toy', method: 'scal' })));
    expect(old).toBe("run 'c' needs method 'scal', which no loaded plugin registers (loaded methods: scale); load the plugin that provides it: add --plugin <its folder>, set PEFT_PLUGINS, or run 'peft plugins link <its folder>'");
    // both missing: one line naming both
    const both = messageOf(() => requirePlugins(new Registry(), "run 'd'", pluginNeeds({ backbone: 'toy', method: 'scale' }, { backbone: toyPlugin })));
    expect(both).toMatch(/^run 'd' needs backbone 'toy' from plugin 'toy-pack' 1\.0\.0 \(\/plugins\/toy-pack\), which is not loaded: .*; and method 'scale', which no loaded plugin registers \(loaded methods: none\)/);
    expect(both.split('\n')).toHaveLength(1);
  });
});

describe('requireAdapterPlugins', () => {
  const dora = { name: 'peftjs-dora', version: '0.1.0', path: '/x/peftjs-dora' };

  it('reads a peftjs adapter config, with or without provenance', async () => {
    const r = await toys();
    const dir = join(tmp, 'adapter-peftjs');
    mkdirSync(dir, { recursive: true });
    const config = { format: ADAPTER_FORMAT, version: 1, method: 'dora', config: {}, backbone: { id: 'toy', preset: 'small' }, sites: [], state: {}, method_tensors: [], trainable_tensors: [] };
    writeFileSync(join(dir, ADAPTER_CONFIG_FILE), JSON.stringify({ ...config, plugins: { method: dora } }));
    expect(messageOf(() => requireAdapterPlugins(r, dir))).toMatch(new RegExp(`^adapter '${dir}' needs method 'dora' from plugin 'peftjs-dora' 0\\.1\\.0 \\(/x/peftjs-dora\\), which is not loaded`));
    writeFileSync(join(dir, ADAPTER_CONFIG_FILE), JSON.stringify(config));
    expect(messageOf(() => requireAdapterPlugins(r, dir))).toMatch(/needs method 'dora', which no loaded plugin registers/);
    writeFileSync(join(dir, ADAPTER_CONFIG_FILE), JSON.stringify({ ...config, method: 'scale' }));
    expect(() => requireAdapterPlugins(r, dir)).not.toThrow();
  });

  it("reads a Hugging Face PEFT adapter's weights metadata; other folders are left to the loader", async () => {
    const r = await toys();
    const dir = join(tmp, 'adapter-hf');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, ADAPTER_CONFIG_FILE), JSON.stringify({ peft_type: 'LORA', use_dora: true }));
    // written without a registry: the metadata has the ids only
    writeFileSync(join(dir, ADAPTER_WEIGHTS_FILE), serializeSafetensors(new Map(), { format: 'pt', ...provenanceMetadata({ method: { id: 'dora' } }), 'peftjs.plugins': JSON.stringify({ method: dora }) }));
    expect(messageOf(() => requireAdapterPlugins(r, dir))).toMatch(/^adapter '.*' needs method 'dora' from plugin 'peftjs-dora' 0\.1\.0/);
    // PEFT's own files carry no peftjs metadata: nothing to check here
    writeFileSync(join(dir, ADAPTER_WEIGHTS_FILE), serializeSafetensors(new Map(), { format: 'pt' }));
    expect(() => requireAdapterPlugins(r, dir)).not.toThrow();
    expect(() => requireAdapterPlugins(r, join(tmp, 'nothing-here'))).not.toThrow();
  });
});
