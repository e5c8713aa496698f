// What peft prints cannot drive the user's terminal (issue 19, class 12).
// Names from checkpoints, dataset paths, flags and plugins may hold escape
// sequences (ESC [ 31 m, OSC titles with BEL) or be a megabyte long: every
// error and warning is one line with control characters escaped and at most
// MAX_MESSAGE_LINE characters, names quoted from files are cut, and standard
// output has no control character but newlines and tabs. Also the two lines
// that said what was not so: "the previous checkpoint is kept" after a first
// save failed, and "peak RSS 0 MB" when resuming a finished run.
import { describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureDefaultDataset } from '../../src/app/data/synth-output.js';
import { serializeSafetensors } from '../../src/core/io/safetensors.js';
import { MAX_MESSAGE_LINE } from '../../src/core/text.js';
import { Registry } from '../../src/core/registry/registry.js';
import { compose } from '../../src/core/peft/compose.js';
import { ToyBackbone } from '../../src/core/testing/toy-backbone.js';
import { register as registerLora } from '../../plugins/method-lora/index.js';
import { Adam } from '../../src/app/train/adam.js';
import { saveTrainingCheckpoint } from '../../src/app/train/checkpoint.js';
import { MemoryMeter } from '../../src/app/train/memory-meter.js';
import { PeftError } from '../../src/core/errors.js';
import { recordTable } from '../support/fuzz-harness.js';
import { inPool, peftTimed } from '../support/cli-timed.js';

const ESC = '\x1b';
const tmp = mkdtempSync(join(tmpdir(), 'peft-terminal-'));
const data = await ensureDefaultDataset(join(tmp, 'cache'), { n: 4, size: 64, seed: 1 });
const out = join(tmp, 'runs');
const train = (...a: string[]) => ['train', '--data-path', data, '--backbone', 'sam', '--preset', 'tiny', '--image-size', '64', ...(a.includes('--steps') ? [] : ['--steps', '1']), '--out', out, ...a];

/** A checkpoint whose key names are an escape sequence and a megabyte. */
function hostileCheckpoint(): string {
  const t = { dtype: 'F32' as const, shape: [1], data: new Float32Array(1) };
  const path = join(tmp, 'hostile.safetensors');
  writeFileSync(path, serializeSafetensors(new Map([[`${ESC}]0;pwned${ESC}\\${ESC}[2J${ESC}[31mred`, t], ['k'.repeat(1 << 20), t]])));
  return path;
}

/** A plugin that fails to load, whose name (package.json) and error carry escapes; and one whose method's summary does. */
function hostilePlugins(): { failing: string; printing: string } {
  const failing = join(tmp, 'failing');
  mkdirSync(failing);
  writeFileSync(join(failing, 'package.json'), JSON.stringify({ name: `bad${ESC}[31m-plugin`, type: 'module', main: 'index.js' }));
  writeFileSync(join(failing, 'index.js'), `export function register() { throw new Error('boom ${'\\x1b'}[2J ' + 'e'.repeat(1 << 20)); }`);
  const printing = join(tmp, 'printing');
  mkdirSync(printing);
  writeFileSync(join(printing, 'package.json'), JSON.stringify({ name: 'printing', type: 'module', main: 'index.js' }));
  writeFileSync(
    join(printing, 'index.js'),
    `export function register(registry, peftjs) { registry.registerMethod({ id: 'shouty', summary: 'title ${'\\x1b'}]0;pwned${'\\x07'} and ${'\\x1b'}[31mred${'\\x9b'}2J', schema: peftjs.z.object({ k: peftjs.z.number().default(1) }), create: () => { throw new Error('unused'); } }); }`,
  );
  return { failing, printing };
}

