import { appendFileSync, mkdirSync, readFileSync, existsSync } from 'node:fs';
import { dirname } from 'node:path';

export type LogRecord =
  | { type: 'step'; step: number; epoch: number; loss: number; regulariser?: number; lr: number; ms: number; budget?: number }
  | { type: 'val'; step: number; epoch: number; dice: Record<string, number>; iou: Record<string, number>; loss: number }
  | { type: 'info'; step: number; message: string; [k: string]: unknown };

/** A JSON-lines log of every step and validation of a run (appended, flushed per line). */
export class RunLog {
  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
  }

  write(record: LogRecord): void {
    appendFileSync(this.path, `${JSON.stringify({ time: new Date().toISOString(), ...record })}\n`);
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
