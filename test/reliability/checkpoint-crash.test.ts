// Crash safety of the checkpoint swap, operation by operation. `node:fs` is
// wrapped so that a "crash" can be injected at the n-th file-system call of a
// save: that call and every later one fail (a killed process does nothing
// more, not even its cleanup), which leaves exactly the files a SIGKILL at
// that moment would leave. For every n, a loadable checkpoint must remain,
// holding either the previous state or the new one, and the next save must
// succeed and clean up. The same wrapper injects a full disk (ENOSPC after
// a byte budget): the save must fail with one clear line and leave the
// previous checkpoint intact.
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { cpSync, mkdtempSync, readdirSync, renameSync, rmSync, mkdirSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from '../../src/core/registry/registry.js';
import { compose, type PeftModel } from '../../src/core/peft/compose.js';
import { ToyBackbone } from '../../src/core/testing/toy-backbone.js';
import { register as registerLora } from '../../plugins/method-lora/index.js';
import { Adam } from '../../src/app/train/adam.js';
import { checkpointDir, loadTrainingCheckpoint, readTrainerState, saveTrainingCheckpoint, tidyCheckpoint } from '../../src/app/train/checkpoint.js';
import { RunLog } from '../../src/app/train/run-log.js';
import { PeftError } from '../../src/core/errors.js';
import { recordTable } from '../support/fuzz-harness.js';

const fault = vi.hoisted(() => ({
  /** Count calls and crash at this one (1-based); 0: off. */
  crashAt: 0,
  calls: 0,
  /** After a crash, every call fails. */
  dead: false,
  /** Bytes writeSync/appendFileSync may still write before ENOSPC; -1: unlimited. */
  diskFree: -1,
  trace: [] as string[],
}));

vi.mock('node:fs', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs')>();
  const crash = () => Object.assign(new Error('simulated SIGKILL'), { code: 'SIMULATED_KILL' });
  const enospc = () => Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' });
  const names = ['mkdirSync', 'renameSync', 'rmSync', 'writeSync', 'openSync', 'fsyncSync', 'closeSync', 'appendFileSync', 'truncateSync', 'writeFileSync', 'unlinkSync'] as const;
  const out: Record<string, unknown> = { ...real };
  for (const name of names) {
    const f = real[name] as (...a: unknown[]) => unknown;
    out[name] = (...args: unknown[]) => {
      if (fault.dead) throw crash();
      if (fault.crashAt > 0) {
        fault.calls++;
        fault.trace.push(`${name} ${typeof args[0] === 'string' ? args[0].split('/').slice(-2).join('/') : ''}`);
        if (fault.calls === fault.crashAt) {
          fault.dead = true;
          throw crash();
        }
      }
      if (fault.diskFree >= 0 && (name === 'writeSync' || name === 'appendFileSync' || name === 'writeFileSync')) {
        const data = name === 'writeSync' ? (args[1] as Uint8Array) : args[1];
        let len = typeof data === 'string' ? Buffer.byteLength(data) : (data as Uint8Array).byteLength;
        if (name === 'writeSync' && typeof args[3] === 'number') len = args[3];
        if (fault.diskFree === 0) throw enospc();
        if (len > fault.diskFree) {
          if (name !== 'writeSync') throw enospc();
          // a short write, as the kernel does when the disk fills up
          const n = fault.diskFree;
          fault.diskFree = 0;
          return f(args[0], args[1], args[2], n);
        }
        fault.diskFree -= len;
      }
      return f(...args);
    };
  }
  return { ...out, default: out };
});

const registry = new Registry();
registerLora(registry);
const tmp = mkdtempSync(join(tmpdir(), 'peft-crash-'));
afterAll(() => {
  reset();
  rmSync(tmp, { recursive: true, force: true });
});

function reset() {
  fault.crashAt = 0;
  fault.calls = 0;
  fault.dead = false;
  fault.diskFree = -1;
  fault.trace = [];
}
beforeEach(reset);

const spec = { depth: 2, dim: 6, hidden: 8, seed: 4 };
function model(): { toy: ToyBackbone; peft: PeftModel; adam: Adam } {
  const toy = new ToyBackbone(spec);
  const peft = compose(toy, registry.createMethod('lora', { r: 2, alpha: 4, targets: ['attn.qkv[q,v]'] }), { trainDecoder: false });
  const adam = new Adam({ lr: 0.1 });
  // one update so that Adam has moments to save
  const grads = new Map(peft.trainable().map(([k, p]) => [k, tf.onesLike(p.variable)] as [string, tf.Tensor]));
  adam.apply(peft.trainable(), grads);
  tf.dispose([...grads.values()]);
  return { toy, peft, adam };
}

