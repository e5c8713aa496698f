// One line for the start of a long job when the native kernels are off
// although their addon is installed: its build failed (often `npm ci` ran
// before OpenBLAS was installed) or the built addon does not load. The job
// then runs on wasm alone at 2-4x the time, which nobody should find out from
// the clock. Nothing is said when the user turned the kernels off
// (PEFT_NATIVE=0, now or at install time), when the addon is not installed at
// all (an optional dependency), or on a backend they are not for.
import { nativeDisabledByEnv, type NativeStatus } from './index.js';

const REBUILD = 'npm rebuild @peftjs/native';

/** The line, or undefined when there is nothing to say. */
export function nativeOffNotice(status: NativeStatus, backend: string, disabledByEnv = nativeDisabledByEnv()): string | undefined {
  if (status.active || disabledByEnv || status.packageFound !== true) return undefined;
  const reason = status.reason ?? 'unknown reason';
  if (/PEFT_NATIVE=0/.test(reason)) return undefined;
  let fix: string;
  if (/npm rebuild/.test(reason)) fix = ''; // the reason says how already (the install script's "OpenBLAS not found: … then npm rebuild …")
  else if (status.openblasInstalled === false) fix = `; fix: apt-get install libopenblas-dev && ${REBUILD}`;
  else fix = `; fix: ${REBUILD} (the build's log: native/build/status.json)`;
  return `native kernels off: ${reason}; this run uses ${backend} alone, about 2-4x slower${fix} (PEFT_NATIVE=0 turns them off without this line)`;
}
