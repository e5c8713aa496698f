// `peft report` on runs as real life leaves them (issue 19, class 6), not
// edited by an attacker: an interrupted run with 300,000 logged steps and no
// summary.json (crashed: Math.max over a spread of every step's time), a log
// over 512 MB (crashed: the whole log read as one string), and a full disk
// (crashed with a raw ENOSPC and left a half-written folder that the next
// report refused to reuse). The report must read every log in bounded memory,
// and a failed report must leave --out as it was, then succeed once there is
// space. The full-disk case mounts a small tmpfs (root only, as
// diskfull.test.ts; elsewhere it is skipped and says why).
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readRun, writeReport } from '../../src/app/report/index.js';
import { MAX_CURVE_POINTS } from '../../src/app/report/read-run.js';
import { PeftError } from '../../src/core/errors.js';

const work = mkdtempSync(join(tmpdir(), 'peft-report-crash-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const T0 = Date.parse('2026-01-01T00:00:00Z');
const runJson = (name: string) => ({
  version: 1,
  createdAt: new Date(T0).toISOString(),
  backbone: { id: 'sam', preset: 'tiny' },
  method: { id: 'lora', config: { r: 4 } },
  imageSize: 64,
  outSize: 16,
  dataset: { kind: 'refuge', path: null, channels: ['cup', 'disc'] },
  options: { batch: 2, lr: 1e-3, epochs: null, steps: 400_000, valEvery: 1, seed: 0, loss: 'bce', prompt: 'click' },
  trainDecoder: true,
  command: `peft train --exp-name ${name}`,
});
const stepLine = (step: number) => `{"time":"${new Date(T0 + step * 40).toISOString()}","type":"step","step":${step},"epoch":${Math.floor(step / 1000)},"loss":${(0.5 + 0.3 / step).toFixed(6)},"lr":0.001,"ms":40}\n`;
const valLine = (step: number) => `{"time":"${new Date(T0 + step * 40 + 1).toISOString()}","type":"val","step":${step},"epoch":${step / 1000},"dice":{"cup":0.5,"disc":0.8},"iou":{"cup":0.4,"disc":0.7},"loss":0.3}\n`;

/** A run folder killed after `steps` steps: run.json and log.jsonl, no summary.json. */
function interruptedRun(name: string, steps: number): string {
  const dir = join(work, name);
  mkdirSync(dir);
  writeFileSync(join(dir, 'run.json'), JSON.stringify(runJson(name)));
  const fd = openSync(join(dir, 'log.jsonl'), 'w');
  let chunk = '';
  for (let s = 1; s <= steps; s++) {
    chunk += stepLine(s);
    if (s % 1000 === 0) chunk += valLine(s);
    if (chunk.length > 1 << 20) {
      writeSync(fd, chunk);
      chunk = '';
    }
  }
  writeSync(fd, chunk);
  closeSync(fd);
  return dir;
}

describe('peft report on long and crashed runs', () => {
  it('an interrupted run with 300,000 logged steps and no summary.json: the report is written (was: Maximum call stack size exceeded)', async () => {
    const dir = interruptedRun('long', 300_000);
    const out = join(work, 'report-long');
    const r = await writeReport([dir], { out });
    expect(r.rows[0]!.status).toBe('incomplete');
    expect(r.rows[0]!.steps).toBe(300_000);
    // from createdAt to the last record, 300,000 x 40 ms
    expect(r.rows[0]!.seconds).toBeCloseTo(12_000, 0);
    expect(existsSync(join(out, 'index.html'))).toBe(true);
    // the curves are downsampled evenly (first and last step kept), the totals are not
    const rec = readRun(dir);
    expect(rec.steps.length).toBeLessThanOrEqual(MAX_CURVE_POINTS + 1);
    expect(rec.steps[0]!.step).toBe(1);
    expect(rec.steps.at(-1)!.step).toBe(300_000);
    expect(rec.logTotals).toEqual({ steps: 300_000, stepMs: 300_000 * 40, latestTime: T0 + 300_000 * 40 + 1 });
  }, 120_000);

  it('a log over 512 MB (one record of it 600 MB long): read a line at a time, the long line skipped (was: Cannot create a string longer than ...)', async () => {
    const dir = join(work, 'huge');
    mkdirSync(dir);
    writeFileSync(join(dir, 'run.json'), JSON.stringify(runJson('huge')));
    const log = join(dir, 'log.jsonl');
    const head = stepLine(1) + stepLine(2) + valLine(2);
    const tail = `\n${stepLine(3)}${valLine(3)}`;
    writeFileSync(log, head);
    // a sparse hole of 600 MB of NUL bytes (no disk space, no time to write), then the last records
    const fd = openSync(log, 'r+');
    writeSync(fd, tail, head.length + 600 * 2 ** 20);
    closeSync(fd);
    const out = join(work, 'report-huge');
    const r = await writeReport([dir], { out });
    expect(r.rows[0]!.steps).toBe(3);
    const rec = readRun(dir);
    expect(rec.steps.map((s) => s.step)).toEqual([1, 2, 3]);
    expect(rec.vals.map((v) => v.step)).toEqual([2, 3]);
  }, 120_000);
});

// ---- a full disk ----

const mnt = join(work, 'tmpfs');
mkdirSync(mnt);
function mount(): string | undefined {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt], { stdio: 'pipe' });
    return undefined;
  } catch (err) {
    return String((err as { stderr?: Buffer }).stderr ?? (err as Error).message).trim().split('\n')[0];
  }
}
const cannotMount = mount();
afterAll(() => {
  if (!cannotMount) {
    try {
      execFileSync('umount', [mnt], { stdio: 'pipe' });
    } catch {
      // still busy: tmpfs holds nothing on disk
    }
  }
});

