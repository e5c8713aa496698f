// `mkdir -p` that always ends. Node 20's recursive mkdir spins at full CPU
// forever where mkdir reports ENOENT under a parent that exists (procfs and
// sysfs do: `peft data synth --out /proc/x` hung); this creates one level at a
// time and lets that ENOENT through as the error it is.
import { mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** Creates `path` and its missing parents; throws the file system's error (ENOENT, ENOTDIR, EEXIST for a file, EACCES...). */
export function makeDir(path: string): void {
  const abs = resolve(path);
  if (isDirectory(abs)) return;
  const parent = dirname(abs);
  if (parent !== abs) makeDir(parent);
  try {
    mkdirSync(abs);
  } catch (err) {
    // created meanwhile by someone else: what was asked for exists
    if ((err as NodeJS.ErrnoException).code === 'EEXIST' && isDirectory(abs)) return;
    throw err;
  }
}
