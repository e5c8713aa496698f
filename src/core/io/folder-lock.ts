// An exclusive lock on a folder (a run folder while it trains): the file
// `<folder>/.lock`, created with O_CREAT|O_EXCL, which exactly one process
// wins even on NFS (v3 and later do the exclusive create on the server), and
// which holds who took it: { pid, host, command, startedAt, token }.
//
// A second taker fails at once with one line naming the holder. A lock whose
// holder is gone is taken over, and the taker is told whose it was:
// - on the same host, when the holder's pid is no longer running (SIGKILL,
//   a crash, a power cut);
// - from another host the pid means nothing, so the holder refreshes the
//   file's modification time every 10 s (the heartbeat) and a lock is stale
//   after 60 s without one. This needs the hosts' clocks to agree within
//   tens of seconds, and a holder whose event loop is blocked for a minute
//   looks dead to other hosts (never to its own).
// A takeover is itself guarded by `<folder>/.lock.takeover` (O_EXCL, stale
// after 10 s), so two processes that both find a stale lock cannot both win.
// The lock is released by `release()`, and on process exit (process.exit,
// the end of the event loop, an uncaught error); a signal that kills without
// running exit handlers leaves it to the pid check.
import { closeSync, constants, fstatSync, lstatSync, openSync, readSync, unlinkSync, utimesSync, writeSync, fsyncSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { PeftError, errorReason } from '../errors.js';
import { quoteName } from '../text.js';
import { linkRefused } from './no-follow.js';

/** The lock file's name inside the locked folder. */
export const LOCK_FILE = '.lock';
const TAKEOVER_FILE = '.lock.takeover';

/** Who holds a lock: what `.lock` holds. */
export interface LockHolder {
  pid: number;
  host: string;
  /** The command line that took it (`peft train --exp-name x`). */
  command: string;
  /** ISO time it was taken. */
  startedAt: string;
  /** Unique per taking: a release removes only its own lock. */
  token: string;
}

export interface FolderLockOptions {
  /** What the holder is doing, shown to anyone who finds the folder locked. */
  command: string;
  /** How often the holder refreshes the heartbeat (default 10 s). */
  heartbeatMs?: number;
  /** A lock from another host without a heartbeat for this long is stale (default 60 s). */
  staleAfterMs?: number;
  /** What the folder is, for messages (default 'folder'). */
  what?: string;
}

export interface FolderLock {
  readonly path: string;
  readonly holder: LockHolder;
  /** The stale lock this one replaced, and why it was stale. */
  readonly tookOver?: { holder: LockHolder | undefined; reason: string };
  /** Releases the lock (only if it is still this one's); safe to call twice. */
  release(): void;
}

export const DEFAULT_HEARTBEAT_MS = 10_000;
export const DEFAULT_STALE_AFTER_MS = 60_000;
/** A takeover guard, or a lock file still empty (its taker killed between create and write), older than this is stale. */
const GUARD_STALE_MS = 10_000;

const MAX_LOCK_BYTES = 64 * 1024;

/** Sleeps the thread (a lock is taken synchronously, before anything else happens). */
function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** The lock file's holder and modification time; undefined when there is no lock file. */
function readLock(path: string): { holder: LockHolder | undefined; mtimeMs: number } | undefined {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return undefined;
  }
  if (st.isSymbolicLink()) throw linkRefused(path);
  if (!st.isFile()) throw new PeftError(`${path}: not a regular file; it is where the lock of its folder goes (remove it)`);
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined; // released meanwhile
    throw new PeftError(`${path}: cannot read the lock (${errorReason(err)})`);
  }
  try {
    const size = Math.min(fstatSync(fd).size, MAX_LOCK_BYTES);
    const buf = Buffer.alloc(size);
    const n = size ? readSync(fd, buf, 0, size, 0) : 0;
    let holder: LockHolder | undefined;
    try {
      const v = JSON.parse(buf.subarray(0, n).toString('utf8')) as Partial<LockHolder>;
      if (v && typeof v === 'object' && Number.isInteger(v.pid) && typeof v.host === 'string' && typeof v.token === 'string') {
        holder = { pid: v.pid!, host: v.host, command: String(v.command ?? ''), startedAt: String(v.startedAt ?? ''), token: v.token };
      }
    } catch {
      // empty or torn: its taker died between creating and writing it
    }
    return { holder, mtimeMs: st.mtimeMs };
  } finally {
    closeSync(fd);
  }
}