/** Fills the tmpfs but for `leave` bytes; returns the filler's path. */
function fill(leave: number): string {
  const filler = join(mnt, 'filler');
  const fd = openSync(filler, 'w');
  const chunk = Buffer.alloc(64 * 1024, 1);
  try {
    for (;;) writeSync(fd, chunk);
  } catch {
    // full
  }
  closeSync(fd);
  // give back `leave` bytes
  execFileSync('truncate', ['-s', `-${leave}`, filler]);
  return filler;
}

describe('peft report on a full disk', () => {
  if (cannotMount) {
    it.skip(`on a 4 MB tmpfs: skipped, a tmpfs cannot be mounted here (${cannotMount}; needs root)`, () => {});
    return;
  }

  it('one line naming the folder and "disk full", --out left as it was (new, and a previous report), and the next report succeeds', async () => {
    const run = interruptedRun('small', 200);
    // a new --out: nothing is left behind, not even a staging folder
    const fresh = join(mnt, 'fresh');
    const filler = fill(20 * 1024);
    const err = await writeReport([run], { out: fresh }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PeftError);
    const message = (err as Error).message;
    expect(message.split('\n')).toHaveLength(1);
    expect(message).toBe(`${fresh}: cannot write the report: disk full (ENOSPC); nothing in it was changed`);
    expect(readdirSync(mnt).sort()).toEqual(['filler']);

    // a previous report in --out, then a full disk: the previous report stays whole
    rmSync(filler);
    const out = join(mnt, 'report');
    await writeReport([run], { out });
    const before = new Map(readdirSync(out).map((f) => [f, f.endsWith('.html') || f.endsWith('.json') ? readFileSync(join(out, f), 'utf8') : '']));
    fill(20 * 1024);
    await expect(writeReport([run], { out, now: new Date(T0 + 1e9) })).rejects.toThrow(`${out}: cannot write the report: disk full (ENOSPC); nothing in it was changed`);
    expect(new Map(readdirSync(out).map((f) => [f, f.endsWith('.html') || f.endsWith('.json') ? readFileSync(join(out, f), 'utf8') : '']))).toEqual(before);

    // space again: the same --out is reused (it holds a report, not a half-written folder)
    rmSync(join(mnt, 'filler'));
    const r = await writeReport([run], { out, now: new Date(T0 + 1e9) });
    expect(r.files).toContain('index.html');
    expect(readFileSync(join(out, 'results.json'), 'utf8')).toContain(new Date(T0 + 1e9).toISOString());
    expect(readdirSync(out).some((f) => f.startsWith('.peft-report-tmp-'))).toBe(false);
  }, 120_000);
});
