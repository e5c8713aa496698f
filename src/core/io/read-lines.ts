// Reading a line-per-record file (log.jsonl) of any size in bounded memory:
// the file is read in 1 MiB chunks and handed over one line at a time, so a
// log of 300,000 steps or of several gigabytes never becomes one string (a
// string over 512 MiB cannot exist in V8, and reading one whole log was how
// `peft report` crashed on a long run). A line longer than the limit is
// skipped and counted, never joined into memory: no record peftjs writes
// comes near it. Only regular files are read (the checks of
// read-regular-file.ts: a FIFO or /dev/zero named log.jsonl is refused).
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { PeftError, errorReason } from '../errors.js';
import { checkRegularFile } from './read-regular-file.js';

/** The longest line handed over, in bytes (64 KiB); a longer one is skipped. */
export const MAX_LINE_BYTES = 64 * 1024;

const CHUNK = 1 << 20;

export interface LineScan {
  /** Lines handed over (empty ones included). */
  lines: number;
  /** Lines skipped for being longer than the limit. */
  tooLong: number;
  /** Bytes read. */
  bytes: number;
}

/**
 * Calls `onLine` with each line of the regular file `path` (without its
 * `\n`; a last line without one is handed over too), decoded as UTF-8.
 * Lines over `maxLineBytes` are skipped. Memory stays within one chunk plus
 * one line whatever the file's size. A missing file is a PeftError naming it,
 * as is anything that is not a regular file.
 */
export function forEachLine(path: string, onLine: (line: string) => void, maxLineBytes = MAX_LINE_BYTES): LineScan {
  checkRegularFile(path, 'json', Number.MAX_SAFE_INTEGER);
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    throw new PeftError(`${path}: cannot read (${errorReason(err)})`);
  }
  const scan: LineScan = { lines: 0, tooLong: 0, bytes: 0 };
  try {
    if (!fstatSync(fd).isFile()) throw new PeftError(`${path}: not a regular file; only regular files are read`);
    const buf = Buffer.allocUnsafe(CHUNK);
    // the start of a line that continues in the next chunk (copied: the chunk buffer is reused)
    let carry: Buffer[] = [];
    let carried = 0;
    let skipping = false; // inside a line already found too long
    for (;;) {
      let n: number;
      try {
        n = readSync(fd, buf, 0, CHUNK, null);
      } catch (err) {
        throw new PeftError(`${path}: cannot read (${errorReason(err)})`);
      }
      if (n === 0) break;
      scan.bytes += n;
      const view = buf.subarray(0, n);
      let start = 0;
      while (start < n) {
        const nl = view.indexOf(10, start);
        const piece = view.subarray(start, nl === -1 ? n : nl);
        if (nl !== -1 && !skipping && carried === 0 && piece.length <= maxLineBytes) {
          // the common case: a whole line inside this chunk, decoded without a copy
          scan.lines++;
          onLine(piece.toString('utf8'));
          start = nl + 1;
          continue;
        }
        if (!skipping) {
          if (carried + piece.length > maxLineBytes) {
            skipping = true;
            carry = [];
            carried = 0;
          } else if (piece.length > 0) {
            carry.push(Buffer.from(piece));
            carried += piece.length;
          }
        }
        if (nl === -1) break;
        if (skipping) scan.tooLong++;
        else {
          scan.lines++;
          onLine(Buffer.concat(carry).toString('utf8'));
        }
        carry = [];
        carried = 0;
        skipping = false;
        start = nl + 1;
      }
    }
    if (skipping) scan.tooLong++;
    else if (carried > 0) {
      scan.lines++;
      onLine(Buffer.concat(carry).toString('utf8'));
    }
  } finally {
    closeSync(fd);
  }
  return scan;
}
