import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PeftError } from '../errors.js';
import { acquireFolderLock, LOCK_FILE, lockHolder, type LockHolder } from './folder-lock.js';

const root = mkdtempSync(join(tmpdir(), 'peft-lock-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const folder = () => {
  const d = join(root, `f${n++}`);
  spawnSync('mkdir', [d]);
  return d;
};

/** A pid that is certainly not running: a child that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

const plant = (dir: string, h: Partial<LockHolder>, ageMs = 0) => {
  const p = join(dir, LOCK_FILE);
  writeFileSync(p, JSON.stringify({ pid: 1, host: hostname(), command: 'peft train --exp-name x', startedAt: '2026-12-01T00:00:00.000Z', token: 'planted', ...h }));
  if (ageMs) {
    const t = new Date(Date.now() - ageMs);
    utimesSync(p, t, t);
  }
  return p;
};

describe('acquireFolderLock', () => {
  it('is exclusive: a second taker fails at once with one line naming the holder (pid, host, command, since)', () => {
    const d = folder();
    const a = acquireFolderLock(d, { command: 'peft train --exp-name same' });
    expect(lockHolder(d)?.pid).toBe(process.pid);
    // a second taker (here the same process, which never counts as stale: a pid that runs)
    let line = '';
    try {
      acquireFolderLock(d, { command: 'second' });
    } catch (err) {
      expect(err).toBeInstanceOf(PeftError);
      line = (err as Error).message;
    }
    expect(line.split('\n')).toHaveLength(1);
    expect(line).toContain(`${d}: this folder is in use by pid ${process.pid} on '${hostname()}' ('peft train --exp-name same'), since '`);
    a.release();
    expect(existsSync(join(d, LOCK_FILE))).toBe(false);
    a.release(); // twice: harmless
    const b = acquireFolderLock(d, { command: 'again' });
    b.release();
  });

  it('takes over a lock whose process is gone on this host, and says whose it was', () => {
    const d = folder();
    const pid = deadPid();
    plant(d, { pid });
    const l = acquireFolderLock(d, { command: 'resume' });
    expect(l.tookOver?.holder?.pid).toBe(pid);
    expect(l.tookOver?.reason).toBe(`pid ${pid} is no longer running on ${hostname()}`);
    expect(lockHolder(d)?.token).toBe(l.holder.token);
    l.release();
  });

  it('a live holder on this host is never stale, however old its heartbeat', () => {
    const d = folder();
    plant(d, { pid: process.ppid }, 3_600_000);
    expect(() => acquireFolderLock(d, { command: 'x' })).toThrow(PeftError);
    expect(() => acquireFolderLock(d, { command: 'x' })).toThrow(`in use by pid ${process.ppid}`);
  });

  it('another host: the pid means nothing; stale only after staleAfterMs without a heartbeat', () => {
    const d = folder();
    plant(d, { host: 'other-host', pid: deadPid() }, 5_000);
    expect(() => acquireFolderLock(d, { command: 'x' })).toThrow(/in use by pid \d+ on 'other-host'/);
    plant(d, { host: 'other-host', pid: process.pid }, 61_000);
    const l = acquireFolderLock(d, { command: 'x' });
    expect(l.tookOver?.reason).toMatch(/^no heartbeat from other-host for 6\d s$/);
    l.release();
  });

  it('the holder refreshes its heartbeat (the lock file mtime)', async () => {
    const d = folder();
    const l = acquireFolderLock(d, { command: 'x', heartbeatMs: 50 });
    const p = join(d, LOCK_FILE);
    const old = new Date(Date.now() - 30_000);
    utimesSync(p, old, old);
    await new Promise((r) => setTimeout(r, 200));
    expect(Date.now() - statSync(p).mtimeMs).toBeLessThan(5_000);
    l.release();
  });

  it('release removes only its own lock (not one that took it over)', () => {
    const d = folder();
    const l = acquireFolderLock(d, { command: 'x' });
    plant(d, { pid: process.ppid, token: 'someone-else' });
    l.release();
    expect(JSON.parse(readFileSync(join(d, LOCK_FILE), 'utf8')).token).toBe('someone-else');
  });

  it('an empty lock file (its taker killed between create and write) is stale after 10 s, not before', () => {
    const d = folder();
    const p = join(d, LOCK_FILE);
    writeFileSync(p, '');
    expect(() => acquireFolderLock(d, { command: 'x' })).toThrow(/in use by a process that has not yet said who it is/);
    const t = new Date(Date.now() - 20_000);
    utimesSync(p, t, t);
    const l = acquireFolderLock(d, { command: 'x' });
    expect(l.tookOver?.reason).toMatch(/unreadable lock file/);
    l.release();
  });

  it('a stale lock under a takeover by another process is left to it; a takeover guard whose taker died (10 s) is cleared', () => {
    const d = folder();
    plant(d, { pid: deadPid() });
    const guard = join(d, '.lock.takeover');
    writeFileSync(guard, JSON.stringify({ pid: process.ppid, host: hostname(), command: 'other', startedAt: '', token: 'guard' }));
    expect(() => acquireFolderLock(d, { command: 'x' })).toThrow(`${d}: another process is taking over the stale lock of this folder (${guard}); try again in a few seconds`);
    const t = new Date(Date.now() - 20_000);
    utimesSync(guard, t, t);
    const l = acquireFolderLock(d, { command: 'x' });
    expect(l.tookOver?.reason).toMatch(/is no longer running/);
    expect(existsSync(guard)).toBe(false);
    l.release();
  });

  it('a symbolic link at .lock is refused, not followed', () => {
    const d = folder();
    const outside = join(root, 'outside-lock.txt');
    writeFileSync(outside, 'mine');
    symlinkSync(outside, join(d, LOCK_FILE));
    expect(() => acquireFolderLock(d, { command: 'x' })).toThrow(/is a symbolic link/);
    expect(readFileSync(outside, 'utf8')).toBe('mine');
  });
});
