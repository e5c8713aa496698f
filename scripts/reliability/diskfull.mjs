#!/usr/bin/env node
// A full disk during training, on a real small file system: a tmpfs is
// mounted (root only; skipped otherwise), `peft train --save-every 1` writes
// its run there, and once a checkpoint exists the rest of the tmpfs is filled.
// The run must stop with exit 2 and one line naming ENOSPC, the previous
// checkpoint must be intact, and after space is freed `--resume` must finish
// with the same metrics as an uninterrupted run.
//
//   node scripts/reliability/diskfull.mjs [--backend wasm] [--json out.json]
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, closeSync, rmSync, writeSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkpointStep, fmtSeconds, logRecords, loggedSteps, metricLines, peftSpawn, peftSync, sleep } from './common.mjs';

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : def;
};
const BACKEND = arg('backend', 'wasm');
const started = performance.now();
const log = (line) => process.stderr.write(`${line}\n`);
const done = (result) => {
  const json = arg('json');
  if (json) writeFileSync(json, `${JSON.stringify(result, null, 2)}\n`);
  else process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
};

const work = mkdtempSync(join(tmpdir(), 'peft-diskfull-'));
const mnt = join(work, 'tmpfs');
mkdirSync(mnt);
try {
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=48m', 'tmpfs', mnt], { stdio: 'pipe' });
} catch (err) {
  log(`diskfull: cannot mount a tmpfs (${String(err.stderr ?? err.message).trim()}); skipped`);
  done({ kind: 'diskfull', skipped: true, reason: 'cannot mount a tmpfs (needs root)' });
  rmSync(work, { recursive: true, force: true });
  process.exit(0);
}

const problems = [];
let result;
try {
  const env = { PEFT_CACHE: join(work, 'cache'), PEFT_PLUGINS: '' };
  const data = join(work, 'data');
  const synth = peftSync(['data', 'synth', '--out', data, '--n', '10', '--size', '64', '--seed', '1'], env);
  if (synth.code !== 0) throw new Error(synth.stderr);
  const common = ['train', '--backbone', 'sam', '--preset', 'tiny', '--image-size', '64', '--data-path', data, '--batch', '2', '--steps', '16', '--save-every', '1', '--seed', '3', '--backend', BACKEND];
  const ref = peftSync([...common, '--out', join(work, 'runs'), '--exp-name', 'reference'], env);
  if (ref.code !== 0) throw new Error(ref.stderr);

  const runs = join(mnt, 'runs');
  const runDir = join(runs, 'full');
  const p = peftSpawn([...common, '--out', runs, '--exp-name', 'full'], env);
  // wait for a few checkpoints, then fill the file system
  while (p.child.exitCode === null && ((await checkpointStep(runDir).catch(() => undefined)) ?? 0) < 3) await sleep(20);
  const before = await checkpointStep(runDir);
  const filler = join(mnt, 'filler');
  const fd = openSync(filler, 'w');
  const chunk = Buffer.alloc(1 << 20, 1);
  let filled = 0;
  try {
    for (;;) filled += writeSync(fd, chunk);
  } catch (err) {
    if (err.code !== 'ENOSPC') throw err;
  } finally {
    closeSync(fd);
  }
  const r = await p.done;
  const lines = r.stderr.trim().split('\n').filter((l) => l && !/^step \d+\//.test(l) && !/^epoch \d+/.test(l));
  const after = await checkpointStep(runDir).catch((e) => `broken: ${e.message}`);
  log(`diskfull: filled ${filled >> 20} MB at checkpoint step ${before}; exit ${r.code}: ${lines.join(' | ')}`);
  if (r.code !== 2) problems.push(`exit ${r.code}, expected 2`);
  if (lines.length !== 1 || !/^peft: error: .*ENOSPC/.test(lines[0] ?? '')) problems.push(`stderr is not one 'peft: error: …ENOSPC…' line: ${JSON.stringify(lines)}`);
  if (/\bat .*\.js:\d+/.test(r.stderr)) problems.push('a stack trace on stderr');
  if (typeof after !== 'number' || after < before) problems.push(`the previous checkpoint is not intact: ${after} (was ${before})`);
  const stepsLogged = loggedSteps(runDir);
  rmSync(filler);
  const resumed = peftSync(['train', '--resume', '--out', runs, '--exp-name', 'full', '--backend', BACKEND], env);
  const sameMetrics = JSON.stringify(metricLines(resumed.stdout)) === JSON.stringify(metricLines(ref.stdout));
  const sameLog = JSON.stringify(logRecords(runDir)) === JSON.stringify(logRecords(join(work, 'runs', 'reference')));
  if (resumed.code !== 0) problems.push(`resume after freeing space: exit ${resumed.code}: ${resumed.stderr.trim().split('\n').pop()}`);
  if (!sameMetrics) problems.push('resumed metrics differ from the uninterrupted run');
  if (!sameLog) problems.push('resumed log differs from the uninterrupted run');
  result = { kind: 'diskfull', skipped: false, tmpfsMB: 48, filledMB: filled >> 20, checkpointBefore: before, checkpointAfter: after, stepsLogged, exitCode: r.code, error: lines[0] ?? null, resumeExit: resumed.code, sameMetrics, sameLog, problems };
} finally {
  try {
    execFileSync('umount', [mnt], { stdio: 'pipe' });
  } catch {
    // leave it for the operator; it is in a temp folder
  }
}
result.seconds = (performance.now() - started) / 1000;
log(`diskfull: ${problems.length ? problems.join('; ') : 'previous checkpoint intact, one-line ENOSPC error, resume equal'} (${fmtSeconds(result.seconds)})`);
done(result);
rmSync(work, { recursive: true, force: true });
process.exitCode = problems.length ? 1 : 0;