/** Whether process `pid` runs on this host (EPERM: it runs, as another user). */
function pidAlive(pid: number): boolean {
  if (pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Why the lock is stale, or undefined while its holder may still run. */
function staleReason(found: { holder: LockHolder | undefined; mtimeMs: number }, staleAfterMs: number): string | undefined {
  const age = Date.now() - found.mtimeMs;
  const h = found.holder;
  if (!h) return age > GUARD_STALE_MS ? `an unreadable lock file, ${Math.round(age / 1000)} s old` : undefined;
  if (h.host === hostname()) {
    if (h.pid === process.pid) return undefined; // this process holds it (taken twice): held
    return pidAlive(h.pid) ? undefined : `pid ${h.pid} is no longer running on ${h.host}`;
  }
  return age > staleAfterMs ? `no heartbeat from ${h.host} for ${Math.round(age / 1000)} s` : undefined;
}

/** One line naming the holder. */
export function describeHolder(h: LockHolder | undefined): string {
  if (!h) return 'a process that has not yet said who it is';
  return `pid ${h.pid} on ${quoteName(h.host)} (${quoteName(h.command)}), since ${quoteName(h.startedAt)}`;
}

/** Creates `path` exclusively with `text`; false when it exists. */
function createExclusive(path: string, text: string): boolean {
  let fd: number;
  try {
    // O_EXCL fails on any existing name, a symbolic link included
    fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new PeftError(`${path}: cannot create the lock (${errorReason(err)})`);
  }
  try {
    const b = Buffer.from(text);
    let off = 0;
    while (off < b.length) off += writeSync(fd, b, off, b.length - off);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    try {
      unlinkSync(path);
    } catch {
      // nothing more to undo
    }
    throw new PeftError(`${path}: cannot write the lock (${errorReason(err)})`);
  }
  closeSync(fd);
  return true;
}

function removeIfToken(path: string, token: string): void {
  try {
    if (readLock(path)?.holder?.token === token) unlinkSync(path);
  } catch {
    // gone already, or not ours any more
  }
}

/**
 * Takes the exclusive lock on `dir` (which must exist), or throws a PeftError
 * naming the holder. A stale lock (see the file's head) is taken over and
 * reported in `tookOver`.
 */
export function acquireFolderLock(dir: string, options: FolderLockOptions): FolderLock {
  const path = join(dir, LOCK_FILE);
  const guard = join(dir, TAKEOVER_FILE);
  const staleAfterMs = options.staleAfterMs ?? DEFAULT_STALE_AFTER_MS;
  const what = options.what ?? 'folder';
  const holder: LockHolder = { pid: process.pid, host: hostname(), command: options.command, startedAt: new Date().toISOString(), token: randomBytes(12).toString('hex') };
  const text = `${JSON.stringify(holder)}\n`;
  let tookOver: FolderLock['tookOver'];
  for (let attempt = 0; ; attempt++) {
    if (createExclusive(path, text)) break;
    const found = readLock(path);
    if (!found) continue; // released between our create and our read
    const stale = staleReason(found, staleAfterMs);
    if (!stale) {
      if (!found.holder && attempt < 20) {
        pause(25); // its taker is writing it: look again
        continue;
      }
      throw new PeftError(`${dir}: this ${what} is in use by ${describeHolder(found.holder)}; wait for it to end (if it is not running any more, remove ${path})`);
    }
    if (attempt > 40) throw new PeftError(`${dir}: another process is taking over the stale lock of this ${what} (${guard}); try again in a few seconds`);
    // take it over under the guard, so that of two processes finding it stale only one replaces it
    if (!createExclusive(guard, text)) {
      // another takeover is under way; one whose taker died (older than 10 s) is cleared
      const g = readLock(guard);
      if (g && Date.now() - g.mtimeMs > GUARD_STALE_MS) {
        try {
          if (g.holder) removeIfToken(guard, g.holder.token);
          else unlinkSync(guard);
        } catch {
          // someone else cleared it
        }
      }
      pause(25);
      continue;
    }
    try {
      const again = readLock(path);
      // replace only the very lock found stale (not one taken meanwhile)
      if (again && again.holder?.token === found.holder?.token && again.mtimeMs === found.mtimeMs) {
        unlinkSync(path);
        if (createExclusive(path, text)) {
          tookOver = { holder: found.holder, reason: stale };
          break;
        }
      }
    } finally {
      removeIfToken(guard, holder.token);
    }
  }

  let released = false;
  const beat = setInterval(() => {
    try {
      if (readLock(path)?.holder?.token !== holder.token) {
        clearInterval(beat); // taken over (we were presumed dead): stop touching it
        return;
      }
      const now = new Date();
      utimesSync(path, now, now);
    } catch {
      // a missed heartbeat; the next one may succeed
    }
  }, options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS);
  beat.unref();
  const release = () => {
    if (released) return;
    released = true;
    clearInterval(beat);
    process.off('exit', release);
    removeIfToken(path, holder.token);
  };
  process.on('exit', release);
  return { path, holder, tookOver, release };
}

/** Who holds the lock of `dir` now, if anyone (for messages and tools). */
export function lockHolder(dir: string): LockHolder | undefined {
  return readLock(join(dir, LOCK_FILE))?.holder;
}
