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

  it('numbers each row by the line it starts on, across blank lines, CR line ends and multi-line fields', () => {
    const rows = parseCsv('a,b\n\n\n"x\n\ny",1\r\n\r\n2,"p\rq"\r3,4', 'l.csv');
    expect(rows.map((r) => r.fields)).toEqual([['a', 'b'], ['x\n\ny', '1'], ['2', 'p\rq'], ['3', '4']]);
    expect(rows.map((r) => r.line)).toEqual([1, 4, 8, 10]);
    expect(parseCsv('   \n,\n', 's.csv').map((r) => r.fields)).toEqual([['   '], ['', '']]);
    // a row of one quoted empty field is a row (RFC 4180), unlike a blank line
    expect(parseCsv('a\n""\n\nb', 'q.csv').map((r) => [r.line, r.fields])).toEqual([[1, ['a']], [2, ['']], [4, ['b']]]);
  });

  it('reports malformed input with the file and line', () => {
    expect(() => parseCsv('a,b\n1,"open\n', 'bad.csv')).toThrow(PeftError);
    expect(() => parseCsv('a,b\n1,"open\n', 'bad.csv')).toThrow(/^bad\.csv:2: malformed CSV \(unterminated/);
    expect(() => parseCsv('a,b\n1,"x"y\n', 'bad.csv')).toThrow(/^bad\.csv:2: malformed CSV \(text after a closing quote\)/);
    expect(() => parseCsv('a,b\nx"y,1\n', 'bad.csv')).toThrow(/bad\.csv:2: malformed CSV \(quote inside/);
    expect(() => parseCsv('a,b\n\n\n1,"open\n\nmore', 'bad.csv')).toThrow(/^bad\.csv:4: malformed CSV \(unterminated/);
    expect(() => parseCsv('a,b\n1,"x\n\nq"\n"\nx"y,1\n', 'bad.csv')).toThrow(/^bad\.csv:5: malformed CSV \(text after a closing quote\)/);
    expect(() => parseCsv('a\u0000b', 'bin.csv')).toThrow(/bin\.csv: not a CSV text file/);
  });
});
