// Peak memory DURING a piece of work, not what is held after it: Linux keeps
// the process's resident high-water mark (VmHWM in /proc/self/status), and
// writing 5 to /proc/self/clear_refs resets it to the current RSS. So the
// mark is reset, the work runs (synchronous decoders included: nothing needs
// to sample while they block the thread), and the mark read back; the peak is
// how far it rose above the RSS at the start. Vitest runs each test file in
// its own process (pool 'forks'), so no other file's work is counted.
import { readFileSync, writeFileSync } from 'node:fs';

const MiB = 1024 * 1024;

function statusKb(field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  if (!m) throw new Error(`no ${field} in /proc/self/status`);
  return Number(m[1]) * 1024;
}

/** Whether the high-water mark can be reset here (Linux 4.0 and later). */
export const peakRssAvailable: boolean = (() => {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    statusKb('VmHWM');
    return true;
  } catch {
    return false;
  }
})();

export interface Peak<T> {
  /** What `work` returned, or the error it threw. */
  outcome: { value: T } | { error: unknown };
  /** How far the resident set rose above where it was when `work` started, in MiB. */
  peakMiB: number;
}

/** Runs `work` and measures the peak of the process's resident memory while it ran. */
export async function measurePeak<T>(work: () => T | Promise<T>): Promise<Peak<T>> {
  (globalThis as { gc?: () => void }).gc?.();
  writeFileSync('/proc/self/clear_refs', '5');
  const start = statusKb('VmRSS');
  let outcome: Peak<T>['outcome'];
  try {
    outcome = { value: await work() };
  } catch (error) {
    outcome = { error };
  }
  return { outcome, peakMiB: Math.max(0, statusKb('VmHWM') - start) / MiB };
}
