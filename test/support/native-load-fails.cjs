// Preloaded into a `peft` child process (NODE_OPTIONS=--require) by the tests:
// `@peftjs/native` resolves to a package whose addon fails to load, as a build
// against a since-removed OpenBLAS does, so the command's notice can be seen
// without breaking the real addon.
'use strict';
const Module = require('node:module');
const original = Module._load;
Module._load = function load(request, parent, isMain) {
  if (request === '@peftjs/native') {
    return {
      load() {
        throw new Error('libopenblas.so.0: cannot open shared object file: No such file or directory');
      },
      buildStatus: () => ({ ok: true }),
      findOpenBlas: () => undefined,
    };
  }
  return original.call(this, request, parent, isMain);
};
