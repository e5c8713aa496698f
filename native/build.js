#!/usr/bin/env node
// Install script of @peftjs/native: builds the addon with node-gyp against the
// system's OpenBLAS. It never fails the install (the addon is optional): when
// OpenBLAS is missing or the build fails, it records why in build/status.json,
// prints one warning line, and exits 0; peftjs then runs on wasm and says why
// in `peft env` (and `peft train` in one line).
//
// Two builds at once in the same folder (two `npm ci` or `npm rebuild` in one
// checkout) broke each other: node-gyp's `rebuild` deletes build/ while the
// other compiles into it ("fatal error: opening dependency file
// ./Release/.deps/….o.d.raw: No such file or directory"). So a build holds
// build/.build.lock (a second one waits, and stops there if the first built
// the addon meanwhile), compiles in a private temporary folder, loads the
// result once, and only then moves it into build/Release in one rename, so
// that a running peftjs never sees a half-written addon.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { findOpenBlas, findDnnl, BUILD_DIR, STATUS_FILE, ADDON_FILE } = require('./locate.js');

const LOCK_FILE = path.join(BUILD_DIR, '.build.lock');
/** How long a build waits for another one to finish. */
const LOCK_WAIT_MS = 20 * 60_000;
/** The private folder this build compiles in (removed on exit). */
let workDir;

function writeStatus(status) {
  fs.mkdirSync(path.dirname(STATUS_FILE), { recursive: true });
  fs.writeFileSync(STATUS_FILE, `${JSON.stringify({ ...status, node: process.version, at: new Date().toISOString() }, null, 2)}\n`);
}

function skip(reason, log) {
  writeStatus({ ok: false, reason, log });
  // an addon from an earlier build would contradict status.json (and may not match this Node or OpenBLAS)
  fs.rmSync(ADDON_FILE, { force: true });
  process.stderr.write(`@peftjs/native: not built (${reason}); peftjs will use its wasm kernels\n`);
  process.exit(0);
}

