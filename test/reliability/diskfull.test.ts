// A full disk during training, on a real small file system: a 48 MB tmpfs is
// mounted (root only: CI runs as root; elsewhere the test is skipped and says
// why), `peft train --save-every 1` writes its run there, and once a few
// checkpoints exist the rest of the tmpfs is filled. The run must stop with
// exit 2 and one line naming ENOSPC and no stack trace, the previous
// checkpoint must be intact, and once space is freed `--resume` must finish
// with the same metrics and log as an uninterrupted run.
// (The in-process version, an injected ENOSPC at every byte of a save, is in
// checkpoint-crash.test.ts.) With PEFT_RELIABILITY_OUT the figures go to
// diskfull.json there (docs/reliability.md).
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ensureDefaultDataset } from '../../src/app/data/synth-output.js';
import { checkpointStep, logRecords, loggedSteps, metricLines, peftSpawn, peftSync, sleep, writeFigures } from '../support/cli-runs.js';

const BACKEND = 'wasm';
const TMPFS_MB = 48;
const work = mkdtempSync(join(tmpdir(), 'peft-diskfull-'));
const mnt = join(work, 'tmpfs');
mkdirSync(mnt);

/** Mounts the tmpfs; the reason it cannot, or undefined. */
function mount(): string | undefined {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_MB}m`, 'tmpfs', mnt], { stdio: 'pipe' });
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
      // still busy: it is in a temp folder, and tmpfs holds nothing on disk
    }
  }
  rmSync(work, { recursive: true, force: true });
});

describe('a full disk during peft train', () => {
  if (cannotMount) {
    writeFigures('diskfull', { kind: 'diskfull', skipped: true, reason: `cannot mount a tmpfs: ${cannotMount}` });
    it.skip(`on a ${TMPFS_MB} MB tmpfs: skipped, a tmpfs cannot be mounted here (${cannotMount}; needs root)`, () => {});
    return;
  }

  it(`on a ${TMPFS_MB} MB tmpfs: exit 2 with one ENOSPC line, the previous checkpoint intact, and an exact resume once space is freed`, async () => {
    const started = performance.now();
    const env = { PEFT_CACHE: join(work, 'cache'), PEFT_PLUGINS: '' };
    const data = await ensureDefaultDataset(join(work, 'cache'), { n: 10, size: 64, seed: 1 });
    const common = ['train', '--backbone', 'sam', '--preset', 'tiny', '--image-size', '64', '--data-path', data, '--batch', '2', '--steps', '16', '--save-every', '1', '--seed', '3', '--backend', BACKEND];
    const ref = peftSync([...common, '--out', join(work, 'runs'), '--exp-name', 'reference'], env);
    expect(ref.code, ref.stderr).toBe(0);

    const runs = join(mnt, 'runs');
    const runDir = join(runs, 'full');
    const p = peftSpawn([...common, '--out', runs, '--exp-name', 'full'], env);
    // a few checkpoints first, then fill the file system
    const step = () => {
      try {
        return checkpointStep(runDir) ?? 0;
      } catch {
        return 0; // caught between the renames: look again
      }
    };
    while (p.child.exitCode === null && step() < 3) await sleep(20);
    const before = checkpointStep(runDir)!;
    const fd = openSync(join(mnt, 'filler'), 'w');
    const chunk = Buffer.alloc(1 << 20, 1);
    let filled = 0;
    try {
      for (;;) filled += writeSync(fd, chunk);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
    } finally {
      closeSync(fd);
    }
    const r = await p.done;
    // what is said besides the progress lines
    const lines = r.stderr.trim().split('\n').filter((l) => l && !/^step \d+\//.test(l) && !/^epoch \d+/.test(l));
    let after: number | string | undefined;
    try {
      after = checkpointStep(runDir);
    } catch (err) {
      after = `broken: ${(err as Error).message}`;
    }
    const stepsLogged = loggedSteps(runDir);
    rmSync(join(mnt, 'filler'));
    const resumed = peftSync(['train', '--resume', '--out', runs, '--exp-name', 'full', '--backend', BACKEND], env);
    const sameMetrics = JSON.stringify(metricLines(resumed.stdout)) === JSON.stringify(metricLines(ref.stdout));
    const sameLog = JSON.stringify(logRecords(runDir)) === JSON.stringify(logRecords(join(work, 'runs', 'reference')));
    const problems: string[] = [];
    if (r.code !== 2) problems.push(`exit ${r.code}, expected 2`);
    if (lines.length !== 1 || !/^peft: error: .*ENOSPC/.test(lines[0] ?? '')) problems.push(`stderr is not one 'peft: error: …ENOSPC…' line: ${JSON.stringify(lines)}`);
    if (/\bat .*\.js:\d+/.test(r.stderr)) problems.push('a stack trace on stderr');
    if (typeof after !== 'number' || after < before) problems.push(`the previous checkpoint is not intact: ${after} (was step ${before})`);
    if (resumed.code !== 0) problems.push(`resume after freeing space: exit ${resumed.code}: ${resumed.stderr.trim().split('\n').pop()}`);
    if (!sameMetrics) problems.push("the resumed run's metrics differ from the uninterrupted run's");
    if (!sameLog) problems.push("the resumed run's log differs from the uninterrupted run's");
    writeFigures('diskfull', {
      kind: 'diskfull',
      skipped: false,
      tmpfsMB: TMPFS_MB,
      filledMB: filled >> 20,
      checkpointBefore: before,
      checkpointAfter: after,
      stepsLogged,
      exitCode: r.code,
      error: lines[0] ?? null,
      resumeExit: resumed.code,
      sameMetrics,
      sameLog,
      problems,
      seconds: (performance.now() - started) / 1000,
    });
    expect(problems).toEqual([]);
  }, 600_000);
});
