// One benchmark case, in this process: build the workload's backbone through
// the registry, compose the method (only its parameters train), and time
// training steps (forward + backward + Adam), inference forwards, and one
// profiled step for the FLOP count and the peak of tensor memory.
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/app/backend.js';
import { valueAndGrads } from '../../src/core/nn/grad.js';
import { valueAndGradsLowMemory, wasmFastPathsEnabled } from '../../src/accel/kernels/index.js';
import { compose, type PeftModel } from '../../src/core/peft/compose.js';
import type { Registry } from '../../src/core/registry/registry.js';
import { Adam } from '../../src/app/train/adam.js';
import { wasmHeapBytes } from '../../src/app/train/memory-meter.js';
import { createDefaultRegistry } from '../../src/builtins.js';
import { summarise, type KernelRecord, type KernelSummary } from './flops.js';
import type { MethodCase, Workload } from './workloads.js';

export interface CaseOptions {
  backend?: string;
  /** Timed steady-state steps (after the first step and one warm-up step). */
  steps: number;
  /** Timed inference forwards (after INFERENCE_WARMUP untimed ones). */
  forwards: number;
  /** Keep the per-kernel profile in the result. */
  kernels: boolean;
  /** Backward pass: `core` = core `valueAndGrads`, what the trainer uses (the low-memory walk); `engine` = tfjs's own `engine().gradients`, for comparison. */
  backprop?: 'core' | 'low-memory' | 'engine';
}

export interface CaseResult {
  workload: string;
  method: string;
  backend: string;
  backprop: string;
  /** The wasm fast paths (off with PEFT_WASM_FAST=0: tfjs-backend-wasm's own kernels plus the missing gradients). */
  fastPaths: boolean;
  /** Native (BLAS) kernels in place of the backend's products, when that optional module is present (PEFT_NATIVE=0 turns them off). */
  native?: { active: boolean; reason?: string };
  wasm?: { simd: boolean; threads: boolean };
  batch: number;
  imageSize: number;
  trainableParameters: number;
  totalParameters: number;
  /** The first training step (kernel set-up, caches), ms. */
  firstStepMs: number;
  /** Median of the steady-state steps, ms. */
  stepMs: number;
  stepMsAll: number[];
  /** Median CPU time (user + system) of the steady-state steps, ms: the step's cost without other processes' contention (the wasm backend runs on one thread). */
  stepCpuMs: number;
  /** Median inference forward of the encoder on one image (batch 1), ms. */
  inferenceMs: number;
  /** Matrix-product and convolution GFLOP of one training step (forward + backward). */
  stepGflop: number;
  /** stepGflop over stepMs. */
  gflops: number;
  /** Peak resident set size of the process, MB. */
  peakRssMB: number;
  /** Peak bytes held by tensors during a step, MB. */
  peakTensorMB: number;
  /** Size of the wasm heap at the end (it only grows), MB. */
  wasmHeapMB?: number;
  /** Live tensors gained over the steady-state steps (0 = no leak). */
  tensorsLeaked: number;
  loss: number[];
  node: string;
  date: string;
  kernels?: KernelSummary[];
  kernelShapes?: KernelSummary[];
  /** With `kernels`: the kernels of one profiled inference forward (batch 1). */
  inferenceKernels?: KernelSummary[];
}

const PLUGINS: [dir: string, type: 'backbone' | 'method', id: string][] = [
  ['backbone-sam', 'backbone', 'sam'],
  ['backbone-mobile-sam', 'backbone', 'mobile_sam'],
  ['backbone-efficient-sam', 'backbone', 'efficient_sam'],
  ['method-lora', 'method', 'lora'],
  ['method-adapter', 'method', 'adapter'],
  ['method-adalora', 'method', 'adalora'],
];

/**
 * The default registry, plus any plugin of the repository that it does not
 * load yet (plugins are added to `builtins.ts` as they land).
 */
export async function benchRegistry(): Promise<Registry> {
  const registry = await createDefaultRegistry();
  for (const [dir, type, id] of PLUGINS) {
    const have = type === 'backbone' ? registry.backbones() : registry.methods();
    if (have.some((d) => d.id === id)) continue;
    let plugin: { register: (r: Registry) => void | Promise<void> };
    try {
      plugin = (await import(new URL(`../../plugins/${dir}/index.js`, import.meta.url).href)) as typeof plugin;
    } catch {
      continue; // not built / not there yet
    }
    await registry.load(`plugin '${dir}'`, plugin.register);
  }
  return registry;
}

