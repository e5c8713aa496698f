import { appendFileSync, existsSync, readFileSync, statSync, truncateSync } from 'node:fs';
import { dirname } from 'node:path';
import { PeftError, errorReason } from '../../core/errors.js';
import { writeFileAtomic } from '../../core/io/atomic.js';
import { makeDir } from '../../core/io/make-dir.js';

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
      appendFileSync(this.path, `${JSON.stringify({ time: new Date().toISOString(), ...record })}\n`);
    } catch (err) {
      throw new PeftError(`${this.path}: cannot append to the log (${errorReason(err)})`);
    }
  }

  /** Bytes in the log now (0 when it does not exist yet). */
  size(): number {
    try {
      return statSync(this.path).size;
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
      if (!existsSync(this.path)) return;
      if (bytes !== undefined && this.size() >= bytes) {
        truncateSync(this.path, bytes);
        return;
      }
      const kept = RunLog.read(this.path).filter((r) => typeof r.step === 'number' && r.step <= step);
      writeFileAtomic(this.path, kept.map((r) => `${JSON.stringify(r)}\n`).join(''));
    } catch (err) {
      if (err instanceof PeftError) throw err;
      throw new PeftError(`${this.path}: cannot truncate the log (${errorReason(err)})`);
    }
  }

  /** The records of a log (a torn last line, from a crash, is ignored). */
  static read(path: string): LogRecord[] {
    if (!existsSync(path)) return [];
    const out: LogRecord[] = [];
    for (const line of readFileSync(path, 'utf8').split('\n')) {
      if (!line.trim()) continue;
      try {
        out.push(JSON.parse(line) as LogRecord);
      } catch {
        // an interrupted write leaves at most one torn line
      }
    }
    return out;
  }
}
