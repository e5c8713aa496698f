// A one-line progress bar with ETA on a terminal; plain periodic lines otherwise;
// and durations as people read them.
export class ProgressLine {
  private readonly start = performance.now();
  private lastPlain = 0;
  private readonly tty: boolean;

  constructor(
    private readonly total: number,
    private readonly out: NodeJS.WriteStream = process.stderr,
    /** What is counted: `step 3/10`, `image 3/10`. */
    private readonly unit = 'step',
  ) {
    this.tty = Boolean(out.isTTY);
  }

  update(done: number, fields: Record<string, string>): void {
    const elapsed = (performance.now() - this.start) / 1000;
    const eta = done > 0 ? (elapsed / done) * (this.total - done) : NaN;
    const text = `${this.unit} ${done}/${this.total} ${bar(done / this.total)} ${Object.entries(fields).map(([k, v]) => `${k} ${v}`).join('  ')}  ETA ${duration(eta)}`;
    if (this.tty) this.out.write(`\r\x1b[2K${text}`);
    else if (done === this.total || performance.now() - this.lastPlain > 10_000 || done === 1) {
      this.lastPlain = performance.now();
      this.out.write(`${text}\n`);
    }
  }

  /** Prints a line above the bar. */
  note(line: string): void {
    this.out.write(this.tty ? `\r\x1b[2K${line}\n` : `${line}\n`);
  }

  done(): void {
    if (this.tty) this.out.write('\n');
  }
}

function bar(f: number, width = 20): string {
  const n = Math.max(0, Math.min(width, Math.round(f * width)));
  return `[${'='.repeat(n)}${' '.repeat(width - n)}]`;
}

/**
 * Seconds for people: 42s, 3m05s, 1h07m. Rounded once to the unit shown, then
 * split (rounding the parts separately printed 119.6 s as 1m60s).
 */
export function duration(s: number): string {
  if (!Number.isFinite(s)) return '--';
  const secs = Math.max(0, Math.round(s));
  if (secs < 60) return `${secs}s`;
  if (secs < 3600) return `${Math.floor(secs / 60)}m${String(secs % 60).padStart(2, '0')}s`;
  const mins = Math.round(s / 60);
  return `${Math.floor(mins / 60)}h${String(mins % 60).padStart(2, '0')}m`;
}