/** Whether native kernels (src/accel/native, an optional addon) replaced the backend's products; undefined when that module is absent. */
async function nativeKernelStatus(): Promise<{ active: boolean; reason?: string } | undefined> {
  const spec = '../../src/accel/native/index.js';
  try {
    const m = (await import(spec)) as { nativeStatus?: () => { active: boolean; reason?: string } };
    const s = m.nativeStatus?.();
    return s ? { active: s.active, ...(s.reason ? { reason: s.reason } : {}) } : undefined;
  } catch {
    return undefined;
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const round = (x: number, digits = 1): number => Math.round(x * 10 ** digits) / 10 ** digits;

/**
 * Untimed inference forwards before the timed ones (the same in the PyTorch
 * harness, scripts/bench/torch/step.py), so that both sides are timed at the
 * steady state of a process that serves or predicts many images: our first
 * 20-30 forwards at batch 1 run up to 1.5x slower than the later ones (V8
 * still compiling the engine's and the layers' code for the tape-free path),
 * PyTorch's first one or two.
 */
export const INFERENCE_WARMUP = 20;

export async function runCase(workload: Workload, method: MethodCase, options: CaseOptions): Promise<CaseResult> {
  const report = await initBackend({ preferred: options.backend, quiet: true });
  const native = await nativeKernelStatus();
  const registry = await benchRegistry();
  const backbone = registry.createBackbone(workload.backbone, workload.preset, workload.overrides);
  const injector = registry.createMethod(method.id, method.config);
  const peft: PeftModel = compose(backbone, injector, { trainDecoder: false });
  const params = peft.trainable();
  const vars = params.map(([, p]) => p.variable);
  const composed = peft.report();
  const images = tf.randomNormal([workload.batch, workload.imageSize, workload.imageSize, 3], 0, 1, 'float32', 1234) as tf.Tensor4D;
  const adam = new Adam({ lr: 1e-4 });
  const backprop = options.backprop ?? 'core';
  const gradientsOf = (f: () => tf.Scalar, xs: tf.Tensor[]): { value: tf.Scalar; grads: tf.Tensor[] } => {
    if (backprop === 'core') return valueAndGrads(f, xs);
    const r = backprop === 'engine' ? tf.engine().gradients(f, xs, undefined, true) : valueAndGradsLowMemory(f, xs);
    return { value: r.value as tf.Scalar, grads: r.grads.map((g, i) => g ?? tf.zerosLike(xs[i]!)) };
  };
  const losses: number[] = [];

  const trainStep = (): number => {
    const { value, grads } = gradientsOf(
      () =>
        tf.tidy(() => {
          const y = peft.backbone.encode(images);
          let loss = tf.mean(tf.square(y)) as tf.Scalar;
          if (injector.regulariser) loss = tf.add(loss, injector.regulariser(peft.model));
          return loss;
        }),
      vars,
    );
    const loss = value.dataSync()[0]!;
    const byName = new Map(params.map(([name], i) => [name, grads[i]!]));
    adam.apply(params, byName);
    injector.afterStep?.({ step: adam.step, model: peft.model, grads: byName });
    tf.dispose([value, ...grads]);
    losses.push(loss);
    return loss;
  };
  const cpuMs: number[] = [];
  const timed = (f: () => unknown): number => {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    f();
    const wall = performance.now() - t0;
    const c = process.cpuUsage(c0);
    cpuMs.push((c.user + c.system) / 1000);
    return wall;
  };

  const firstStepMs = timed(trainStep);
  trainStep(); // warm-up
  const tensorsBefore = tf.memory().numTensors;
  const stepMsAll: number[] = [];
  cpuMs.length = 0;
  for (let i = 0; i < options.steps; i++) stepMsAll.push(timed(trainStep));
  const stepCpuMs = median(cpuMs);
  const tensorsLeaked = tf.memory().numTensors - tensorsBefore;

  // inference: one image (batch 1), as a user's predict or serve call
  const one = tf.slice(images, [0, 0, 0, 0], [1, -1, -1, -1]);
  const forward = () => {
    const y = tf.tidy(() => peft.backbone.encode(one));
    y.dataSync();
    y.dispose();
  };
  for (let i = 0; i < INFERENCE_WARMUP; i++) forward();
  const fwd: number[] = [];
  for (let i = 0; i < options.forwards; i++) fwd.push(timed(forward));

  // one profiled step: kernel shapes (FLOPs), per-kernel times, peak tensor bytes
  const check = tf.env().getBool('CHECK_COMPUTATION_FOR_ERRORS');
  tf.env().set('CHECK_COMPUTATION_FOR_ERRORS', false);
  const profile = await tf.profile(() => {
    trainStep();
  });
  tf.env().set('CHECK_COMPUTATION_FOR_ERRORS', check);
  const { flops, byKernel, byShape } = summarise(profile.kernels as unknown as KernelRecord[]);

  const stepMs = median(stepMsAll);
  const heap = wasmHeapBytes();
  const result: CaseResult = {
    workload: workload.id,
    method: method.id,
    backend: report.active,
    backprop,
    fastPaths: report.active === 'wasm' ? wasmFastPathsEnabled() : false,
    ...(native ? { native } : {}),
    ...(report.wasm ? { wasm: report.wasm } : {}),
    batch: workload.batch,
    imageSize: workload.imageSize,
    trainableParameters: composed.trainableParameters,
    totalParameters: composed.totalParameters,
    firstStepMs: round(firstStepMs),
    stepMs: round(stepMs),
    stepMsAll: stepMsAll.map((x) => round(x)),
    stepCpuMs: round(stepCpuMs),
    inferenceMs: round(median(fwd)),
    stepGflop: round(flops / 1e9, 3),
    gflops: round(flops / 1e6 / stepMs, 2),
    peakRssMB: round((process.resourceUsage().maxRSS * 1024) / 2 ** 20),
    peakTensorMB: round(profile.peakBytes / 2 ** 20),
    ...(heap !== undefined ? { wasmHeapMB: round(heap / 2 ** 20) } : {}),
    tensorsLeaked,
    loss: losses.map((x) => Number(x.toPrecision(6))),
    node: process.version,
    date: new Date().toISOString(),
  };
  if (options.kernels) {
    const r = (k: KernelSummary) => ({ ...k, ms: round(k.ms), gflop: round(k.gflop, 3) });
    result.kernels = byKernel.slice(0, 25).map(r);
    result.kernelShapes = byShape.slice(0, Number(process.env.PEFT_BENCH_SHAPES ?? 25)).map(r);
    const inference = await tf.profile(forward);
    result.inferenceKernels = summarise(inference.kernels as unknown as KernelRecord[]).byKernel.slice(0, 25).map(r);
  }
  tf.dispose([images, one]);
  adam.dispose();
  peft.model.dispose();
  return result;
}
