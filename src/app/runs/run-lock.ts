// One trainer per run folder: `peft train` (a new run or --resume), and any
// library caller of trainRun or a sweep, holds `<run>/.lock` for the whole
// run (src/core/io/folder-lock.ts). A second one fails at once, naming the
// holder; a lock left by a killed trainer is taken over. Readers (eval,
// merge, export, report, serve) do not take it: the files they read are
// replaced atomically while a run trains.
import { acquireFolderLock, LOCK_FILE, type FolderLock } from '../../core/io/folder-lock.js';

export { describeHolder, lockHolder, type FolderLock, type LockHolder } from '../../core/io/folder-lock.js';

/** Takes the exclusive lock of the run folder `runDir` (which must exist), or throws a PeftError naming the process that holds it. */
export function acquireRunLock(runDir: string, options: { command: string; heartbeatMs?: number; staleAfterMs?: number }): FolderLock {
  return acquireFolderLock(runDir, { ...options, what: 'run folder' });
}

/** Whether a name in a run folder is the lock's (not part of the run's contents). */
export function isRunLockFile(name: string): boolean {
  return name === LOCK_FILE || name.startsWith(`${LOCK_FILE}.`);
}
