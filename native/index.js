// @peftjs/native: loads the OpenBLAS addon built at install time.
//
//   const native = require('@peftjs/native');
//   const addon = native.load();   // throws an Error saying why when there is none
//
// The addon's functions take Float32Arrays with element offsets, so that a
// caller can pass the wasm backend's whole heap and the offsets of tensors in
// it (see index.d.ts). OpenBLAS's worker threads are set to sleep soon after a
// call (OPENBLAS_THREAD_TIMEOUT) unless the user chose otherwise, so that they
// do not spin on a core while JavaScript or wasm code runs between calls.
'use strict';
const fs = require('node:fs');
const { ADDON_FILE, STATUS_FILE, findOpenBlas } = require('./locate.js');
const { chooseCoreType } = require('./coretype.js');

/** The install script's record: `{ ok, reason?, log? }`, or undefined when it has not run. */
function buildStatus() {
  try {
    return JSON.parse(fs.readFileSync(STATUS_FILE, 'utf8'));
  } catch {
    return undefined;
  }
}

let cached;
/** The OPENBLAS_CORETYPE the loader set, with why; undefined when OpenBLAS chose. */
let chosenCore;

function coreChoice() {
  return chosenCore;
}

function load() {
  if (cached) return cached;
  if (!fs.existsSync(ADDON_FILE)) {
    const status = buildStatus();
    const why = status && !status.ok ? status.reason : 'the addon was not built (npm rebuild @peftjs/native)';
    throw Object.assign(new Error(why), { code: 'EPEFTNATIVE_NOT_BUILT' });
  }
  if (process.env.OPENBLAS_THREAD_TIMEOUT === undefined) process.env.OPENBLAS_THREAD_TIMEOUT = '4';
  // OpenBLAS picks its kernels when it loads, with the addon: a CPU it does not
  // know gets its SSE3 kernels unless told (coretype.js)
  // (read once, at load: the variable is removed again so that child processes choose for themselves)
  const core = chooseCoreType();
  if (core) process.env.OPENBLAS_CORETYPE = core.coretype;
  // oneDNN's OpenMP threads (libgomp, which reads this when it loads with the
  // addon) spin for ~300k rounds after each product unless told otherwise: on two
  // cores they took the core that the next kernel's threads needed (w1 step 2-3x
  // slower). The addon runs oneDNN on its own threads, so OpenMP starts none unless
  // PEFT_DNNL=omp; should it, they sleep at once unless the user chose
  // (docs/native.md, "Products on oneDNN")
  const omp = process.env.OMP_WAIT_POLICY === undefined && process.env.GOMP_SPINCOUNT === undefined;
  if (omp) process.env.OMP_WAIT_POLICY = 'passive';
  try {
    cached = require(ADDON_FILE);
  } finally {
    if (core) delete process.env.OPENBLAS_CORETYPE;
    if (omp) delete process.env.OMP_WAIT_POLICY;
  }
  chosenCore = core;
  return cached;
}

module.exports = { load, buildStatus, findOpenBlas, coreChoice, chooseCoreType, ADDON_FILE };
