// A one-line progress bar with ETA on a terminal; plain periodic lines otherwise.
export class ProgressLine {
  private readonly start = performance.now();
  private lastPlain = 0;
  private readonly tty: boolean;

  constructor(
    private readonly total: number,
    private readonly out: NodeJS.WriteStream = process.stderr,
  ) {
    this.tty = Boolean(out.isTTY);
  }

  update(done: number, fields: Record<string, string>): void {
    const elapsed = (performance.now() - this.start) / 1000;
    const eta = done > 0 ? (elapsed / done) * (this.total - done) : NaN;
    const text = `step ${done}/${this.total} ${bar(done / this.total)} ${Object.entries(fields).map(([k, v]) => `${k} ${v}`).join('  ')}  ETA ${duration(eta)}`;
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

export function duration(s: number): string {
  if (!Number.isFinite(s)) return '--';
  if (s < 60) return `${Math.round(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.round((s % 3600) / 60)).padStart(2, '0')}m`;
}
