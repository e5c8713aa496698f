import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeFileAtomic } from './atomic.js';
import { appendNoFollow, makeDirInside, removeInside, truncateNoFollow } from './no-follow.js';
import { forEachLine } from './read-lines.js';

const root = mkdtempSync(join(tmpdir(), 'peft-nofollow-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
/** A folder we own, and a file and a folder outside it that must never change. */
function setup() {
  const base = join(root, `case${n++}`);
  const owned = join(base, 'owned');
  const outside = join(base, 'outside');
  mkdirSync(owned, { recursive: true });
  mkdirSync(outside);
  const victim = join(outside, 'victim.txt');
  writeFileSync(victim, 'precious\n');
  return { owned, outside, victim };
}

describe('writers never follow a link they did not make', () => {
  it('appendNoFollow and truncateNoFollow refuse a link by name; the target is untouched', () => {
    const { owned, victim } = setup();
    const log = join(owned, 'log.jsonl');
    symlinkSync(victim, log);
    expect(() => appendNoFollow(log, 'x\n')).toThrow(`${log}: is a symbolic link`);
    expect(() => truncateNoFollow(log, 0)).toThrow(`${log}: is a symbolic link`);
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
    // a regular file: appended and truncated
    const real = join(owned, 'real.jsonl');
    appendNoFollow(real, 'a\n');
    appendNoFollow(real, 'b\n');
    truncateNoFollow(real, 2);
    expect(readFileSync(real, 'utf8')).toBe('a\n');
  });

  it('writeFileAtomic replaces a link at the name instead of writing through it, and refuses a folder', () => {
    const { owned, victim, outside } = setup();
    const page = join(owned, 'index.html');
    symlinkSync(victim, page);
    writeFileAtomic(page, 'report');
    expect(lstatSync(page).isFile()).toBe(true);
    expect(readFileSync(page, 'utf8')).toBe('report');
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
    expect(() => writeFileAtomic(outside, 'x')).toThrow(/a folder is in the way/);
  });

  it('makeDirInside refuses a link on the way and creates real folders', () => {
    const { owned, outside } = setup();
    symlinkSync(outside, join(owned, 'runs'));
    expect(() => makeDirInside(owned, 'runs/sub')).toThrow(`${join(owned, 'runs')}: is a symbolic link`);
    expect(existsSync(join(outside, 'sub'))).toBe(false);
    expect(makeDirInside(owned, 'a/b/c')).toBe(join(owned, 'a/b/c'));
    expect(lstatSync(join(owned, 'a/b/c')).isDirectory()).toBe(true);
    expect(() => makeDirInside(owned, '../escape')).toThrow(/outside/);
  });

  it('removeInside removes a link itself, never what is reached through a linked folder or outside', () => {
    const { owned, outside, victim } = setup();
    symlinkSync(outside, join(owned, 'runs'));
    symlinkSync(victim, join(owned, 'file-link'));
    expect(() => removeInside(owned, join(owned, 'runs', 'victim.txt'))).toThrow(/not inside/);
    expect(() => removeInside(owned, victim)).toThrow(/not inside/);
    expect(() => removeInside(owned, join(owned, '..', 'outside', 'victim.txt'))).toThrow(/not inside/);
    expect(removeInside(owned, join(owned, 'file-link'))).toBe(true);
    expect(removeInside(owned, join(owned, 'runs'))).toBe(true);
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
    // a folder holding a link to the outside: the folder goes, the outside stays
    mkdirSync(join(owned, 'tree'));
    symlinkSync(outside, join(owned, 'tree', 'link'));
    removeInside(owned, join(owned, 'tree'));
    expect(existsSync(join(owned, 'tree'))).toBe(false);
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
  });
});

describe('forEachLine', () => {
  it('hands over every line across chunk boundaries, skips lines over the limit, keeps a last line without newline', () => {
    const { owned } = setup();
    const f = join(owned, 'lines');
    const lines = Array.from({ length: 5000 }, (_, i) => `${'é'.repeat(i % 700)}#${i}`);
    const long = 'x'.repeat(3 << 20);
    writeFileSync(f, `${lines.slice(0, 2500).join('\n')}\n${long}\n${lines.slice(2500).join('\n')}`);
    const got: string[] = [];
    const scan = forEachLine(f, (l) => got.push(l), 64 * 1024);
    expect(scan.tooLong).toBe(1);
    expect(got).toEqual(lines);
  });

  it('refuses what is not a regular file', () => {
    const { owned } = setup();
    expect(() => forEachLine(owned, () => {})).toThrow(/not a regular file/);
  });
});
