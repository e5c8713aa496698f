// Where the addon and its build status live, and whether OpenBLAS (and oneDNN,
// optional) are installed.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const BUILD_DIR = path.join(__dirname, 'build');
const ADDON_FILE = path.join(BUILD_DIR, 'Release', 'peftjs_native.node');
const STATUS_FILE = path.join(BUILD_DIR, 'status.json');

const LIB_DIRS = [
  '/usr/lib/x86_64-linux-gnu',
  '/usr/lib/aarch64-linux-gnu',
  '/usr/lib64',
  '/usr/lib',
  '/usr/local/lib',
  '/opt/homebrew/opt/openblas/lib',
  '/usr/local/opt/openblas/lib',
];

/** The path of the OpenBLAS library to link against (`libopenblas.so`, from libopenblas-dev), or undefined. */
function findOpenBlas() {
  for (const dir of LIB_DIRS) {
    for (const name of ['libopenblas.so', 'libopenblas.dylib']) {
      const p = path.join(dir, name);
      if (fs.existsSync(p)) return p;
    }
  }
  const r = spawnSync('ldconfig', ['-p'], { encoding: 'utf8' });
  const line = (r.stdout ?? '').split('\n').find((l) => /\blibopenblas\.so\s/.test(l));
  return line ? line.split('=>').pop().trim() : undefined;
}

/**
 * The path of the oneDNN library to link against, or undefined (then the addon
 * runs its products on OpenBLAS alone). libdnnl.so comes with libdnnl-dev;
 * libdnnl.so.2 alone (libdnnl2, which python3-torch pulls in) is enough, since
 * the addon declares the one function it calls. PEFT_DNNL=0 at build time leaves
 * it out.
 */
function findDnnl(env = process.env) {
  if (env.PEFT_DNNL === '0') return undefined;
  for (const dir of LIB_DIRS) {
    for (const name of ['libdnnl.so', 'libdnnl.so.2', 'libdnnl.dylib']) {
      const p = path.join(dir, name);
      if (fs.existsSync(p)) return p;
    }
  }
  const r = spawnSync('ldconfig', ['-p'], { encoding: 'utf8' });
  const line = (r.stdout ?? '').split('\n').find((l) => /\blibdnnl\.so(\.2)?\s/.test(l));
  return line ? line.split('=>').pop().trim() : undefined;
}

/**
 * What binding.gyp adds for oneDNN (its `<!@(...)` lines call these): the
 * define and the library, or nothing.
 */
function dnnlDefines() {
  return findDnnl() ? 'PEFT_HAVE_DNNL' : '';
}
function dnnlLibraries() {
  return findDnnl() ?? '';
}

module.exports = { BUILD_DIR, ADDON_FILE, STATUS_FILE, findOpenBlas, findDnnl, dnnlDefines, dnnlLibraries };
