import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry, readSafetensors, runFixture, serializeSafetensors, toFloat32 } from '../../src/index.js';
import { register } from './index.js';
import { FIXTURES } from '../../test/support/fixtures.js';



async function registry(): Promise<Registry> {
  const r = new Registry();
  await r.load('mobile_sam', register);
  return r;
}

describe('parity', () => {
  it('tinyvit_plain (tinyvit.TinyViT, mod none)', async () => {
    const r = await runFixture(join(FIXTURES, 'tinyvit_plain.json'), await registry());
    console.log(`tinyvit_plain: ok=${r.ok} maxAbs=${r.maxAbs} (${r.ms.toFixed(0)} ms)`, r.error ?? '');
    expect(r.error).toBeUndefined();
    expect(r.ok).toBe(true);
  });

  it('mobile_sam_tiny (torch.checkpoint)', async () => {
    const r = await runFixture(join(FIXTURES, 'mobile_sam_tiny.json'), await registry());
    console.log(`mobile_sam_tiny: ok=${r.ok} maxAbs=${r.maxAbs} checks=${r.checks.length} (${r.ms.toFixed(0)} ms)`, r.error ?? '');
    expect(r.error).toBeUndefined();
    expect(r.ok).toBe(true);
    expect(r.checks.length).toBe(132 + 17 + 1);
  });

  it('torch.checkpoint fails on a changed value, a missing key or a wrong integer entry', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'peftjs-ckpt-parity-'));
    const json = JSON.parse(readFileSync(join(FIXTURES, 'mobile_sam_tiny.json'), 'utf8'));
    const twin = readSafetensors(join(FIXTURES, 'mobile_sam_tiny.safetensors')).tensors;
    const entries = new Map(
      [...twin].map(([k, t]) => [k, { dtype: 'F32' as const, shape: t.shape, data: toFloat32(t) }]),
    );
    const write = (name: string, e: typeof entries, config: Record<string, unknown>) => {
      copyFileSync(join(FIXTURES, 'mobile_sam_tiny.pt'), join(dir, `${name}.pt`));
      writeFileSync(join(dir, `${name}.safetensors`), serializeSafetensors(e));
      writeFileSync(join(dir, `${name}.json`), JSON.stringify({ ...json, config: { ...json.config, twin: `${name}.safetensors`, ...config } }));
      return join(dir, `${name}.json`);
    };
    const reg = await registry();
    const changed = new Map(entries);
    const key = 'image_encoder.neck.1.bias';
    const data = Float32Array.from(changed.get(key)!.data);
    data[3]! += 1e-3;
    changed.set(key, { ...changed.get(key)!, data });
    const r1 = await runFixture(write('changed', changed, {}), reg);
    expect(r1.ok).toBe(false);
    expect(r1.checks.find((c) => !c.ok)?.key).toBe(key);

    const extraTwin = new Map(entries);
    extraTwin.set('image_encoder.not_there', { dtype: 'F32', shape: [1], data: Float32Array.of(1) });
    const r2 = await runFixture(write('missing', extraTwin, {}), reg);
    expect(r2.ok).toBe(false);

    const fewer = new Map(entries);
    fewer.delete(key);
    const r3 = await runFixture(write('extra', fewer, {}), reg);
    expect(r3.ok).toBe(false);

    const ints = { ...json.config.non_float_entries, 'image_encoder.neck.0.weight': ['torch.int64', []] };
    const r4 = await runFixture(write('ints', entries, { non_float_entries: ints }), reg);
    expect(r4.ok).toBe(false);
  });
});
