import { describe, expect, it } from 'vitest';
import { PeftError } from '../../core/errors.js';
import { parseCsv } from './csv.js';

describe('parseCsv', () => {
  it('parses quotes, escaped quotes, commas and newlines in quotes, CRLF and a BOM', () => {
    const rows = parseCsv('\ufeff,img,seg\r\n0,"a, b.jpg","say ""hi"".png"\r\n1,"multi\nline.jpg",m.png\n\n', 'x.csv');
    expect(rows.map((r) => r.fields)).toEqual([
      ['', 'img', 'seg'],
      ['0', 'a, b.jpg', 'say "hi".png'],
      ['1', 'multi\nline.jpg', 'm.png'],
    ]);
    expect(rows.map((r) => r.line)).toEqual([1, 2, 3]);
    expect(parseCsv('a,b\n1,2', 'y.csv')).toHaveLength(2);
    expect(parseCsv('a,b\n"",x\n', 'y.csv')[1]!.fields).toEqual(['', 'x']);
  });

  it('reports malformed input with the file and line', () => {
    expect(() => parseCsv('a,b\n1,"open\n', 'bad.csv')).toThrow(PeftError);
    expect(() => parseCsv('a,b\n1,"open\n', 'bad.csv')).toThrow(/^bad\.csv:2: malformed CSV \(unterminated/);
    expect(() => parseCsv('a,b\n1,"x"y\n', 'bad.csv')).toThrow(/^bad\.csv:2: malformed CSV \(text after a closing quote\)/);
    expect(() => parseCsv('a,b\nx"y,1\n', 'bad.csv')).toThrow(/bad\.csv:2: malformed CSV \(quote inside/);
    expect(() => parseCsv('a\u0000b', 'bin.csv')).toThrow(/bin\.csv: not a CSV text file/);
  });
});
