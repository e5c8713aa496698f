import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { PeftError, errorReason } from '../errors.js';
import { makeDir } from './make-dir.js';

/**
 * Writes a file so that a crash leaves either the old file or the new one,
 * never a torn one: write a temp file beside it, fsync, rename over.
 */
export function writeFileAtomic(path: string, data: Uint8Array | string): void {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
  try {
    makeDir(dir);
    const fd = openSync(tmp, 'w');
    try {
      const bytes = typeof data === 'string' ? Buffer.from(data) : data;
      let off = 0;
      while (off < bytes.byteLength) off += writeSync(fd, bytes, off, bytes.byteLength - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
    try {
      const dfd = openSync(dir, 'r');
      fsyncSync(dfd);
      closeSync(dfd);
    } catch {
      // some file systems cannot fsync a directory; the rename stands
    }
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new PeftError(`${path}: cannot write (${errorReason(err)})`);
  }
}
