// AdaLoRA's importance averages (the training state): updates chain core
// sensitivityEma per key, scores are ipt * unc (zeros before an update or
// after a shape change), state() / loadState() round-trip by copy, bad states
// and gradients are named, and no tensor is left behind.
import { describe, expect, it } from 'vitest';
import { Parameter, PeftError, sensitivityEma, tf } from '../../src/index.js';
import { ImportanceAverages } from './importance.js';

const values = (t: tf.Tensor) => [...t.dataSync()];

describe('ImportanceAverages', () => {
  it('chains core sensitivityEma per key, from zeros', () => {
    const avg = new ImportanceAverages(0.85, 0.9);
    const p = new Parameter(tf.tensor2d([1, -2, 3, 0.5], [2, 2]));
    const g1 = tf.tensor2d([0.5, 0.25, -1, 2], [2, 2]);
    const g2 = tf.tensor2d([-0.1, 0.3, 0.2, 1], [2, 2]);
    avg.update('l.lora_A', p, g1);
    avg.update('l.lora_A', p, g2);
    const first = sensitivityEma(p.variable, g1, undefined, undefined, 0.85, 0.9);
    const second = sensitivityEma(p.variable, g2, first.ema, first.unc, 0.85, 0.9);
    const state = avg.state();
    expect([...state.keys()]).toEqual(['ipt/l.lora_A', 'unc/l.lora_A']);
    expect(values(state.get('ipt/l.lora_A')!)).toEqual(values(second.ema));
    expect(values(state.get('unc/l.lora_A')!)).toEqual(values(second.unc));
    const score = avg.score('l.lora_A', p);
    const want = tf.mul(second.ema, second.unc);
    expect(values(score)).toEqual(values(want));
    tf.dispose([g1, g2, first.ema, first.unc, second.ema, second.unc, score, want]);
    avg.dispose();
    p.dispose();
  });

  it('scores zeros for an unseen key and restarts a key whose parameter changed shape', () => {
    const avg = new ImportanceAverages(0.5, 0.5);
    const p = new Parameter(tf.ones([3, 1]));
    const unseen = avg.score('x', p);
    expect(values(unseen)).toEqual([0, 0, 0]);
    const g = tf.ones([3, 1]);
    avg.update('x', p, g);
    const pruned = new Parameter(tf.ones([2, 1]));
    const stale = avg.score('x', pruned);
    expect(values(stale)).toEqual([0, 0]);
    const g2 = tf.ones([2, 1]);
    avg.update('x', pruned, g2);
    // from zeros: ipt = 0.5 |p g|, unc = 0.5 |ipt_raw - ipt|
    expect(values(avg.state().get('ipt/x')!)).toEqual([0.5, 0.5]);
    expect(values(avg.state().get('unc/x')!)).toEqual([0.25, 0.25]);
    tf.dispose([unseen, stale, g, g2]);
    avg.dispose();
    p.dispose();
    pruned.dispose();
  });

  it('loads a saved state by copy, and names what is missing or mismatched', () => {
    const avg = new ImportanceAverages(0.85, 0.85);
    const p = new Parameter(tf.tensor1d([1, 2]));
    const g = tf.tensor1d([3, -4]);
    avg.update('k', p, g);
    const saved = new Map([...avg.state()].map(([k, t]) => [k, t.clone()]));
    const other = new ImportanceAverages(0.85, 0.85);
    other.loadState(saved);
    tf.dispose([...saved.values()]);
    expect(values(other.state().get('ipt/k')!)).toEqual(values(avg.state().get('ipt/k')!));
    expect(values(other.state().get('unc/k')!)).toEqual(values(avg.state().get('unc/k')!));
    const t = tf.ones([2]);
    expect(() => other.loadState(new Map([['ipt/a', t]]))).toThrow(/ipt\/a but no unc\/a/);
    expect(() => other.loadState(new Map([['unc/b', t]]))).toThrow(/unc\/b but no ipt\/b/);
    const t3 = tf.ones([3]);
    expect(() => other.loadState(new Map([['ipt/c', t], ['unc/c', t3]]))).toThrow(/ipt\/c is \[2\] but unc\/c is \[3\]/);
    // a refused state leaves the loaded one in place
    expect(other.size).toBe(1);
    expect(() => avg.update('k', p, t3)).toThrow(PeftError);
    expect(() => avg.update('k', p, t3)).toThrow(/gradient of 'k' has shape \[3\], the parameter \[2\]/);
    tf.dispose([g, t, t3]);
    avg.dispose();
    other.dispose();
    p.dispose();
  });

  it('leaves no tensor behind across updates, loads and dispose', () => {
    const p = new Parameter(tf.ones([4, 3]));
    const g = tf.ones([4, 3]);
    const before = tf.memory().numTensors;
    const avg = new ImportanceAverages(0.85, 0.85);
    for (let i = 0; i < 4; i++) avg.update('a', p, g);
    avg.loadState(avg.state());
    avg.dispose();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose(g);
    p.dispose();
  });
});
