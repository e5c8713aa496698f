import { closeSync, fsyncSync, lstatSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { PeftError, errorReason } from '../errors.js';
import { makeDir } from './make-dir.js';

/**
 * Writes a file so that a crash leaves either the old file or the new one,
 * never a torn one: write a temp file beside it, fsync, rename over.
 *
 * Never through a symbolic link: the temp file is created with O_EXCL (`wx`),
 * which fails on any existing name, a link included, and the rename replaces
 * whatever is at `path` (a link is replaced, its target untouched). A folder
 * at `path` is refused. The folder `path` goes into is created if missing;
 * writers inside a folder they own check it first (`makeDirInside`).
 */
export function writeFileAtomic(path: string, data: Uint8Array | string): void {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  let created = false;
  try {
    makeDir(dir);
    try {
      if (lstatSync(path).isDirectory()) throw new PeftError(`${path}: a folder is in the way; cannot write the file`);
    } catch (err) {
      if (err instanceof PeftError) throw err;
      // no such file: the usual case
    }
    const fd = openSync(tmp, 'wx', 0o644);
    created = true;
    try {
      const bytes = typeof data === 'string' ? Buffer.from(data) : data;
      let off = 0;
      while (off < bytes.byteLength) off += writeSync(fd, bytes, off, bytes.byteLength - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
    created = false;
    try {
      const dfd = openSync(dir, 'r');
      fsyncSync(dfd);
      closeSync(dfd);
    } catch {
      // some file systems cannot fsync a directory; the rename stands
    }
  } catch (err) {
    // only a temp file this call made is removed (never a name someone else holds)
    if (created) rmSync(tmp, { force: true });
    if (err instanceof PeftError) throw err;
    throw new PeftError(`${path}: cannot write (${errorReason(err)})`);
  }
}
