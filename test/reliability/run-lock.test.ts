// One trainer per run folder (issue 19, class 8): two `peft train --exp-name
// same` started together both exited 0, their logs interleaved and run.json
// came from one, the checkpoints from the other. Now the run folder's lock
// (<run>/.lock) lets exactly one through; the other exits 2 at once with one
// line naming the holder (pid, host, command, since when). A --resume of a
// run that is training is refused the same way; a second SIGINT (exit 130)
// still releases the lock; a lock left by a SIGKILLed trainer is taken over
// by the next --resume, which says whose it was.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ensureDefaultDataset } from '../../src/app/data/synth-output.js';
import { loggedSteps, peftSpawn, peftSync, sleep, type CliResult } from '../support/cli-runs.js';

const work = mkdtempSync(join(tmpdir(), 'peft-run-lock-'));
const env = { PEFT_CACHE: join(work, 'cache'), PEFT_PLUGINS: '' };
const runs = join(work, 'runs');
const children: { kill: (s: NodeJS.Signals) => void }[] = [];
afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

async function trainArgs(name: string, steps: number): Promise<string[]> {
  const data = await ensureDefaultDataset(join(work, 'cache'), { n: 6, size: 64, seed: 1 });
  return ['train', '--backbone', 'sam', '--preset', 'tiny', '--image-size', '64', '--data-path', data, '--batch', '2', '--steps', String(steps), '--save-every', '2', '--seed', '3', '--backend', 'wasm', '--out', runs, '--exp-name', name];
}
/** Starts `peft args`, its stderr kept for messages. */
function watched(args: string[]) {
  const p = peftSpawn(args, env);
  children.push(p.child);
  return p;
}
const resumeArgs = (name: string) => ['train', '--resume', '--out', runs, '--exp-name', name, '--backend', 'wasm'];
const errorLines = (r: CliResult) => r.stderr.split('\n').filter((l) => l.startsWith('peft: error:'));
const holderLine = (pid: number | undefined) => new RegExp(`this run folder is in use by pid ${pid} on '${hostname().replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}' \\('peft train [^']*'\\), since '20\\d\\d-`);

describe('one trainer per run folder', () => {
  it('two peft train --exp-name same started together: exactly one trains, the other exits 2 naming the holder', async () => {
    const args = await trainArgs('same', 40);
    const a = peftSpawn(args, env);
    const b = peftSpawn(args, env);
    children.push(a.child, b.child);
    const [ra, rb] = await Promise.all([a.done, b.done]);
    const results = [
      { r: ra, pid: a.child.pid },
      { r: rb, pid: b.child.pid },
    ];
    const won = results.filter((x) => x.r.code === 0);
    const lost = results.filter((x) => x.r.code !== 0);
    expect(won, `${ra.stderr}\n${rb.stderr}`).toHaveLength(1);
    expect(lost[0]!.r.code).toBe(2);
    const lines = errorLines(lost[0]!.r);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(holderLine(won[0]!.pid));
    // the run is the winner's alone: every step once, and the lock released
    const log = readFileSync(join(runs, 'same', 'log.jsonl'), 'utf8');
    expect((log.match(/"type":"step"/g) ?? []).length).toBe(40);
    expect(existsSync(join(runs, 'same', '.lock'))).toBe(false);
  }, 300_000);

  it('a --resume while the run trains is refused naming it; a second SIGINT (exit 130) releases the lock; after a SIGKILL the next --resume takes the lock over and says so', async () => {
    const dir = join(runs, 'killed');
    const a = peftSpawn(await trainArgs('killed', 4000), env);
    children.push(a.child);
    while (a.child.exitCode === null && loggedSteps(dir) < 3) await sleep(50);
    const busy = peftSync(resumeArgs('killed'), env);
    expect(busy.code).toBe(2);
    expect(errorLines(busy)).toHaveLength(1);
    expect(errorLines(busy)[0]).toMatch(holderLine(a.child.pid));
    // SIGINT twice: quits at once (exit 130) and the exit handler removes the lock; or, when
    // the first stop was faster than the second signal, a clean stop (0) or the signal's default
    // action after the command has finished: the lock is gone in every case
    a.child.kill('SIGINT');
    await sleep(10);
    a.child.kill('SIGINT');
    const ra = await a.done;
    expect(ra.code === 0 || ra.code === 130 || ra.signal === 'SIGINT', ra.stderr).toBe(true);
    expect(existsSync(join(dir, '.lock'))).toBe(false);

    // a resumed trainer SIGKILLed once it trains: its lock stays, with a pid that no longer runs
    // (the log, not the progress line: a resumed run prints its first plain line only after 10 s)
    const b = watched(resumeArgs('killed'));
    const atB = loggedSteps(dir);
    while (b.child.exitCode === null && loggedSteps(dir) <= atB) await sleep(20);
    b.child.kill('SIGKILL');
    const rb = await b.done;
    expect(rb.signal, rb.stderr).toBe('SIGKILL');
    expect(JSON.parse(readFileSync(join(dir, '.lock'), 'utf8')).pid).toBe(b.child.pid);

    // the next --resume takes it over and says whose it was, then trains (stopped here by one SIGINT)
    const c = watched(resumeArgs('killed'));
    const atC = loggedSteps(dir);
    while (c.child.exitCode === null && loggedSteps(dir) <= atC) await sleep(20);
    c.child.kill('SIGINT');
    const rc = await c.done;
    const warning = rc.stderr.split('\n').find((l) => l.includes("took over the run's lock"));
    expect(warning, rc.stderr).toBeDefined();
    const since = /since '([^']+)'/.exec(warning!)?.[1];
    expect(warning).toBe(`peft: warning: ${dir}: took over the run's lock from pid ${b.child.pid} on '${hostname()}' ('peft train --resume --out ${runs} --exp-name killed --backend wasm'), since '${since}' (pid ${b.child.pid} is no longer running on ${hostname()})`);
    expect([0, 130]).toContain(rc.code);
    expect(existsSync(join(dir, '.lock'))).toBe(false);
  }, 300_000);
});
