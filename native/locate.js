// Where the addon and its build status live, and whether OpenBLAS is installed.
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

module.exports = { BUILD_DIR, ADDON_FILE, STATUS_FILE, findOpenBlas };
