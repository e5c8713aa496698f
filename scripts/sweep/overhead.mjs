#!/usr/bin/env node
// The cost per job of running a sweep through the queue (`peft sweep --queue`
// + one `peft worker`, both on this machine, Redis on a free loopback port)
// against the local pool (`peft sweep --jobs 1`): the same N jobs of one
// training step each (sam tiny + LoRA, seeds 0..N-1), one at a time both
// ways, so a job's time is almost all its fixed costs (a `peft train`
// process: Node, oclif, TensorFlow.js, the model) and the difference is what
// the path adds. Reports medians of: a job's own wall-clock (results/*.json
// `seconds`: from runSweepJob's start to its recorded result), the gap from
// one job's end to the next one's start (dispatch: the pool's loop, or the
// result going back to Redis and the next job coming out of it), and the
// sweep's wall-clock divided by N (the command's start and end included; the
// worker was started before, as a standing cluster's would be).
//
//   npm run build && node scripts/sweep/overhead.mjs [--jobs 5] [--rounds 2] [--json] [--keep]
//
// Each round runs N jobs each way, the order alternating (local, queue; then
// queue, local; ...): on a shared machine the load drifts, and a fixed order
// would hand one path the quieter half. Medians are over every job of every
// round.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const bin = join(root, 'bin/run.js');
const { values: args } = parseArgs({
  options: {
    jobs: { type: 'string', default: '5' },
    json: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    rounds: { type: 'string', default: '2' },
  },
});
const N = Number(args.jobs);
const ROUNDS = Number(args.rounds);
const say = (line) => process.stderr.write(`${line}\n`);
const grid = ['--backbones', 'sam', '--methods', 'lora', '--seeds', String(N)];
const train = ['--', '--preset', 'tiny', '--steps', '1', '--val-every', '0'];

/** A process with its output kept; `done` resolves with its exit code. */
function start(cmd, argv, opts = {}) {
  const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const done = new Promise((r) => child.on('close', (code) => r(code)));
  return { child, out: () => out, done };
}

async function until(what, ms, check) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function freePort() {
  const s = createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** Runs `peft sweep ...extra` into `dir`; the sweep's wall-clock and each job's times from results/ (seconds). */
async function sweep(dir, extra) {
  const t0 = performance.now();
  const p = start(process.execPath, [bin, 'sweep', ...grid, '--out', dir, ...extra, ...train]);
  const code = await p.done;
  const wall = (performance.now() - t0) / 1000;
  if (code !== 0) throw new Error(`peft sweep exited ${code}:\n${p.out()}`);
  const results = readdirSync(join(dir, 'results'))
    .filter((f) => f.endsWith('.json'))
    .map((f) => JSON.parse(readFileSync(join(dir, 'results', f), 'utf8')))
    .sort((a, b) => Date.parse(a.startedAt) - Date.parse(b.startedAt));
  if (results.length !== N) throw new Error(`${dir}: ${results.length} results, expected ${N}`);
  const gaps = results.slice(1).map((r, i) => (Date.parse(r.startedAt) - Date.parse(results[i].finishedAt)) / 1000);
  // the training loop's own time (summary.json), to tell the job's fixed costs from the load's effect on training
  // the run's own time (summary.json: model, data, steps, the final validation) tells the job's fixed costs from the load's effect
  return { wall, job: results.map((r) => r.seconds), training: results.map((r) => r.summary.seconds), fixed: results.map((r) => r.seconds - r.summary.seconds), gap: gaps };
}

/** Every round's sweeps of one path, as medians over all their jobs. */
function summary(sweeps) {
  const all = (k) => sweeps.flatMap((x) => x[k]);
  return {
    jobs: all('job').length,
    job: median(all('job')),
    training: median(all('training')),
    fixed: median(all('fixed')),
    gap: median(all('gap')),
    perJob: sweeps.reduce((a, x) => a + x.wall, 0) / all('job').length,
  };
}

const redisBin = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find(existsSync);
if (!redisBin) {
  say('redis-server is not installed: bash scripts/ci/install-redis.sh');
  process.exit(1);
}
const tmp = mkdtempSync(join(tmpdir(), 'peft-overhead-'));
const procs = [];
let exitCode = 0;
try {
  const loads = [loadavg()[0]];
  say(`${ROUNDS} rounds of ${N} jobs of 1 step (sam tiny + LoRA) each way, one at a time; ${availableParallelism()} cores (${cpus()[0]?.model ?? '?'}), load ${loads[0].toFixed(1)}`);

  const port = await freePort();
  const redis = start(redisBin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', tmp], { cwd: tmp });
  procs.push(redis);
  await until('redis-server', 15_000, () => /Ready to accept connections/.test(redis.out()));
  const url = `redis://127.0.0.1:${port}`;
  const worker = start(process.execPath, [bin, 'worker', '--queue', url, '--concurrency', '1']);
  procs.push(worker);
  await until('the worker', 60_000, () => /Ctrl-C stops/.test(worker.out()));
  say(`worker: peft worker --queue ${url} --concurrency 1`);
  const runs = { local: [], queue: [] };
  for (let r = 0; r < ROUNDS; r++) {
    for (const path of r % 2 === 0 ? ['local', 'queue'] : ['queue', 'local']) {
      say(`round ${r + 1}: ${path === 'local' ? 'peft sweep --jobs 1' : `peft sweep --queue ${url}`} (load ${loadavg()[0].toFixed(1)})`);
      runs[path].push(await sweep(join(tmp, `${path}-${r}`), path === 'local' ? ['--jobs=1'] : ['--queue', url]));
      loads.push(loadavg()[0]);
    }
  }
  const local = summary(runs.local);
  const queue = summary(runs.queue);

  const rows = [
    ['', 'local pool', 'queue', 'queue - local'],
    ['job wall-clock (median)', local.job, queue.job, queue.job - local.job],
    ['  the run itself (median)', local.training, queue.training, queue.training - local.training],
    ['  the rest (median)', local.fixed, queue.fixed, queue.fixed - local.fixed],
    ['gap between jobs (median)', local.gap, queue.gap, queue.gap - local.gap],
    ['sweep wall-clock / job', local.perJob, queue.perJob, queue.perJob - local.perJob],
  ];
  if (args.json) {
    process.stdout.write(`${JSON.stringify({ jobsPerSweep: N, rounds: ROUNDS, cores: availableParallelism(), loads, local, queue }, null, 2)}\n`);
  } else {
    for (const [name, ...v] of rows) {
      process.stdout.write(`${String(name).padEnd(28)}${v.map((x) => (typeof x === 'number' ? `${x.toFixed(3)} s` : x).padStart(14)).join('')}\n`);
    }
    process.stdout.write(`load average during the runs: ${Math.min(...loads).toFixed(1)}-${Math.max(...loads).toFixed(1)}\n`);
  }
} catch (err) {
  say(String(err?.stack ?? err));
  exitCode = 1;
} finally {
  for (const p of procs.reverse()) {
    if (p.child.exitCode === null && p.child.signalCode === null) {
      p.child.kill('SIGTERM');
      await Promise.race([p.done, new Promise((r) => setTimeout(r, 10_000))]);
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    }
  }
  if (args.keep) say(`kept ${tmp}`);
  else rmSync(tmp, { recursive: true, force: true });
}
process.exit(exitCode);