function sleep(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Whether the process that wrote a lock still runs (a build that died leaves its lock behind). */
function holderAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

function readStatus() {
  try {
    return JSON.parse(fs.readFileSync(STATUS_FILE, 'utf8'));
  } catch {
    return undefined;
  }
}

/**
 * Takes build/.build.lock, waiting while another live build holds it. Returns
 * whether one was waited for. Released when this process exits.
 */
function acquireLock() {
  fs.mkdirSync(BUILD_DIR, { recursive: true });
  const deadline = Date.now() + LOCK_WAIT_MS;
  let waited = false;
  for (;;) {
    try {
      fs.writeFileSync(LOCK_FILE, String(process.pid), { flag: 'wx' });
      process.on('exit', () => fs.rmSync(LOCK_FILE, { force: true }));
      return waited;
    } catch (err) {
      if (err.code !== 'EEXIST') throw err;
    }
    let holder = NaN;
    let age = 0;
    try {
      holder = Number.parseInt(fs.readFileSync(LOCK_FILE, 'utf8'), 10);
      age = Date.now() - fs.statSync(LOCK_FILE).mtimeMs;
    } catch {
      continue; // released meanwhile
    }
    // a dead holder's lock, or one never written (its writer died at once), is taken over
    if (Number.isInteger(holder) ? !holderAlive(holder) : age > 10_000) {
      fs.rmSync(LOCK_FILE, { force: true });
      continue;
    }
    if (Date.now() > deadline) skip(`another build of the addon (pid ${holder}) held ${LOCK_FILE} for ${LOCK_WAIT_MS / 60_000} minutes`);
    if (!waited) process.stderr.write(`@peftjs/native: waiting for another build of the addon (pid ${holder}) to finish\n`);
    waited = true;
    sleep(500);
  }
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

/**
 * Builds the addon in workDir with node-gyp under `env` and loads it once;
 * returns undefined, or why it failed with the log.
 */
function compile(built, env) {
  const [cmd, ...pre] = nodeGyp();
  const r = spawnSync(cmd, [...pre, 'rebuild', ...nodedirArgs()], { cwd: workDir, env, encoding: 'utf8', maxBuffer: 32 * 2 ** 20 });
  const log = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n').slice(-40).join('\n');
  if (r.error) return { reason: `node-gyp could not start: ${r.error.message}`, log };
  if (r.status !== 0) {
    // the most telling line: a compiler or linker error, gyp's own message, else node-gyp's stack line
    const lines = log.split('\n');
    const first =
      lines.find((l) => /fatal error|error:|cannot find -l|undefined reference/.test(l)) ??
      lines.find((l) => /^gyp: /.test(l)) ??
      lines.find((l) => /gyp ERR! stack Error/.test(l)) ??
      `exit ${r.status}`;
    return { reason: `node-gyp failed: ${first.trim().slice(0, 200)}`, log };
  }
  // load it once, in a child (a crash must not take the install down), and run a 2x2 product and a
  // 128x128x128 one (large enough for oneDNN when it is in)
  const check = spawnSync(process.execPath, ['-e', `
    const a = require(${JSON.stringify(built)});
    const x = new Float32Array([1, 2, 3, 4, 0, 0, 0, 0]);
    a.gemm(x, x, x, new Int32Array([1, 2, 2, 2, 0, 0, 0, 0, 0, 0, 4, 0]));
    if (x.slice(4).join() !== '7,10,15,22') throw new Error('wrong product ' + x.slice(4).join());
    const n = 128, ones = new Float32Array(n * n).fill(1), y = new Float32Array(n * n);
    a.gemm(ones, ones, y, new Int32Array([1, n, n, n, 0, 0, 0, 0, 0, 0, 0, 0]));
    if (y.some((v) => v !== n)) throw new Error('wrong product ' + y.find((v) => v !== n));
  `], { encoding: 'utf8' });
  if (check.status !== 0) {
    return { reason: `built but does not load: ${(check.stderr || '').trim().split('\n').find((l) => /Error/.test(l)) ?? `exit ${check.status}`}`, log: check.stderr };
  }
  return undefined;
}

function main() {
  const started = Date.now();
  if (acquireLock()) {
    // the build waited for has just built the addon for this Node: nothing to do
    const status = readStatus();
    if (status && status.ok && status.node === process.version && Date.parse(status.at) >= started - 1000 && fs.existsSync(ADDON_FILE)) return;
  }
  if (process.env.PEFT_NATIVE === '0') skip('PEFT_NATIVE=0 at install time');
  if (process.platform === 'win32') skip('Windows is not supported (OpenBLAS via node-gyp is set up for Linux)');
  const blas = findOpenBlas();
  if (!blas) skip('OpenBLAS not found: install it (Debian/Ubuntu: apt-get install libopenblas-dev), then npm rebuild @peftjs/native');
  // a private copy of the sources: no other build can clean or write where this one compiles
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'peftjs-native-'));
  process.on('exit', () => fs.rmSync(workDir, { recursive: true, force: true }));
  fs.copyFileSync(path.join(__dirname, 'binding.gyp'), path.join(workDir, 'binding.gyp'));
  // binding.gyp asks locate.js whether to build oneDNN in (the same answer as findDnnl here)
  fs.copyFileSync(path.join(__dirname, 'locate.js'), path.join(workDir, 'locate.js'));
  fs.cpSync(path.join(__dirname, 'src'), path.join(workDir, 'src'), { recursive: true });
  const built = path.join(workDir, 'build', 'Release', path.basename(ADDON_FILE));
  let dnnl = findDnnl();
  let failed = compile(built, process.env);
  if (failed && dnnl) {
    // oneDNN is optional: a build or load that fails with it is tried again on OpenBLAS alone
    const withDnnl = failed;
    failed = compile(built, { ...process.env, PEFT_DNNL: '0' });
    if (!failed) process.stderr.write(`@peftjs/native: built without oneDNN (${withDnnl.reason}); products run on OpenBLAS\n`);
    dnnl = undefined;
  }
  if (failed) skip(failed.reason, failed.log);
  // into place in one rename (same file system: a copy beside the target first); a process that has
  // the old addon loaded keeps its file
  fs.mkdirSync(path.dirname(ADDON_FILE), { recursive: true });
  const next = `${ADDON_FILE}.${process.pid}.tmp`;
  fs.copyFileSync(built, next);
  fs.renameSync(next, ADDON_FILE);
  // which library runs products: oneDNN's sgemm when it was found (OpenBLAS for the rest), else OpenBLAS
  writeStatus({ ok: true, openblas: blas, dnnl: dnnl ?? null, products: dnnl ? 'oneDNN' : 'OpenBLAS' });
}

main();