describe('terminal output', () => {
  it('errors and warnings from names with escapes or a megabyte long: escaped, one line, capped (CLI)', async () => {
    const t0 = performance.now();
    const { failing, printing } = hostilePlugins();
    const cases: { what: string; args: string[]; stream: 'stderr' | 'stdout'; want: RegExp; code: number }[] = [
      { what: 'an unknown --backbone with escapes', args: ['plan', '--backbone', `sa${ESC}[31mm${ESC}]0;x\x07`], stream: 'stderr', want: /^peft: error: unknown backbone 'sa\\u001b\[31mm\\u001b\]0;x\\u0007'/, code: 2 },
      { what: 'a 100 KB --backbone', args: ['plan', '--backbone', 'b'.repeat(100_000)], stream: 'stderr', want: /^peft: error: unknown backbone 'b{120}…\(100000 chars\)' \(known: /, code: 2 },
      { what: 'checkpoint key names with escapes, and of 1 MB', args: train('--checkpoint', hostileCheckpoint()), stream: 'stderr', want: /^peft: error: .*hostile\.safetensors: no key matches backbone 'sam' \(the file has e\.g\. \\u001b\]0;pwned\\u001b.*, k{100,}…\(1048576 chars\); expected e\.g\./, code: 2 },
      { what: 'a dataset path with escapes', args: ['train', '--data-path', join(tmp, `no${ESC}[2Jdata${ESC}[31m`), '--backbone', 'sam', '--preset', 'tiny', '--out', out], stream: 'stderr', want: /^peft: error: .*no\\u001b\[2Jdata\\u001b\[31m/, code: 2 },
      { what: 'an ISIC csv path with escapes', args: ['train', '--dataset', 'isic', '--data-path', join(tmp, `isic${ESC}[31m.csv`), '--backbone', 'sam', '--preset', 'tiny', '--out', out], stream: 'stderr', want: /isic\\u001b\[31m\.csv/, code: 2 },
      { what: 'a plugin whose name and error carry escapes (a warning)', args: ['list', '--plugin', failing], stream: 'stderr', want: /^peft: warning: plugin 'bad\\u001b\[31m-plugin' failed to load: boom \\u001b\[2J e+/, code: 0 },
      { what: 'a method summary with escapes (standard output)', args: ['list', '--plugin', printing], stream: 'stdout', want: /title \\u001b\]0;pwned\\u0007 and \\u001b\[31mred\\u009b2J/, code: 0 },
    ];
    const runs = await inPool(cases, 2, (c) => peftTimed(c.args, { env: { PEFT_CONFIG_DIR: join(tmp, 'config') }, timeoutMs: 60_000 }));
    const problems: string[] = [];
    cases.forEach((c, i) => {
      const r = runs[i]!;
      const text = c.stream === 'stderr' ? r.stderr : r.stdout;
      if (r.timedOut || r.code !== c.code) problems.push(`${c.what}: exit ${r.code}${r.timedOut ? ' (timed out)' : ''}: ${r.stderr.slice(0, 300)}`);
      if (/[\x00-\x08\x0b-\x1f\x7f-\x9f]/.test(r.stderr) || /[\x00-\x08\x0b-\x1f\x7f-\x9f]/.test(r.stdout)) problems.push(`${c.what}: a control character was printed`);
      const lines = r.stderr.split('\n').filter(Boolean);
      if (lines.some((l) => l.length > MAX_MESSAGE_LINE)) problems.push(`${c.what}: a line of ${Math.max(...lines.map((l) => l.length))} characters on stderr`);
      if (c.stream === 'stderr' && lines.length !== 1) problems.push(`${c.what}: ${lines.length} lines on stderr`);
      if (!c.want.test(c.stream === 'stderr' ? lines[0] ?? '' : text)) problems.push(`${c.what}: expected ${c.want}, got ${JSON.stringify(text.slice(0, 400))}`);
    });
    recordTable('terminal output', 'escapes and huge names in errors, warnings and output: escaped, one line, capped (CLI)', problems.length ? ['failed'] : cases.map(() => 'rejected'), (performance.now() - t0) / 1000);
    expect(problems, problems.join('\n')).toEqual([]);
  }, 300_000);

  it('a first checkpoint that cannot be saved does not claim an earlier one is kept', async () => {
    const registry = new Registry();
    registerLora(registry);
    const peft = compose(new ToyBackbone({ depth: 1, dim: 6, hidden: 8, seed: 1 }), registry.createMethod('lora', { r: 2, targets: ['attn.qkv'] }), { trainDecoder: false });
    const adam = new Adam({ lr: 0.1 });
    const file = join(tmp, 'a-file');
    writeFileSync(file, 'x');
    let err: unknown;
    try {
      await saveTrainingCheckpoint(join(file, 'checkpoints', 'last'), peft, adam, { step: 1, epoch: 0, bestDice: null, bestStep: null, logBytes: 0 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PeftError);
    expect((err as Error).message).toMatch(/cannot save the checkpoint .*; there was no earlier checkpoint to keep$/);
    expect((err as Error).message).not.toMatch(/previous checkpoint is kept/);
  });

  it('memory is measured even when nothing is left to train: never "peak RSS 0 MB"', async () => {
    expect(new MemoryMeter().peakRss).toBeGreaterThan(0);
    const first = await peftTimed(train('--exp-name', 'done'), { timeoutMs: 120_000 });
    expect(first.code, first.stderr).toBe(0);
    const again = await peftTimed(train('--exp-name', 'done', '--resume'), { timeoutMs: 120_000 });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/memory: peak RSS [1-9]\d* MB/);
  }, 300_000);
});
