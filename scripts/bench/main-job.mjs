#!/usr/bin/env node
// Launcher of `npm run bench:main-job`: compiles the sources (src, plugins and
// the bench harness) with tsc into .cache/bench unless `--no-build`, as
// run.mjs does for `npm run bench`, then runs the compiled main-job.ts.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const compiled = resolve(root, '.cache/bench/scripts/bench/main-job.js');

if (!process.argv.includes('--no-build')) {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', resolve(here, 'tsconfig.json')], { cwd: root, encoding: 'utf8' });
  if (r.status !== 0) {
    const lines = `${r.stdout}${r.stderr}`.trim().split('\n');
    process.stderr.write(`bench:main-job: tsc reported ${lines.filter((l) => /error TS/.test(l)).length} type error(s); running what it emitted\n`);
    for (const l of lines.slice(0, 10)) process.stderr.write(`  ${l}\n`);
  }
}
if (!existsSync(compiled)) {
  process.stderr.write(`bench:main-job: ${compiled} is missing (run without --no-build)\n`);
  process.exit(1);
}
await import(pathToFileURL(compiled).href);
