// The adapter method under the law suite as `peft verify adapter` runs it:
// every law holds, the merge laws say why they do not apply, identity at init
// is skipped where the config does not promise it, and no tensor leaks.
import { describe, expect, it } from 'vitest';
import { LawTally, Registry, Subject, formatLawResult, methodLaws, tf, trainStep, verifyMethod } from '../../src/index.js';
import { adapterMethod, register } from './index.js';

const registry = new Registry();
register(registry);

describe('adapter under peft verify', () => {
  it('passes every law on configs drawn from its schema; the merge laws are skipped (no merge)', async () => {
    const out = await verifyMethod(registry, 'adapter', { numRuns: 6, seed: 5 });
    expect(out.results.filter((r) => !r.ok).map(formatLawResult)).toEqual([]);
    const skipped = out.results.filter((r) => r.skipped);
    expect(skipped.map((r) => r.law)).toEqual(['merge then unmerge restores every weight bit for bit', 'merged forward equals unmerged forward']);
    for (const r of skipped) expect(r.skipped).toMatch(/declares no merge/);
  });

  it('skips identity at init when the config does not promise it', async () => {
    const [identity] = methodLaws(adapterMethod, { config: { zero_init: false } });
    const r = await identity!.run({ numRuns: 3, seed: 1 });
    expect(r.ok).toBe(true);
    expect(r.skipped).toMatch(/zero_init/);
  });

  it('leaks no tensor across training steps', () => {
    const s = Subject.create(adapterMethod, { seed: 2, depth: 2, dim: 6, hidden: 8, batch: 2, tokens: 3 }, {}, new LawTally());
    s.compose(new LawTally());
    const upstream = tf.randomUniform([2, 3, 6], -1, 1, 'float32', 1);
    trainStep(s, upstream, 1);
    const before = tf.memory().numTensors;
    for (let t = 2; t <= 5; t++) trainStep(s, upstream, t);
    expect(tf.memory().numTensors).toBe(before);
    upstream.dispose();
    s.dispose();
  });
});