/** Marks the model with `step` (every trainable value = step) and saves it. */
async function saveAt(dir: string, m: ReturnType<typeof model>, step: number): Promise<void> {
  for (const [, p] of m.peft.trainable()) tf.tidy(() => p.assign(tf.fill(p.shape, step)));
  // a checkpoint of step N has had N optimiser updates (readTrainerState checks it)
  m.adam.step = step;
  await saveTrainingCheckpoint(dir, m.peft, m.adam, { step, epoch: 0, bestDice: null, bestStep: null });
}

/** The step of the checkpoint found at `dir` (or `dir.old`), checked by loading it into a fresh model. */
function loadedStep(dir: string): number {
  const found = checkpointDir(dir);
  if (!found) throw new Error(`no loadable checkpoint at ${dir}`);
  const m = model();
  try {
    const state = loadTrainingCheckpoint(dir, m.peft, m.adam);
    for (const [k, p] of m.peft.trainable()) expect(Array.from(p.variable.dataSync()).every((v) => v === state.step), k).toBe(true);
    expect(readTrainerState(found).step).toBe(state.step);
    return state.step;
  } finally {
    m.adam.dispose();
    m.toy.dispose();
  }
}

const leftovers = (dir: string) => readdirSync(join(dir, '..')).filter((n) => n !== 'last');

