// CSV reading for the ISIC loader, through csv-parse (adaltas/node-csv) in its
// strict synchronous form: RFC 4180 quoting ("" escapes, commas and line
// breaks inside quotes), CRLF, LF or CR line ends, an optional UTF-8 BOM,
// blank lines skipped. Rows may differ in length (the loader names the
// culprit row itself). Errors are PeftErrors naming the file and the line
// where the faulty row starts.
import { CsvError, parse } from 'csv-parse/sync';
import { PeftError } from '../../core/errors.js';

export interface CsvRow {
  /** 1-based line number where the row starts. */
  line: number;
  fields: string[];
}

/**
 * Line numbers from byte offsets: csv-parse tells how many bytes each row
 * consumed, and the line a row starts on is counted here (CRLF, LF and a lone
 * CR each end a line, inside quotes too), the blank lines skipped before it
 * included. Its own line counters are not used: with several line-end
 * sequences they drift inside quoted fields.
 */
class LineIndex {
  private readonly starts: number[] = [0];

  constructor(private readonly bytes: Uint8Array) {
    for (let i = 0; i < bytes.length; i++) {
      if (bytes[i] === 13) {
        if (bytes[i + 1] === 10) i++;
        this.starts.push(i + 1);
      } else if (bytes[i] === 10) this.starts.push(i + 1);
    }
  }

  /** The 1-based line of the first row text at or after byte `p` (a row's start). */
  rowLineAt(p: number): number {
    const b = this.bytes;
    if (p > 0 && b[p - 1] === 13 && b[p] === 10) p++; // the end of a CRLF split at p
    while (b[p] === 13 || b[p] === 10) p += b[p] === 13 && b[p + 1] === 10 ? 2 : 1; // blank lines
    let lo = 0;
    let hi = this.starts.length;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (this.starts[mid]! <= p) lo = mid;
      else hi = mid;
    }
    return lo + 1;
  }
}

/** Why csv-parse refused the text, in the words the loader has always used. */
const reasons: Record<string, string> = {
  CSV_QUOTE_NOT_CLOSED: 'unterminated quoted field',
  CSV_INVALID_CLOSING_QUOTE: 'text after a closing quote',
  INVALID_OPENING_QUOTE: 'quote inside an unquoted field',
};

export function parseCsv(text: string, file: string): CsvRow[] {
  // csv-parse would take NULs as field text; a binary file is refused outright
  if (text.includes('\u0000')) throw new PeftError(`${file}: not a CSV text file (contains NUL bytes)`);
  let records: string[][];
  // the byte offset where each complete row ends: the next row starts there
  const ends: number[] = [];
  try {
    records = parse(text, {
      bom: true,
      relax_column_count: true,
      skip_empty_lines: true,
      // every line end counts, even mixed in one file (auto-detection would take the first only)
      record_delimiter: ['\r\n', '\n', '\r'],
      on_record: (record: string[], context) => {
        ends.push(context.bytes);
        return record;
      },
    });
  } catch (err) {
    if (err instanceof CsvError) {
      const line = new LineIndex(Buffer.from(text, 'utf8')).rowLineAt(ends.at(-1) ?? 0);
      const why = reasons[err.code] ?? err.message.split(/[.:]/)[0]!.trim();
      throw new PeftError(`${file}:${line}: malformed CSV (${why})`);
    }
    throw new PeftError(`${file}: cannot parse as CSV (${(err as Error).message ?? String(err)})`);
  }
  const lines = new LineIndex(Buffer.from(text, 'utf8'));
  return records.map((fields, k) => ({ line: lines.rowLineAt(k === 0 ? 0 : ends[k - 1]!), fields }));
}
