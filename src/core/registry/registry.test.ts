import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { Registry } from './registry.js';
import { PeftError } from '../errors.js';
import { registerToys } from '../../../test/support/toy-plugins.js';
import { closest, editDistance } from './closest.js';
import { describeConfig } from './config.js';
import { compose } from '../peft/compose.js';
import { BUILT_IN, peftjsVersion, pluginThatMade, usedPluginsOf } from './provenance.js';

async function toyRegistry() {
  const r = new Registry();
  await r.load('toy test plugin', registerToys);
  return r;
}

describe('Registry', () => {
  it('lists and resolves by id and alias, case-insensitively', async () => {
    const r = await toyRegistry();
    expect(r.backbones().map((b) => b.id)).toEqual(['toy']);
    expect(r.methods().map((m) => m.id)).toEqual(['scale']);
    expect(r.method('TOY_SCALE').id).toBe('scale');
    expect(r.originOf('scale')).toBe('toy test plugin');
  });

  it('an unknown id lists the known ones and suggests the closest', async () => {
    const r = await toyRegistry();
    expect(() => r.method('scal')).toThrow(PeftError);
    expect(() => r.method('scal')).toThrow("unknown method 'scal' (known: scale); did you mean 'scale'?");
    expect(() => r.any('nosuch')).toThrow(/unknown plugin 'nosuch' \(known: scale, toy\)$/);
  });

  it('refuses a duplicate id or alias, naming both plugins', async () => {
    const r = await toyRegistry();
    const dup = { id: 'other', aliases: ['scale'], summary: '', schema: z.object({}), create: () => { throw new Error(); } };
    await expect(r.load('plugin-x', (reg) => reg.registerMethod(dup))).rejects.toThrow(
      "method 'scale' from plugin-x is already registered by toy test plugin",
    );
    expect(r.methods()).toHaveLength(1);
  });

  it('validates configs against the schema with the key named', async () => {
    const r = await toyRegistry();
    expect(() => r.createBackbone('toy', 'small', { width: 0 })).toThrow(/backbone 'toy' preset 'small': invalid config 'width'/);
    expect(() => r.createBackbone('toy', 'small', { depth: 3 })).toThrow(/unknown key\(s\) depth/);
    expect(() => r.createBackbone('toy', 'huge')).toThrow("unknown preset of backbone 'toy' 'huge' (known: small, wide)");
    expect(r.createBackbone('toy', 'wide').model.namedParameters().length).toBe(6);
  });

  it('describes config keys for `peft info`', async () => {
    const r = await toyRegistry();
    expect(describeConfig(r.method('scale').schema)).toEqual([
      { key: 'targets', type: 'string[]', default: ['mlp.*'], description: 'site roles to scale' },
    ]);
  });

  it('uses its own tsyringe child container: two registries do not share plugins', async () => {
    const a = await toyRegistry();
    const b = new Registry();
    expect(a.methods()).toHaveLength(1);
    expect(b.methods()).toHaveLength(0);
  });
});

