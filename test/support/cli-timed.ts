// Running `peft` (bin/run.js, from dist/) as a user does, with a deadline: a
// command still running then is killed (SIGKILL, with its process group's
// memory) and reported as timed out, so a test of a hang fails instead of
// hanging. Used by the tests of hostile inputs that once hung the CLI
// (unbounded reads, plugins that never return, catastrophic patterns).
import { spawn } from 'node:child_process';
import { bin } from './cli-runs.js';

export interface TimedRun {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
  timedOut: boolean;
}

/** Runs `peft args` with `env` added; kills it after `timeoutMs`. Output past 4 MB per stream is dropped (counted in its length only). */
export function peftTimed(args: string[], options: { env?: Record<string, string>; timeoutMs?: number; cwd?: string } = {}): Promise<TimedRun> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [bin, ...args], { cwd: options.cwd, env: { ...process.env, PEFT_BACKEND: 'cpu', ...options.env } });
    let stdout = '';
    let stderr = '';
    const keep = (s: string, d: Buffer) => (s.length < 4 * 2 ** 20 ? s + d.toString('utf8') : s);
    child.stdout.on('data', (d: Buffer) => (stdout = keep(stdout, d)));
    child.stderr.on('data', (d: Buffer) => (stderr = keep(stderr, d)));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: performance.now() - t0, timedOut });
    });
  });
}

/** `fn` over `items`, `width` at a time (the machine has two cores), results in order. */
export async function inPool<T, R>(items: readonly T[], width: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!, i);
      }
    }),
  );
  return out;
}