describe('checkpoint swap under a SIGKILL at every file-system operation', () => {
  const m = model();
  afterAll(() => {
    m.adam.dispose();
    m.toy.dispose();
  });

  async function opsOfOneSave(): Promise<number> {
    const dir = join(tmp, 'count', 'last');
    await saveAt(dir, m, 1);
    fault.crashAt = Number.MAX_SAFE_INTEGER;
    await saveAt(dir, m, 2);
    const n = fault.calls;
    reset();
    return n;
  }

  for (const start of ['a complete last/', 'only last.old/ and a stale temp folder (a crash between the renames)'] as const) {
    it(`starting from ${start}`, async () => {
      const ops = await opsOfOneSave();
      expect(ops).toBeGreaterThan(10);
      const results: ('accepted' | 'rejected')[] = [];
      const t0 = performance.now();
      for (let n = 1; n <= ops + 1; n++) {
        const dir = join(tmp, `${start.length}-${n}`, 'last');
        await saveAt(dir, m, 1);
        if (start !== 'a complete last/') {
          renameSync(dir, `${dir}.old`);
          mkdirSync(`${dir}.tmp-999999`);
          writeFileSync(join(`${dir}.tmp-999999`, 'adapter_model.safetensors'), 'torn');
        }
        fault.crashAt = n;
        let crashed = false;
        try {
          await saveAt(dir, m, 2);
        } catch (err) {
          crashed = true;
          expect((err as Error).message).toMatch(/simulated SIGKILL|SIMULATED_KILL/);
        }
        const trace = fault.trace.slice();
        reset();
        expect(crashed, `crash at op ${n} of ${ops}`).toBe(n <= ops);
        const step = loadedStep(dir);
        expect([1, 2], `after a crash at op ${n} (${trace[n - 1]})`).toContain(step);
        if (!crashed) expect(step).toBe(2);
        // the next save succeeds and leaves only last/
        await saveAt(dir, m, 3);
        expect(loadedStep(dir)).toBe(3);
        expect(leftovers(dir), `after a crash at op ${n}`).toEqual([]);
        results.push('accepted');
      }
      recordTable('crash safety', `SIGKILL at each of the ${ops} fs operations of a save, from ${start.split(' (')[0]}`, results, (performance.now() - t0) / 1000);
    });
  }

  it('a full disk during a save leaves the previous checkpoint and reports one line', async () => {
    const dir = join(tmp, 'full', 'last');
    await saveAt(dir, m, 1);
    const results: ('accepted' | 'rejected')[] = [];
    const t0 = performance.now();
    // the bytes one save writes: measured with a huge budget
    fault.diskFree = 2 ** 40;
    await saveAt(dir, m, 1);
    const total = 2 ** 40 - fault.diskFree;
    reset();
    expect(total).toBeGreaterThan(1000);
    for (const free of [0, 1, 100, Math.floor(total / 3), Math.floor(total / 2), total - 1]) {
      fault.diskFree = free;
      let err: unknown;
      try {
        await saveAt(dir, m, 2);
      } catch (e) {
        err = e;
      }
      reset();
      expect(err, `free ${free}`).toBeInstanceOf(PeftError);
      const msg = (err as Error).message;
      expect(msg).toContain(dir);
      expect(msg).toContain('ENOSPC');
      expect(msg).toMatch(/previous checkpoint is kept/);
      expect(msg).not.toContain('\n');
      expect(loadedStep(dir)).toBe(1);
      expect(leftovers(dir)).toEqual([]);
      results.push('rejected');
    }
    recordTable('crash safety', 'full disk (ENOSPC injected) during a save', results, (performance.now() - t0) / 1000);
    // space again: the next save works
    await saveAt(dir, m, 2);
    expect(loadedStep(dir)).toBe(2);
  });

  it('a full disk while appending to the log is a one-line PeftError', () => {
    const log = new RunLog(join(tmp, 'log', 'log.jsonl'));
    log.write({ type: 'info', step: 0, message: 'start' });
    fault.diskFree = 0;
    expect(() => log.write({ type: 'info', step: 1, message: 'x' })).toThrow(PeftError);
    expect(() => log.write({ type: 'info', step: 1, message: 'x' })).toThrow(/log\.jsonl: cannot append to the log \(ENOSPC\)/);
    reset();
    expect(RunLog.read(log.path)).toHaveLength(1);
  });

  it('a damaged checkpoint is a one-line error naming the file; an older one without live tensors loads through its adapter files', async () => {
    const { readFileSync } = await import('node:fs');
    const { serializeSafetensors, readSafetensors, toFloat32 } = await import('../../src/core/io/safetensors.js');
    const dir = join(tmp, 'damaged', 'last');
    await saveAt(dir, m, 7);
    const optPath = join(dir, 'optimizer.safetensors');
    const good = readFileSync(optPath);
    const entries = new Map([...readSafetensors(optPath).tensors].map(([k, t]) => [k, { dtype: 'F32' as const, shape: t.shape, data: toFloat32(t) }]));
    const live = [...entries.keys()].find((k) => k.startsWith('param/'))!;
    const variants: [string, Uint8Array | string, RegExp][] = [
      ['truncated', good.subarray(0, good.length >> 1), /optimizer\.safetensors: not a valid safetensors file/],
      ['wrong shape', serializeSafetensors(new Map([...entries, [live, { dtype: 'F32', shape: [1], data: new Float32Array(1) }]])), /optimizer\.safetensors: tensor 'param\/.*' has shape \[1\]/],
      ['unknown tensor', serializeSafetensors(new Map([...entries, ['param/nope.weight', { dtype: 'F32', shape: [1], data: new Float32Array(1) }]])), /optimizer\.safetensors: unexpected tensor 'param\/nope\.weight'/],
      ['missing tensor', serializeSafetensors(new Map([...entries].filter(([k]) => k !== live))), /optimizer\.safetensors: missing tensor 'param\//],
    ];
    const results: ('rejected' | 'failed')[] = [];
    for (const [what, bytes, pattern] of variants) {
      writeFileSync(optPath, bytes);
      const f = model();
      const count = tf.memory().numTensors;
      try {
        expect(() => loadTrainingCheckpoint(dir, f.peft, f.adam), what).toThrow(pattern);
        expect(tf.memory().numTensors, `${what}: tensors leaked`).toBe(count);
        results.push('rejected');
      } finally {
        f.adam.dispose();
        f.toy.dispose();
      }
    }
    recordTable('crash safety', 'damaged training checkpoints give a one-line error naming the file', results, 0);
    // a checkpoint written before live tensors were kept: Adam's state only
    writeFileSync(optPath, serializeSafetensors(new Map([...entries].filter(([k]) => !k.startsWith('param/')))));
    expect(loadedStep(dir)).toBe(7);
  });

  it('a swap killed after the new checkpoint was in place: tidyCheckpoint removes the old one (a resumed run with nothing left to save)', async () => {
    const dir = join(tmp, 'tidy', 'last');
    await saveAt(dir, m, 3);
    // what a kill between steps 3 and 4 of the next save leaves: the new <dir> beside the previous one
    cpSync(dir, `${dir}.keep`, { recursive: true });
    await saveAt(dir, m, 4);
    renameSync(`${dir}.keep`, `${dir}.old`);
    mkdirSync(`${dir}.tmp-34567`);
    expect(leftovers(dir).sort()).toEqual(['last.old', 'last.tmp-34567']);
    tidyCheckpoint(dir);
    expect(leftovers(dir)).toEqual([]);
    expect(loadedStep(dir)).toBe(4);
    // only <dir>.old (killed between steps 2 and 3): it is the checkpoint, and stays
    const lone = join(tmp, 'tidy-lone', 'last');
    await saveAt(lone, m, 2);
    renameSync(lone, `${lone}.old`);
    tidyCheckpoint(lone);
    expect(existsSync(`${lone}.old`)).toBe(true);
    expect(loadedStep(lone)).toBe(2);
  });

  it('stale temp folders of killed processes are removed by the next save', async () => {
    const dir = join(tmp, 'stale', 'last');
    mkdirSync(`${dir}.tmp-12345`, { recursive: true });
    mkdirSync(`${dir}.tmp-23456`, { recursive: true });
    await saveAt(dir, m, 5);
    expect(existsSync(`${dir}.tmp-12345`)).toBe(false);
    expect(leftovers(dir)).toEqual([]);
  });
});
