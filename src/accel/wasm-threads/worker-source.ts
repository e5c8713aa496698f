// The source of a product worker (pool.ts), run with `eval: true` so that it
// needs no file of its own next to the compiled code.
//
// workerData: { module, memory, control, index, job, spin }. It runs the job
// record at `job` each time control[0] (the generation) moves on, then writes
// the generation into control[index] (its negative when the job threw); it
// leaves when the generation is -1.
export const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { module, memory, control, index, job, spin } = workerData;
const run = new WebAssembly.Instance(module, { env: { memory } }).exports.run_job;
const ctl = new Int32Array(control);
let seen = 0;
for (;;) {
  let n = 0;
  while (Atomics.load(ctl, 0) === seen) {
    if (++n > spin) Atomics.wait(ctl, 0, seen);
  }
  seen = Atomics.load(ctl, 0);
  if (seen < 0) break;
  let result = seen;
  try {
    run(job);
  } catch (err) {
    console.error('peftjs wasm product worker ' + index + ': ' + (err && err.message));
    result = -seen;
  }
  Atomics.store(ctl, index, result);
  Atomics.notify(ctl, index);
}
`;
