// The sweep's progress on one line: jobs done of all, each running job's step,
// and an ETA from the work done so far; on a terminal the line is redrawn,
// otherwise a plain line every 30 s. Job events print above it.
import { duration } from './progress.js';

export class SweepStatusLine {
  private readonly running = new Map<string, { step: number; total: number }>();
  private finished = 0;
  private readonly startedAt = performance.now();
  private lastPlain = 0;
  private readonly tty: boolean;

  constructor(
    private readonly total: number,
    /** Jobs already done when the sweep (re)started: not counted in the ETA. */
    private readonly doneBefore = 0,
    private readonly out: NodeJS.WriteStream = process.stderr,
  ) {
    this.tty = Boolean(out.isTTY);
  }

  start(id: string): void {
    this.running.set(id, { step: 0, total: 0 });
    this.draw();
  }

  progress(id: string, step: number, total: number): void {
    this.running.set(id, { step, total });
    this.draw();
  }

  /** A job ended: its line printed above the status. */
  finish(id: string, line: string, failed = false): void {
    this.running.delete(id);
    if (!failed) this.finished++;
    this.note(line);
  }

  note(line: string): void {
    this.out.write(this.tty ? `\r\x1b[2K${line}\n` : `${line}\n`);
    this.draw(true);
  }

  done(): void {
    if (this.tty) this.out.write('\r\x1b[2K');
  }

  /** The status text (for tests). */
  text(): string {
    const partial = [...this.running.values()].reduce((a, r) => a + (r.total ? r.step / r.total : 0), 0);
    const todo = this.total - this.doneBefore;
    const fraction = todo > 0 ? (this.finished + partial) / todo : 1;
    const elapsed = (performance.now() - this.startedAt) / 1000;
    const eta = fraction > 0 ? (elapsed * (1 - fraction)) / fraction : NaN;
    const jobs = [...this.running].map(([id, r]) => `${id} ${r.total ? `${r.step}/${r.total}` : 'starting'}`).join(' · ');
    return `sweep ${this.doneBefore + this.finished}/${this.total} done${jobs ? ` · ${jobs}` : ''} · ETA ${duration(eta)}`;
  }

  private draw(force = false): void {
    const now = performance.now();
    if (this.tty) this.out.write(`\r\x1b[2K${this.text().slice(0, Math.max(20, (this.out.columns ?? 120) - 1))}`);
    else if (!force && now - this.lastPlain > 30_000) {
      this.lastPlain = now;
      this.out.write(`${this.text()}\n`);
    }
  }
}
