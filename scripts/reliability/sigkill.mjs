#!/usr/bin/env node
// SIGKILL loop: `peft train` is killed at random moments (half of them while
// a checkpoint is being written: when checkpoints/last.tmp-<pid> appears for
// the 1st, 2nd or 3rd time in that process, plus 0-20 ms) and resumed with
// --resume, again and again, until the run completes. After every kill the last checkpoint must be complete
// and parseable (or absent, before the first save), its step must never go
// back, and the completed run must print the same Dice/IoU and hold the same
// log.jsonl records as an uninterrupted run with the same seed. Also checks
// that SIGINT in a later epoch (data served from memory) stops within a step.
//
//   node scripts/reliability/sigkill.mjs [--kills 24] [--steps 40] [--backend wasm] [--json out.json]
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkpointStep, fmtSeconds, logRecords, loggedSteps, metricLines, peftSpawn, peftSync, sleep } from './common.mjs';

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : def;
};
const KILLS = Number(arg('kills', 24));
const STEPS = Number(arg('steps', 40));
const BACKEND = arg('backend', 'wasm');
const started = performance.now();

const work = mkdtempSync(join(tmpdir(), 'peft-sigkill-'));
const data = join(work, 'data');
const runs = join(work, 'runs');
const env = { PEFT_CACHE: join(work, 'cache'), PEFT_PLUGINS: '' };
let seed = 12345;
const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);

function log(line) {
  process.stderr.write(`${line}\n`);
}

const synth = peftSync(['data', 'synth', '--out', data, '--n', '10', '--size', '64', '--seed', '1'], env);
if (synth.code !== 0) throw new Error(`data synth failed: ${synth.stderr}`);
const common = ['train', '--backbone', 'sam', '--preset', 'tiny', '--image-size', '64', '--data-path', data, '--batch', '2', '--steps', String(STEPS), '--save-every', '3', '--seed', '3', '--val-every', '1', '--backend', BACKEND, '--out', runs];

log(`sigkill: reference run (${STEPS} steps, ${BACKEND})`);
const ref = peftSync([...common, '--exp-name', 'reference'], env);
if (ref.code !== 0) throw new Error(`reference run failed: ${ref.stderr}`);
const refMetrics = metricLines(ref.stdout);
const refLog = logRecords(join(runs, 'reference'));
const again = peftSync([...common, '--exp-name', 'reference-2'], env);
const deterministic = again.code === 0 && JSON.stringify(logRecords(join(runs, 'reference-2'))) === JSON.stringify(refLog);

