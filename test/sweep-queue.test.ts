// `peft sweep --queue` and `peft worker` on a real Redis (Debian's
// redis-server, started here on a free loopback port in a temp folder): two
// workers share a tiny grid, one is SIGKILLed mid-job once its job has a
// checkpoint, and the sweep still completes — every result recorded exactly
// once, BullMQ's completed count equal to the jobs, the killed job resumed
// from its checkpoint by the other worker (not from step 0) — and
// `peft report` renders the sweep. Nothing talks to any address but 127.0.0.1.
// Without redis-server the test is skipped with a note, except in CI, where
// .ci/run installs it (scripts/ci/install-redis.sh) and its absence fails.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { afterAll, describe, expect, it } from 'vitest';
import { QUEUE_NAME, QUEUE_PREFIX } from '../src/app/sweep/queue.js';
import { bin, checkpointStep, loggedSteps, peftSync, sleep } from './support/cli-runs.js';

// long enough that the killed job is still training when the kill lands (its checkpoint is polled every 250 ms)
const STEPS = 100;
const JOBS = ['sam-lora-s0', 'sam-lora-s1', 'sam-adapter-s0', 'sam-adapter-s1'];

function redisServer(): string | undefined {
  for (const p of ['/usr/bin/redis-server', '/usr/local/bin/redis-server']) if (existsSync(p)) return p;
  const r = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() ? r.stdout.trim() : undefined;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

/** Polls `check` every 250 ms until it returns a value (not undefined/false), or fails naming `what` after `ms`. */
async function waitFor<T>(what: string, ms: number, check: () => T | undefined | false, context = () => ''): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms / 1000} s waiting for ${what}\n${context()}`);
    await sleep(250);
  }
}

interface Proc {
  child: ChildProcess;
  out: () => string;
  exited: Promise<number | null>;
}

/** A process in its own process group (so that afterAll can end it and whatever it started), its output kept. */
function start(command: string, args: string[], cwd?: string): Proc {
  const child = spawn(command, args, { cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  child.stdout!.on('data', (d) => (text += d));
  child.stderr!.on('data', (d) => (text += d));
  const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  return { child, out: () => text, exited };
}

const started: Proc[] = [];
let tmp: string | undefined;

afterAll(async () => {
  // workers and sweep first (their process groups hold the peft train children), redis last
  for (const p of [...started].reverse()) {
    if (p.child.exitCode !== null || p.child.signalCode !== null) continue;
    try {
      process.kill(-p.child.pid!, 'SIGTERM');
    } catch {
      // already gone
    }
    const gone = await Promise.race([p.exited.then(() => true), sleep(5000).then(() => false)]);
    if (!gone) {
      try {
        process.kill(-p.child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('peft sweep --queue with two peft workers on redis-server', () => {
  it('a worker SIGKILLed mid-job: its job is taken back and resumed from its checkpoint, every result recorded once, the report renders', async (ctx) => {
    const redis = redisServer();
    if (!redis) {
      if (process.env.CI) throw new Error('redis-server is not installed: .ci/run installs it with scripts/ci/install-redis.sh');
      ctx.skip('redis-server is not installed (bash scripts/ci/install-redis.sh installs it): the queue test is skipped');
      return;
    }
    tmp = mkdtempSync(join(tmpdir(), 'peft-queue-'));
    const sweepDir = join(tmp, 'sweep');

    // redis on a free loopback port, nothing saved (a port taken between the probe and the start: try another)
    let url = '';
    for (let tries = 0; tries < 3 && !url; tries++) {
      const port = await freePort();
      const server = start(redis, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', tmp], tmp);
      started.push(server);
      const ready = await waitFor('redis-server to start', 15_000, () => /Ready to accept connections/.test(server.out()) || (server.child.exitCode !== null ? 'exited' : undefined), server.out);
      if (ready === true) url = `redis://127.0.0.1:${port}`;
    }
    expect(url, 'redis-server did not start on a free port').not.toBe('');

    // the sweep: enqueued, then followed to its end by `peft sweep --queue` itself
    const sweep = start(process.execPath, [bin, 'sweep', '--queue', url, '--backbones', 'sam', '--methods', 'lora,adapter', '--seeds', '2', '--out', sweepDir, '--', '--preset', 'tiny', '--steps', String(STEPS), '--save-every', '5', '--val-every', '0']);
    started.push(sweep);
    await waitFor('the jobs to be enqueued', 60_000, () => /4 enqueued on peftjs-sweep/.test(sweep.out()) || sweep.child.exitCode !== null, sweep.out);
    expect(sweep.child.exitCode, sweep.out()).toBeNull();

    // two workers; a short stall time so that the killed worker's job comes back within seconds
    const workerArgs = [bin, 'worker', '--queue', url, '--stall-seconds', '5'];
    const a = start(process.execPath, workerArgs);
    const b = start(process.execPath, workerArgs);
    started.push(a, b);

    // A's first job, once it has a checkpoint and is not finished
    const victim = await waitFor('worker A to start a job', 90_000, () => /start (\S+) /.exec(a.out())?.[1], () => `A:\n${a.out()}\nB:\n${b.out()}`);
    const runDir = join(sweepDir, 'runs', victim);
    const killedAt = await waitFor(`a checkpoint of ${victim}`, 90_000, () => {
      let step: number | undefined;
      try {
        step = existsSync(join(runDir, 'checkpoints')) ? checkpointStep(runDir) : undefined;
      } catch {
        // caught between the renames of a checkpoint being written: look again
      }
      return step !== undefined && step < STEPS && !existsSync(join(sweepDir, 'results', `${victim}.json`)) ? step : undefined;
    }, () => `A:\n${a.out()}`);
    process.kill(a.child.pid!, 'SIGKILL');
    await a.exited;

    // B (the only worker left) takes the stalled job back and resumes it; the follower sees the sweep end
    const code = await Promise.race([sweep.exited, sleep(150_000).then(() => 'timeout' as const)]);
    expect(code, `sweep:\n${sweep.out()}\nB:\n${b.out()}`).toBe(0);
    expect(sweep.out()).toMatch(/4 of 4 jobs done, 0 failed for good/);
    expect(b.out()).toMatch(new RegExp(`start ${victim} \\(.*\\): attempt 2, resuming its run`));

    // every result exactly once, nothing left half-written
    expect(readdirSync(join(sweepDir, 'results')).sort()).toEqual(JOBS.map((j) => `${j}.json`).sort());
    for (const id of JOBS) {
      const r = JSON.parse(readFileSync(join(sweepDir, 'results', `${id}.json`), 'utf8'));
      expect(r).toMatchObject({ id, worker: { via: 'queue' } });
      expect(r.summary.steps).toBe(STEPS);
      expect(loggedSteps(join(sweepDir, 'runs', id))).toBe(STEPS);
    }
    // the killed job resumed from its checkpoint, not from step 0
    const victimResult = JSON.parse(readFileSync(join(sweepDir, 'results', `${victim}.json`), 'utf8'));
    // (2 attempts, unless a lock was also lost to a stalled machine: each further attempt resumes too)
    expect(victimResult.attempts).toBeGreaterThanOrEqual(2);
    const resumed = readFileSync(join(runDir, 'log.jsonl'), 'utf8').split('\n').filter((l) => l.includes('"type":"info"') && l.includes('resumed')).map((l) => JSON.parse(l));
    expect(resumed.length).toBeGreaterThanOrEqual(1);
    expect(resumed.every((r) => r.message === 'resumed' && r.step > 0)).toBe(true);
    expect(resumed[0].step).toBeGreaterThanOrEqual(killedAt);

    // BullMQ: every job completed once, none failed; the killed one stalled once
    const queue = new Queue(QUEUE_NAME, { connection: { host: '127.0.0.1', port: Number(new URL(url).port) }, prefix: QUEUE_PREFIX });
    try {
      const counts = await queue.getJobCounts('completed', 'failed', 'waiting', 'active', 'delayed');
      expect(counts).toEqual({ completed: JOBS.length, failed: 0, waiting: 0, active: 0, delayed: 0 });
      const completed = await queue.getJobs('completed');
      expect(completed.map((j) => j.data.jobId).sort()).toEqual([...JOBS].sort());
      expect(completed.find((j) => j.data.jobId === victim)!.stalledCounter).toBeGreaterThanOrEqual(1);
    } finally {
      await queue.close();
    }

    // enqueueing the finished sweep again adds nothing; the status shows it done
    const again = peftSync(['sweep', '--queue', url, '--out', sweepDir, '--detach']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/0 enqueued, 4 done before/);
    const status = peftSync(['sweep', '--status', '--queue', url, sweepDir]);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/4 completed, 0 failed/);
    expect(status.stdout).toMatch(/: 4\/4 done, 0 running, 0 queued, 0 failed/);

    // the report over the sweep's seeds
    const report = peftSync(['report', sweepDir, '--out', join(tmp, 'report'), '--samples', '0']);
    expect(report.code, report.stderr).toBe(0);
    expect(existsSync(join(tmp, 'report', 'index.html'))).toBe(true);
  }, 300_000);
});
