// A small RFC 4180 CSV parser: comma separated, double-quoted fields with ""
// escapes (commas and newlines allowed inside quotes), CRLF or LF line ends,
// an optional UTF-8 BOM. Errors are PeftErrors naming the file and line.
import { PeftError } from '../../core/errors.js';

export interface CsvRow {
  /** 1-based line number where the row starts. */
  line: number;
  fields: string[];
}

export function parseCsv(text: string, file: string): CsvRow[] {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (text.includes('\u0000')) throw new PeftError(`${file}: not a CSV text file (contains NUL bytes)`);
  const rows: CsvRow[] = [];
  let fields: string[] = [];
  let field = '';
  let quoted = false;
  let fieldStarted = false;
  let line = 1;
  let rowLine = 1;
  let i = 0;
  const endField = () => {
    fields.push(field);
    field = '';
    fieldStarted = false;
  };
  const endRow = () => {
    endField();
    if (!(fields.length === 1 && fields[0] === '')) rows.push({ line: rowLine, fields });
    fields = [];
  };
  while (i < text.length) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
        i++;
        const next = text[i];
        if (next !== undefined && next !== ',' && next !== '\n' && next !== '\r') {
          throw new PeftError(`${file}:${line}: malformed CSV (text after a closing quote)`);
        }
        continue;
      }
      if (ch === '\n') line++;
      field += ch;
      i++;
      continue;
    }
    if (ch === '"') {
      if (fieldStarted || field.length > 0) throw new PeftError(`${file}:${line}: malformed CSV (quote inside an unquoted field)`);
      quoted = true;
      fieldStarted = true;
      i++;
    } else if (ch === ',') {
      endField();
      i++;
    } else if (ch === '\r' || ch === '\n') {
      endRow();
      if (ch === '\r' && text[i + 1] === '\n') i++;
      i++;
      line++;
      rowLine = line;
    } else {
      field += ch;
      fieldStarted = true;
      i++;
    }
  }
  if (quoted) throw new PeftError(`${file}:${rowLine}: malformed CSV (unterminated quoted field)`);
  if (field.length > 0 || fields.length > 0 || fieldStarted) endRow();
  return rows;
}
