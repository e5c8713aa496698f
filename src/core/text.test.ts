import { describe, expect, it } from 'vitest';
import { briefValue, escapeControl, MAX_MESSAGE_LINE, printableLine, printableText, quoteName } from './text.js';

const ESC = '\x1b';

describe('printable text', () => {
  it('escapes terminal controls, C1 controls, bidi overrides and lone surrogates, and keeps everything else', () => {
    expect(escapeControl(`a${ESC}[31mb\r\x07\x9b\u202e\u2066c\ud83d`)).toBe('a\\u001b[31mb\\r\\u0007\\u009b\\u202e\\u2066c\\ud83d');
    // JSON's escapes: an escaped JSON document is the same document
    const doc = JSON.stringify({ name: `k${ESC}\x85\u2028` });
    expect(JSON.parse(escapeControl(doc))).toEqual(JSON.parse(doc));
    expect(printableText(`a\n\tb${ESC}`)).toBe('a\n\tb\\u001b');
    expect(escapeControl('blocks.0 é 😀 日本')).toBe('blocks.0 é 😀 日本');
  });

  it('quotes a name escaped and cut, saying its length, without escaping a megabyte first', () => {
    expect(quoteName(`x${ESC}[2J`)).toBe("'x\\u001b[2J'");
    const big = quoteName(`${ESC}`.repeat(1 << 20));
    expect(big).not.toContain(ESC);
    expect(big.length).toBeLessThan(160);
    expect(big).toContain(`(${1 << 20} chars)`);
    // an escape is never cut in half
    expect(quoteName('a'.repeat(118) + ESC + 'b')).toMatch(/^'a{118}…/);
    expect(briefValue({ k: `v${ESC}` })).toBe('{"k":"v\\u001b"}');
  });

  it('prints a message as one capped line', () => {
    const line = printableLine(`first\nsecond ${ESC}]0;title\x07 ${'y'.repeat(100_000)} end`);
    expect(line).not.toMatch(/[\x00-\x1f]/);
    expect(line.length).toBeLessThanOrEqual(MAX_MESSAGE_LINE);
    expect(line.startsWith('first second \\u001b]0;title\\u0007 yyy')).toBe(true);
    expect(line.endsWith('yyy end')).toBe(true);
    expect(line).toMatch(/…\(\d+ chars cut\)…/);
  });
});