const kills = [];
const cycles = [];
const problems = [];
let cycle = 0;
while (kills.length < KILLS && cycle < 20) {
  cycle++;
  const name = `cycle-${cycle}`;
  const runDir = join(runs, name);
  let resume = false;
  let lastStep = 0;
  let cycleKills = 0;
  for (let attempt = 0; attempt < 200; attempt++) {
    const p = peftSpawn(resume ? ['train', '--resume', '--out', runs, '--exp-name', name, '--backend', BACKEND] : [...common, '--exp-name', name], env);
    const mode = rand() < 0.5 ? 'random' : 'during-save';
    let killedAt = null;
    const killer = (async () => {
      if (mode === 'random') {
        await sleep(200 + rand() * 4000);
      } else {
        // wait for the k-th checkpoint write of this process (k = 1..3): checkpoints/last.tmp-<pid> appears
        const tmpName = `last.tmp-${p.child.pid}`;
        const k = 1 + Math.floor(rand() * 3);
        const deadline = performance.now() + 20_000;
        let seen = 0;
        let present = false;
        while (performance.now() < deadline && p.child.exitCode === null) {
          const now = existsSync(join(runDir, 'checkpoints', tmpName));
          if (now && !present && ++seen === k) break;
          present = now;
          await sleep(1);
        }
        await sleep(rand() * 20);
      }
      if (p.child.exitCode === null) {
        killedAt = { steps: loggedSteps(runDir) };
        p.child.kill('SIGKILL');
      }
    })();
    const r = await p.done;
    await killer;
    if (r.code === 0) {
      const same = JSON.stringify(metricLines(r.stdout)) === JSON.stringify(refMetrics);
      const sameLog = JSON.stringify(logRecords(runDir)) === JSON.stringify(refLog);
      const leftovers = readdirSync(join(runDir, 'checkpoints')).filter((n) => n !== 'last' && n !== 'best');
      cycles.push({ name, kills: cycleKills, sameMetrics: same, sameLog, leftovers });
      if (!same) problems.push(`${name}: final metrics differ: ${metricLines(r.stdout).join(' | ')} vs ${refMetrics.join(' | ')}`);
      if (!sameLog) problems.push(`${name}: log.jsonl differs from the uninterrupted run's`);
      if (leftovers.length) problems.push(`${name}: left ${leftovers.join(', ')}`);
      log(`sigkill: ${name} completed after ${cycleKills} kills; metrics ${same ? 'equal' : 'DIFFER'}, log ${sameLog ? 'equal' : 'DIFFERS'}`);
      break;
    }
    if (r.signal !== 'SIGKILL') {
      problems.push(`${name}: exit ${r.code} without a kill: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
      break;
    }
    cycleKills++;
    let step;
    let error;
    try {
      step = await checkpointStep(runDir);
    } catch (err) {
      error = err.message;
    }
    const ok = error === undefined && (step ?? 0) >= lastStep;
    if (!ok) problems.push(`${name} kill ${cycleKills}: ${error ?? `checkpoint went back from step ${lastStep} to ${step}`}`);
    kills.push({ cycle: name, mode, loggedSteps: killedAt?.steps ?? null, checkpointStep: step ?? null, ok });
    lastStep = step ?? lastStep;
    resume = existsSync(join(runDir, 'run.json'));
    if (!resume) rmSync(runDir, { recursive: true, force: true }); // killed before run.json: a fresh start
    if (kills.length % 5 === 0) log(`sigkill: ${kills.length} kills, ${problems.length} problems`);
  }
}

// SIGINT in a later epoch: the data comes from memory, the loop must still notice the signal
const intName = 'sigint-late';
const p = peftSpawn([...common, '--exp-name', intName], env);
const intRun = join(runs, intName);
while (loggedSteps(intRun) < 13 && p.child.exitCode === null) await sleep(10);
const stepsAtSignal = loggedSteps(intRun);
const t0 = performance.now();
p.child.kill('SIGINT');
const ir = await p.done;
const stoppedAt = Number(/stopped at step (\d+)/.exec(ir.stdout)?.[1] ?? NaN);
const sigint = { code: ir.code, stepsAtSignal, stoppedAt, stepsAfterSignal: stoppedAt - stepsAtSignal, seconds: (performance.now() - t0) / 1000, checkpointStep: await checkpointStep(intRun).catch((e) => e.message) };
if (ir.code !== 0 || !(sigint.stepsAfterSignal <= 1) || sigint.checkpointStep !== stoppedAt) problems.push(`SIGINT in epoch 4: ${JSON.stringify(sigint)}`);

const result = {
  kind: 'sigkill',
  backend: BACKEND,
  steps: STEPS,
  deterministic,
  kills: kills.length,
  killsDuringSave: kills.filter((k) => k.mode === 'during-save').length,
  killsOk: kills.filter((k) => k.ok).length,
  cycles: cycles.length,
  cyclesEqual: cycles.filter((c) => c.sameMetrics && c.sameLog).length,
  sigint,
  problems,
  seconds: (performance.now() - started) / 1000,
  detail: { kills, cycles },
};
log(`sigkill: ${result.kills} kills (${result.killsDuringSave} during a checkpoint write), ${result.killsOk} left a loadable checkpoint; ${result.cyclesEqual}/${result.cycles} resumed runs equal the uninterrupted one; ${problems.length} problems; ${fmtSeconds(result.seconds)}`);
const json = arg('json');
if (json) writeFileSync(json, `${JSON.stringify(result, null, 2)}\n`);
else process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
rmSync(work, { recursive: true, force: true });
process.exitCode = problems.length || kills.length < KILLS ? 1 : 0;
