import { describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeDir } from './make-dir.js';

describe('makeDir', () => {
  it('creates missing parents, and is a no-op for an existing folder', () => {
    const root = mkdtempSync(join(tmpdir(), 'peft-mkdir-'));
    const deep = join(root, 'a', 'b', 'c');
    makeDir(deep);
    expect(statSync(deep).isDirectory()).toBe(true);
    makeDir(deep);
    makeDir(root);
  });

  it('throws the file system error where a file is in the way', () => {
    const root = mkdtempSync(join(tmpdir(), 'peft-mkdir-'));
    writeFileSync(join(root, 'f'), '');
    expect(() => makeDir(join(root, 'f'))).toThrow(expect.objectContaining({ code: 'EEXIST' }));
    expect(() => makeDir(join(root, 'f', 'g'))).toThrow(expect.objectContaining({ code: 'EEXIST' }));
  });

  it.skipIf(!existsSync('/proc/self'))('fails at once under /proc, where Node 20 recursive mkdir loops forever', () => {
    const t0 = Date.now();
    expect(() => makeDir('/proc/peftjs-no-such/dir')).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    expect(Date.now() - t0).toBeLessThan(1000);
  });
});
