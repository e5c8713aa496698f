#!/usr/bin/env node
// Install script of @peftjs/native: builds the addon with node-gyp against the
// system's OpenBLAS. It never fails the install (the addon is optional): when
// OpenBLAS is missing or the build fails, it records why in build/status.json,
// prints one warning line, and exits 0; peftjs then runs on wasm and says why
// in `peft env`.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { findOpenBlas, STATUS_FILE, ADDON_FILE } = require('./locate.js');

function writeStatus(status) {
  fs.mkdirSync(path.dirname(STATUS_FILE), { recursive: true });
  fs.writeFileSync(STATUS_FILE, `${JSON.stringify({ ...status, node: process.version, at: new Date().toISOString() }, null, 2)}\n`);
}

function skip(reason, log) {
  writeStatus({ ok: false, reason, log });
  process.stderr.write(`@peftjs/native: not built (${reason}); peftjs will use its wasm kernels\n`);
  process.exit(0);
}

/** How to run node-gyp: the copy npm gives lifecycle scripts, else npm's bundled one, else PATH. */
function nodeGyp() {
  const candidates = [];
  if (process.env.npm_config_node_gyp) candidates.push(process.env.npm_config_node_gyp);
  if (process.env.npm_execpath) candidates.push(path.resolve(path.dirname(process.env.npm_execpath), '../node_modules/node-gyp/bin/node-gyp.js'));
  candidates.push(path.resolve(path.dirname(process.execPath), '../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'));
  for (const c of candidates) {
    if (fs.existsSync(c)) return [process.execPath, c];
  }
  return ['node-gyp'];
}

/** Node's own headers when they are installed beside it (Debian's nodejs, official tarballs): no download. */
function nodedirArgs() {
  if (process.env.npm_config_nodedir) return [];
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  return fs.existsSync(path.join(prefix, 'include', 'node', 'common.gypi')) ? [`--nodedir=${prefix}`] : [];
}

function main() {
  if (process.env.PEFT_NATIVE === '0') skip('PEFT_NATIVE=0 at install time');
  if (process.platform === 'win32') skip('Windows is not supported (OpenBLAS via node-gyp is set up for Linux)');
  const blas = findOpenBlas();
  if (!blas) skip('OpenBLAS not found: install it (Debian/Ubuntu: apt-get install libopenblas-dev), then npm rebuild @peftjs/native');
  const [cmd, ...pre] = nodeGyp();
  const r = spawnSync(cmd, [...pre, 'rebuild', ...nodedirArgs()], { cwd: __dirname, encoding: 'utf8', maxBuffer: 32 * 2 ** 20 });
  const log = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n').slice(-40).join('\n');
  if (r.error) skip(`node-gyp could not start: ${r.error.message}`, log);
  if (r.status !== 0) {
    // the most telling line: a compiler or linker error, gyp's own message, else node-gyp's stack line
    const lines = log.split('\n');
    const first =
      lines.find((l) => /fatal error|error:|cannot find -l|undefined reference/.test(l)) ??
      lines.find((l) => /^gyp: /.test(l)) ??
      lines.find((l) => /gyp ERR! stack Error/.test(l)) ??
      `exit ${r.status}`;
    skip(`node-gyp failed: ${first.trim().slice(0, 200)}`, log);
  }
  // load it once, in a child (a crash must not take the install down), and run a 2x2 product
  const check = spawnSync(process.execPath, ['-e', `
    const a = require(${JSON.stringify(ADDON_FILE)});
    const x = new Float32Array([1, 2, 3, 4, 0, 0, 0, 0]);
    a.gemm(x, x, x, new Int32Array([1, 2, 2, 2, 0, 0, 0, 0, 0, 0, 4, 0]));
    if (x.slice(4).join() !== '7,10,15,22') throw new Error('wrong product ' + x.slice(4).join());
  `], { encoding: 'utf8' });
  if (check.status !== 0) skip(`built but does not load: ${(check.stderr || '').trim().split('\n').find((l) => /Error/.test(l)) ?? `exit ${check.status}`}`, check.stderr);
  writeStatus({ ok: true, openblas: blas });
}

main();