describe('provenance and the API handed to plugins', () => {
  const external = { name: 'toy-pack', version: '2.3.4', path: '/plugins/toy-pack' };

  it('records the plugin that provided each id, and which plugin made each backbone and method', async () => {
    const r = new Registry();
    await r.load(external, registerToys);
    expect(r.provenance('method', 'scale')).toEqual(external);
    expect(r.provenance('method', 'TOY_SCALE')).toEqual(external);
    expect(r.provenance('backbone', 'toy')).toEqual(external);
    expect(r.provenance('backbone', 'scale')).toBeUndefined();
    expect(r.provenance('method', 'nosuch')).toBeUndefined();
    expect(r.originOf('scale')).toBe("plugin 'toy-pack'");
    expect(r.has('method', 'toy_scale')).toBe(true);
    expect(r.has('method', 'toy')).toBe(false);
    const backbone = r.createBackbone('toy', 'small');
    const method = r.createMethod('scale');
    expect(pluginThatMade(backbone)).toEqual(external);
    expect(usedPluginsOf({ method, backbone })).toEqual({ method: external, backbone: external });
    backbone.model.dispose();
    // a copy: a caller cannot change what the registry holds
    r.provenance('method', 'scale')!.name = 'changed';
    expect(r.provenance('method', 'scale')!.name).toBe('toy-pack');
  });

  it('a built-in records path built-in and peftjs\'s own version; a plain origin name records nothing', async () => {
    const r = new Registry();
    await r.load({ name: 'toys', path: BUILT_IN }, registerToys);
    expect(peftjsVersion()).toMatch(/^\d+\.\d+\.\d+/);
    expect(r.provenance('method', 'scale')).toEqual({ name: 'toys', version: peftjsVersion(), path: BUILT_IN });
    expect(r.originOf('scale')).toBe("built-in plugin 'toys'");
    const plain = await toyRegistry();
    expect(plain.provenance('method', 'scale')).toBeUndefined();
    expect(pluginThatMade(plain.createMethod('scale'))).toBeUndefined();
  });

  it('a rolled-back plugin leaves no provenance, and a duplicate names both plugins', async () => {
    const r = new Registry();
    await r.load(external, registerToys);
    const other = { name: 'other-pack', path: '/plugins/other' };
    const dup = { id: 'scale2', aliases: ['scale'], summary: '', schema: z.object({}), create: () => { throw new Error(); } };
    await expect(r.load(other, (reg) => reg.registerMethod(dup))).rejects.toThrow("method 'scale' from plugin 'other-pack' is already registered by plugin 'toy-pack'");
    r.unregisterOrigin("plugin 'toy-pack'");
    expect(r.provenance('method', 'scale')).toBeUndefined();
    await r.load(other, registerToys);
    expect(r.provenance('method', 'scale')).toEqual(other);
  });

  it('hands register the API it was created with; without one, using it is a clear error', async () => {
    const api = { z } as never;
    const seen: unknown[] = [];
    await new Registry({ api }).load('p', (_reg, peftjs) => void seen.push(peftjs));
    expect(seen[0]).toBe(api);
    const bare = new Registry();
    await expect(bare.load('p', (_reg, peftjs) => void (peftjs as { z: unknown }).z)).rejects.toThrow(
      "the plugin used peftjs.z, but this registry was created without the host's public API (new Registry({ api }))",
    );
    // awaiting it or inspecting it does not throw
    await bare.load('q', async (_reg, peftjs) => void (await Promise.resolve(peftjs)));
  });
});

describe('closest', () => {
  it('edit distance is a metric on samples', () => {
    expect(editDistance('dora', 'droa')).toBe(2);
    expect(editDistance('', 'abc')).toBe(3);
    expect(closest('bofft', ['dora', 'boft', 'oft'])).toBe('boft');
    expect(closest('xyz', ['dora', 'boft'])).toBeUndefined();
  });
});

describe('compose', () => {
  it('freezes the backbone, injects the method, trains method + decoder, and reports counts', async () => {
    const r = await toyRegistry();
    const backbone = r.createBackbone('toy', 'small');
    const method = r.createMethod('scale', { targets: ['mlp.fc2'] });
    const pm = compose(backbone, method);
    const trainable = pm.trainable().map(([k]) => k);
    expect(trainable).toEqual(['image_encoder.fc2.scale', 'mask_decoder.weight', 'mask_decoder.bias']);
    const rep = pm.report();
    expect(rep.methodParameters).toBe(method.parameterCount(pm.sites[0]!));
    expect(rep.trainableParameters).toBe(4 + 4 + 1);
    expect(rep.totalParameters).toBe(3 * 4 + 4 + 4 * 4 + 4 + 4 + 4 + 1);
    expect(pm.methodKeys).toEqual(['image_encoder.fc2.scale']);
    const frozen = compose(r.createBackbone('toy', 'small'), r.createMethod('scale'), { trainDecoder: false });
    expect(frozen.trainable().map(([k]) => k)).toEqual(['image_encoder.fc1.scale', 'image_encoder.fc2.scale']);
  });

  it('a target that matches nothing is an error listing the roles', async () => {
    const r = await toyRegistry();
    const method = r.createMethod('scale', { targets: ['attn.qkv'] });
    expect(() => compose(r.createBackbone('toy'), method)).toThrow("scale: target 'attn.qkv' matches no site (roles here: mlp.fc1, mlp.fc2)");
  });
});
