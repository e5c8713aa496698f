import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { registerToys } from '../../../test/support/toy-plugins.js';
import { Registry } from './registry.js';

const method = (id: string) => ({ id, summary: id, schema: z.object({}), create: () => { throw new Error('unused'); } });

describe('Registry.unregisterOrigin', () => {
  it('removes everything one plugin registered, keeps the others in order', async () => {
    const r = new Registry();
    await r.load('toys', registerToys);
    await r.load('p1', (reg) => {
      reg.registerMethod(method('m1'));
      reg.registerParityKind({ kind: 'k1', run: async () => ({ tensors: new Map() }) });
    });
    await r.load('p2', (reg) => reg.registerMethod(method('m2')));
    expect(r.registeredBy('p1')).toEqual({ backbones: [], methods: ['m1'], parityKinds: ['k1'] });
    expect(r.unregisterOrigin('p1')).toBe(2);
    expect(r.methods().map((m) => m.id)).toEqual(['scale', 'm2']);
    expect(r.backbones().map((b) => b.id)).toEqual(['toy']);
    expect(r.parityKinds()).toEqual([]);
    expect(r.originOf('m1')).toBeUndefined();
    expect(r.originOf('m2')).toBe('p2');
    // the id is free again
    await r.load('p3', (reg) => reg.registerMethod(method('m1')));
    expect(r.originOf('m1')).toBe('p3');
    expect(r.unregisterOrigin('nobody')).toBe(0);
  });

  it('rolls back a plugin that fails half-way', async () => {
    const r = new Registry();
    await r.load('toys', registerToys);
    await expect(
      r.load('half', (reg) => {
        reg.registerMethod(method('ok_one'));
        reg.registerMethod(method('scale'));
      }),
    ).rejects.toThrow("method 'scale' from half is already registered by toys");
    expect(r.methods().map((m) => m.id)).toEqual(['scale', 'ok_one']);
    r.unregisterOrigin('half');
    expect(r.methods().map((m) => m.id)).toEqual(['scale']);
  });
});
