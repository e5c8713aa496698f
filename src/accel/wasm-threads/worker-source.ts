// The source of a kernels worker (pool.ts), run with `eval: true` so that it
// needs no file of its own next to the compiled code.
//
// workerData: { module, memory, control, jobs, jobBytes, spin }; control's
// words are pool.ts's CTL: generation, next piece, pieces, pieces done,
// failed. Each time the generation moves on, it takes pieces (job records at
// jobs + piece * jobBytes) until none is left, counting each one done; it
// leaves when the generation is -1.
export const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { module, memory, control, jobs, jobBytes, spin } = workerData;
const run = new WebAssembly.Instance(module, { env: { memory } }).exports.run_job;
const ctl = new Int32Array(control);
const GENERATION = 0, NEXT = 1, COUNT = 2, DONE = 3, FAILED = 4;
let seen = 0;
for (;;) {
  let n = 0;
  while (Atomics.load(ctl, GENERATION) === seen) {
    if (++n > spin) Atomics.wait(ctl, GENERATION, seen);
  }
  seen = Atomics.load(ctl, GENERATION);
  if (seen < 0) break;
  for (;;) {
    const piece = Atomics.add(ctl, NEXT, 1);
    if (piece >= Atomics.load(ctl, COUNT)) break;
    try {
      run(jobs + piece * jobBytes);
    } catch (err) {
      console.error('peftjs wasm kernels worker: ' + (err && err.message));
      Atomics.store(ctl, FAILED, 1);
    }
    if (Atomics.add(ctl, DONE, 1) + 1 >= Atomics.load(ctl, COUNT)) Atomics.notify(ctl, DONE);
  }
}
`;
