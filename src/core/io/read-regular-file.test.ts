import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PeftError } from '../errors.js';
import { checkRegularFile, FILE_SIZE_LIMITS, readRegularFile, readRegularTextFile } from './read-regular-file.js';

const tmp = mkdtempSync(join(tmpdir(), 'peft-regular-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('readRegularFile', () => {
  const fifo = join(tmp, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const link = join(tmp, 'zero-link');
  symlinkSync('/dev/zero', link);
  const dir = join(tmp, 'dir');
  mkdirSync(dir);
  const file = join(tmp, 'ok.json');
  writeFileSync(file, '{"a": 1}');

  it('reads a regular file, through a symlink too', () => {
    expect(readRegularTextFile(file)).toBe('{"a": 1}');
    symlinkSync(file, join(tmp, 'ok-link'));
    expect(readRegularFile(join(tmp, 'ok-link'), 'weights').byteLength).toBe(8);
    expect(checkRegularFile(file, 'plugin')).toBe(8);
  });

  it('refuses a device, a symlink to one, a FIFO and a folder at once, naming the path and what it is', () => {
    const cases: [string, RegExp][] = [
      ['/dev/zero', /^\/dev\/zero: a character device, not a regular file; only regular files are read$/],
      [link, /zero-link \(a symlink to \/dev\/zero\): a character device, not a regular file/],
      [fifo, /fifo: a named pipe \(FIFO\), not a regular file/],
      [dir, /dir: a folder, not a regular file/],
      [join(tmp, 'absent'), /absent: no such file$/],
      [join(file, 'under-a-file'), /under-a-file: no such file \(a parent is not a folder\)$/],
    ];
    for (const [path, want] of cases) {
      const t0 = performance.now();
      for (const read of [() => readRegularFile(path, 'json'), () => checkRegularFile(path, 'plugin')]) {
        let err: unknown;
        try {
          read();
        } catch (e) {
          err = e;
        }
        expect(err, path).toBeInstanceOf(PeftError);
        expect((err as Error).message).toMatch(want);
      }
      expect(performance.now() - t0).toBeLessThan(1000);
    }
  });

  it('refuses a file over the limit of its kind before reading it', () => {
    const big = join(tmp, 'big.json');
    writeFileSync(big, Buffer.alloc(1025));
    expect(() => readRegularFile(big, 'json', 1024)).toThrow(/big\.json: 1025 bytes, more than the 1024-byte limit of a JSON file/);
    expect(FILE_SIZE_LIMITS.json).toBe(16 * 2 ** 20);
    expect(FILE_SIZE_LIMITS.weights).toBe(4 * 2 ** 30);
  });
});
