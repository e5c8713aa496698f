#!/usr/bin/env node
// Memory over a long run: 1,000 steps of the tiny SAM preset (64 px, LoRA, the
// mask decoder trained) on the wasm backend, with validation every 5 epochs
// and the last checkpoint written at every epoch end, through the library
// (`trainRun`, as `peft train` calls it). After a warm-up, the live tensor
// count must not change from step to step, and the wasm heap must not grow;
// the process RSS is reported, and its peak over the whole run (the kernel's
// high-water mark, VmHWM, so that a spike between two samples counts) may not
// exceed --max-peak-mb.
//
//   node scripts/reliability/memory.mjs [--steps 1000] [--warmup 100] [--backend wasm] [--max-peak-mb 512] [--json out.json]
import 'reflect-metadata';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import v8 from 'node:v8';
import vm from 'node:vm';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fmtSeconds, lib, peftSync } from './common.mjs';

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : def;
};
const STEPS = Number(arg('steps', 1000));
const WARMUP = Number(arg('warmup', 100));
const BACKEND = arg('backend', 'wasm');
const MAX_PEAK_MB = Number(arg('max-peak-mb', 512));

/** The process's peak resident set so far, in MB (Linux; null elsewhere). */
function peakRssMB() {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}
const log = (line) => process.stderr.write(`${line}\n`);

const work = mkdtempSync(join(tmpdir(), 'peft-memory-'));
const data = join(work, 'data');
const synth = peftSync(['data', 'synth', '--out', data, '--n', '10', '--size', '64', '--seed', '1'], { PEFT_CACHE: join(work, 'cache') });
if (synth.code !== 0) throw new Error(synth.stderr);

const tf = await import('@tensorflow/tfjs');
const { initBackend } = await lib('app/backend.js');
const { createDefaultRegistry } = await lib('builtins.js');
const { trainRun } = await lib('app/runs/train-run.js');
const { wasmHeapBytes } = await lib('app/train/memory-meter.js');
const backend = await initBackend({ preferred: BACKEND, quiet: true });
const registry = await createDefaultRegistry();

const spec = {
  version: 1,
  createdAt: new Date().toISOString(),
  backbone: { id: 'sam', preset: 'tiny', overrides: { img_size: 64 } },
  method: { id: 'lora', config: registry.createMethod('lora', {}).config },
  trainDecoder: true,
  imageSize: 64,
  outSize: 16,
  dataset: { kind: 'refuge', path: data, valPath: null },
  augment: true,
  options: { batch: 2, lr: 1e-4, steps: STEPS, valEvery: 5, seed: 3, loss: 'bce', prompt: 'click', saveEvery: 0 },
};

// a full GC before each JS-heap sample, so that the figure is what is live, not garbage
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc');
const heapSamples = [];
// aggregates only: the script itself keeps nothing per step (its own arrays would show in the JS heap)
const agg = { steps: 0, msSum: 0, tMin: Infinity, tMax: -Infinity, bMin: Infinity, bMax: -Infinity, heapAtWarmup: null, heapMax: -Infinity, rssAtWarmup: 0, rssMax: 0, rssEnd: 0 };
const started = performance.now();
const summary = await trainRun(registry, spec, join(work, 'run'), {
  onStep: (e) => {
    const m = tf.memory();
    const heap = wasmHeapBytes() ?? null;
    const rss = process.memoryUsage.rss();
    agg.steps++;
    agg.msSum += e.ms;
    if (e.step === WARMUP) {
      agg.heapAtWarmup = heap;
      agg.rssAtWarmup = rss;
    }
    if (e.step > WARMUP) {
      agg.tMin = Math.min(agg.tMin, m.numTensors);
      agg.tMax = Math.max(agg.tMax, m.numTensors);
      agg.bMin = Math.min(agg.bMin, m.numBytes);
      agg.bMax = Math.max(agg.bMax, m.numBytes);
      if (heap !== null) agg.heapMax = Math.max(agg.heapMax, heap);
      agg.rssMax = Math.max(agg.rssMax, rss);
      agg.rssEnd = rss;
    }
    if (e.step % 50 === 0 && e.step >= WARMUP) {
      gc();
      const u = process.memoryUsage();
      heapSamples.push([e.step, +(u.heapUsed / 2 ** 20).toFixed(2), +(u.arrayBuffers / 2 ** 20).toFixed(2)]);
    }
    if (e.step % 100 === 0) log(`memory: step ${e.step}: ${m.numTensors} tensors, heap ${((heap ?? 0) / 2 ** 20).toFixed(0)} MB, rss ${(rss / 2 ** 20).toFixed(0)} MB`);
  },
});
const seconds = (performance.now() - started) / 1000;

const peakRss = peakRssMB();
const problems = [];
if (peakRss !== null && peakRss > MAX_PEAK_MB) problems.push(`peak RSS ${peakRss.toFixed(0)} MB exceeds ${MAX_PEAK_MB} MB`);
if (summary.steps !== STEPS) problems.push(`ran ${summary.steps} steps, not ${STEPS}`);
if (agg.tMin !== agg.tMax) problems.push(`tensor count moved after warm-up: ${agg.tMin}..${agg.tMax}`);
if (agg.heapAtWarmup !== null && agg.heapMax > agg.heapAtWarmup) problems.push(`wasm heap grew after warm-up: ${agg.heapAtWarmup} -> ${agg.heapMax} bytes`);
const js = heapSamples.map(([, h]) => h);
const result = {
  kind: 'memory',
  backend: backend.active,
  steps: summary.steps,
  warmup: WARMUP,
  tensorsAfterWarmup: [agg.tMin, agg.tMax],
  tensorBytesAfterWarmup: [agg.bMin, agg.bMax],
  wasmHeapAtWarmupMB: agg.heapAtWarmup === null ? null : agg.heapAtWarmup / 2 ** 20,
  wasmHeapMaxAfterMB: agg.heapAtWarmup === null ? null : agg.heapMax / 2 ** 20,
  rssAtWarmupMB: agg.rssAtWarmup / 2 ** 20,
  rssEndMB: agg.rssEnd / 2 ** 20,
  rssMaxAfterMB: agg.rssMax / 2 ** 20,
  /** The process's peak resident set over the whole run (VmHWM), whatever the samples saw. */
  peakRssMB: peakRss,
  /** [step, live JS heap MB after a full GC, array buffers MB], every 50 steps from the warm-up. */
  jsHeapLive: heapSamples,
  jsHeapLiveChangeMB: js.length ? +(js[js.length - 1] - js[0]).toFixed(2) : null,
  msPerStep: agg.msSum / agg.steps,
  final: summary.final,
  problems,
  seconds,
};
log(`memory: ${result.steps} steps on ${result.backend}: tensors ${agg.tMin}..${agg.tMax} after step ${WARMUP}; wasm heap ${result.wasmHeapAtWarmupMB?.toFixed(1)} -> max ${result.wasmHeapMaxAfterMB?.toFixed(1)} MB; rss ${result.rssAtWarmupMB.toFixed(0)} -> ${result.rssEndMB.toFixed(0)} MB (peak ${peakRss?.toFixed(0) ?? '?'} MB); live JS heap ${result.jsHeapLiveChangeMB >= 0 ? '+' : ''}${result.jsHeapLiveChangeMB} MB; ${problems.length ? problems.join('; ') : 'flat'} (${fmtSeconds(seconds)})`);
const json = arg('json');
if (json) writeFileSync(json, `${JSON.stringify(result, null, 2)}\n`);
else process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
rmSync(work, { recursive: true, force: true });
process.exitCode = problems.length ? 1 : 0;
