import { closeSync, constants, fsyncSync, lstatSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { PeftError, errorReason } from '../../core/errors.js';
import { makeDir } from '../../core/io/make-dir.js';
import { appendNoFollow, linkRefused, truncateNoFollow } from '../../core/io/no-follow.js';
import { forEachLine } from '../../core/io/read-lines.js';

export type LogRecord =
  | { type: 'step'; step: number; epoch: number; loss: number; regulariser?: number; lr: number; ms: number; budget?: number }
  | { type: 'val'; step: number; epoch: number; dice: Record<string, number>; iou: Record<string, number>; loss: number }
  | { type: 'info'; step: number; message: string; [k: string]: unknown };

/**
 * A JSON-lines log of every step and validation of a run. Each record is one
 * `write(2)` of one line with O_APPEND, so a crash leaves at most one torn
 * last line; a checkpoint records the log's size, and a resume truncates the
 * log back to it (`truncate`), dropping the steps the checkpoint does not hold
 * and any torn line, so a resumed run's log is the uninterrupted run's log.
 * The log is never written through a symbolic link (O_NOFOLLOW: a link
 * named log.jsonl is refused), and read a line at a time, so a log of any
 * length is read in bounded memory.
 */
export class RunLog {
  constructor(readonly path: string) {
    try {
      makeDir(dirname(path));
    } catch (err) {
      throw new PeftError(`${dirname(path)}: cannot create the run folder (${errorReason(err)})`);
    }
  }

  write(record: LogRecord): void {
    try {
      appendNoFollow(this.path, `${JSON.stringify({ time: new Date().toISOString(), ...record })}\n`, 'append to the log');
    } catch (err) {
      if (err instanceof PeftError) throw err;
      throw new PeftError(`${this.path}: cannot append to the log (${errorReason(err)})`);
    }
  }

  /** Bytes in the log now (0 when it does not exist yet). */
  size(): number {
    try {
      const st = lstatSync(this.path);
      return st.isFile() ? st.size : 0;
    } catch {
      return 0;
    }
  }

  /**
   * Cuts the log back to what it held at a checkpoint: to `bytes` when the
   * log still has at least that many, else (an older checkpoint without a
   * size, or a log that was replaced) to the records up to `step`.
   */
  truncate(bytes: number | undefined, step: number): void {
    try {
      let st;
      try {
        st = lstatSync(this.path);
      } catch {
        return; // no log yet
      }
      if (st.isSymbolicLink()) throw linkRefused(this.path);
      if (bytes !== undefined && st.isFile() && st.size >= bytes) {
        truncateNoFollow(this.path, bytes);
        return;
      }
      // streamed into a temp file beside it and renamed over: a log of any length
      const tmp = join(dirname(this.path), `.${basename(this.path)}.${process.pid}.tmp`);
      rmSync(tmp, { force: true });
      const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
      try {
        RunLog.forEach(this.path, (r) => {
          if (typeof r.step === 'number' && r.step <= step) {
            const b = Buffer.from(`${JSON.stringify(r)}\n`);
            let off = 0;
            while (off < b.length) off += writeSync(fd, b, off, b.length - off);
          }
        });
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, this.path);
    } catch (err) {
      if (err instanceof PeftError) throw err;
      throw new PeftError(`${this.path}: cannot truncate the log (${errorReason(err)})`);
    }
  }

  /** Calls `onRecord` with each record of a log, a line at a time (a torn line, from a crash, and lines over 64 KiB are skipped). */
  static forEach(path: string, onRecord: (r: LogRecord) => void): void {
    try {
      lstatSync(path);
    } catch {
      return; // no log yet
    }
    forEachLine(path, (line) => {
      if (!line.trim()) return;
      let r: unknown;
      try {
        r = JSON.parse(line);
      } catch {
        return; // an interrupted write leaves at most one torn line
      }
      if (typeof r === 'object' && r !== null && !Array.isArray(r)) onRecord(r as LogRecord);
    });
  }

  /** The records of a log (a torn last line, from a crash, is ignored); for logs known to be short, else `forEach`. */
  static read(path: string): LogRecord[] {
    const out: LogRecord[] = [];
    RunLog.forEach(path, (r) => out.push(r));
    return out;
  }
}
