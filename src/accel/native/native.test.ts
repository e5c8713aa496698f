// The native kernels against the backends' own: property tests over random
// shapes, transpose flags, broadcasts, strides, paddings and dilations, on cpu
// and on wasm (where the addon works on the wasm heap in place). Skipped with
// the reason when the addon is not built; under CI, a machine with OpenBLAS
// installed must have built it.
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ensureWasmBackend, onBackend } from '../../../test/support/kernels.js';
import { runPeftMatMul } from '../kernels/index.js';
import { nativeDisabledByEnv, nativeEnvLines, nativeStatus, registerNativeKernels } from './index.js';
import { RUNS, built, close, expectBuiltWhereOpenBlasIs, load, rand, whyNotBuilt, without } from '../../../test/support/native.js';

if (!built) console.log(`native kernel tests skipped: ${whyNotBuilt}`);
const wasmOk = await ensureWasmBackend();

describe('native addon status', () => {
  it('is reported with a reason when off', () => {
    const s = nativeStatus('cpu');
    if (s.active) {
      expect(s.kernels).toContain('BatchMatMul');
      expect(nativeEnvLines(s)[0]).toMatch(/^native kernels: on/);
    } else {
      expect(s.reason).toBeTruthy();
      expect(nativeEnvLines(s)[0]).toMatch(/^native kernels: off \(.+\)/);
    }
  });

  it.skipIf(!process.env.CI || nativeDisabledByEnv())('is built under CI when OpenBLAS is installed', () => {
    expectBuiltWhereOpenBlasIs();
  });

  it.skipIf(!built)('is active on the cpu backend the tests use', () => {
    expect(nativeStatus('cpu').active).toBe(true);
  });
});

// leading axes: equal, one side's all 1 or absent, or a general broadcast
const leads = fc.constantFrom<[number[], number[]]>([[], []], [[3], [3]], [[2, 3], [2, 3]], [[4], []], [[], [2]], [[2, 2], [1]], [[1], [3]], [[2, 1], [1, 3]], [[3, 1, 2], [2, 1]]);
const matCase = fc.record({
  lead: leads,
  m: fc.integer({ min: 1, max: 20 }),
  n: fc.integer({ min: 1, max: 20 }),
  k: fc.integer({ min: 0, max: 40 }),
  tA: fc.boolean(),
  tB: fc.boolean(),
  seed: fc.integer({ min: 0, max: 1e6 }),
});

function matOperands(c: { lead: [number[], number[]]; m: number; n: number; k: number; tA: boolean; tB: boolean; seed: number }) {
  const a = rand([...c.lead[0], ...(c.tA ? [c.k, c.m] : [c.m, c.k])], c.seed);
  const b = rand([...c.lead[1], ...(c.tB ? [c.n, c.k] : [c.k, c.n])], c.seed + 1);
  return { a, b };
}

/** tf.matMul with the leading axes broadcast explicitly (the backends' own kernels broadcast only simple cases). */
function referenceMatMul(a: tf.Tensor, b: tf.Tensor, tA: boolean, tB: boolean): tf.Tensor {
  const lead = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  return tf.matMul(tf.broadcastTo(a, [...lead, ...a.shape.slice(-2)]), tf.broadcastTo(b, [...lead, ...b.shape.slice(-2)]), tA, tB);
}

const convCase = fc.record({
  batch: fc.integer({ min: 1, max: 2 }),
  h: fc.integer({ min: 1, max: 9 }),
  w: fc.integer({ min: 1, max: 9 }),
  ci: fc.integer({ min: 1, max: 6 }),
  co: fc.integer({ min: 1, max: 6 }),
  kh: fc.integer({ min: 1, max: 4 }),
  kw: fc.integer({ min: 1, max: 4 }),
  stride: fc.integer({ min: 1, max: 3 }),
  dilation: fc.integer({ min: 1, max: 2 }),
  pad: fc.constantFrom<'same' | 'valid' | number>('same', 'valid', 0, 1, 2),
  seed: fc.integer({ min: 0, max: 1e6 }),
});
type ConvCase = typeof convCase extends fc.Arbitrary<infer T> ? T : never;

/**
 * Valid for tfjs: a non-empty output, dilation > 1 only at stride 1, and a
 * numeric padding only with a square undilated filter (tfjs sizes the output
 * of a numeric padding from the filter's height alone; the wasm backend's own
 * kernels then write outside their output).
 */
function convOk(c: ConvCase): boolean {
  if (c.dilation > 1 && c.stride > 1) return false;
  if (typeof c.pad === 'number' && (c.kh !== c.kw || c.dilation > 1)) return false;
  const eh = (c.kh - 1) * c.dilation + 1;
  const ew = (c.kw - 1) * c.dilation + 1;
  const pad = typeof c.pad === 'number' ? c.pad : 0;
  return c.pad === 'same' || (c.h + 2 * pad >= eh && c.w + 2 * pad >= ew);
}

function convInfo(c: ConvCase, depthwise: boolean, mult: number) {
  const filterShape: [number, number, number, number] = depthwise ? [c.kh, c.kw, c.ci, mult] : [c.kh, c.kw, c.ci, c.co];
  const info = tf.backend_util.computeConv2DInfo([c.batch, c.h, c.w, c.ci], filterShape, c.stride, c.dilation, c.pad, undefined, depthwise);
  return { filterShape, info };
}

/**
 * The three kernels of a convolution, run directly, for one case. The
 * gradients only at dilation 1: tfjs has no gradient for dilated convolutions
 * (its cpu depthwise gradient kernels ignore the dilation; the native ones do not).
 */
function convKernels(c: ConvCase, depthwise: boolean): tf.Tensor[] {
  const mult = Math.max(1, Math.min(2, c.co % 3));
  const { filterShape, info } = convInfo(c, depthwise, mult);
  const x = rand([c.batch, c.h, c.w, c.ci], c.seed);
  const f = rand(filterShape, c.seed + 1);
  const dy = rand(info.outShape, c.seed + 2);
  const e = tf.engine();
  const run = (name: string, inputs: tf.NamedTensorMap, attrs: object) => e.runKernel(name, inputs, attrs as tf.NamedAttrMap) as tf.Tensor;
  const common = { strides: c.stride, pad: c.pad, dataFormat: 'NHWC', dilations: c.dilation };
  if (depthwise) {
    const out = [run('DepthwiseConv2dNative', { x, filter: f }, common)];
    if (c.dilation === 1) {
      out.push(run('DepthwiseConv2dNativeBackpropInput', { dy, filter: f }, { ...common, inputShape: x.shape }));
      out.push(run('DepthwiseConv2dNativeBackpropFilter', { x, dy }, { ...common, filterShape }));
    }
    return out;
  }
  const out = [run('Conv2D', { x, filter: f }, common)];
  if (c.dilation === 1) {
    const g = { strides: c.stride, pad: c.pad, dataFormat: 'NHWC' };
    out.push(run('Conv2DBackpropInput', { dy, filter: f }, { ...g, inputShape: x.shape }));
    out.push(run('Conv2DBackpropFilter', { x, dy }, { ...g, filterShape }));
  }
  return out;
}

function checkConv(c: ConvCase, depthwise: boolean, references: (() => tf.Tensor[])[]): void {
  tf.tidy(() => {
    const got = convKernels(c, depthwise);
    const terms = Math.max(c.kh * c.kw * c.ci, c.batch * c.h * c.w);
    references.forEach((ref, r) => {
      const want = ref();
      got.forEach((g, i) => close(g, want[i]!, terms, `${depthwise ? 'depthwise' : 'conv2d'} kernel ${i} vs reference ${r}: ${JSON.stringify(c)}`));
    });
  });
}

describe.skipIf(!built)('native kernels on the cpu backend', () => {
  it('BatchMatMul equals the cpu kernel (random shapes, flags, broadcasts)', () => {
    fc.assert(
      fc.property(matCase, (c) => {
        tf.tidy(() => {
          const { a, b } = matOperands(c);
          const got = tf.matMul(a, b, c.tA, c.tB);
          close(got, without(() => referenceMatMul(a, b, c.tA, c.tB)), c.k);
        });
      }),
      { numRuns: RUNS * 2 },
    );
  });

  it('Conv2D and both of its gradients equal the cpu kernels', () => {
    fc.assert(
      fc.property(convCase, (c) => {
        fc.pre(convOk(c));
        checkConv(c, false, [() => without(() => convKernels(c, false))]);
      }),
      { numRuns: RUNS * 2 },
    );
  });

  it('depthwise conv and both of its gradients equal the cpu kernels', () => {
    fc.assert(
      fc.property(convCase, (c) => {
        fc.pre(convOk(c));
        checkConv(c, true, [() => without(() => convKernels(c, true))]);
      }),
      { numRuns: RUNS * 2 },
    );
  });

  it('gradients of tf.matMul, conv2d and depthwiseConv2d flow through the native kernels', () => {
    tf.tidy(() => {
      const x = rand([2, 7, 6, 4], 1);
      const w = rand([3, 3, 4, 5], 2);
      const d = rand([3, 3, 5, 1], 3);
      const m = rand([5, 3], 4);
      const f = (xx: tf.Tensor, ww: tf.Tensor, dd: tf.Tensor, mm: tf.Tensor) => {
        const y = tf.conv2d(xx as tf.Tensor4D, ww as tf.Tensor4D, 2, 'same');
        const z = tf.depthwiseConv2d(y as tf.Tensor4D, dd as tf.Tensor4D, 1, 'same');
        return tf.sum(tf.square(tf.matMul(tf.reshape(z, [-1, 5]), mm)));
      };
      const grads = tf.grads(f)([x, w, d, m]);
      const want = without(() => tf.grads(f)([x, w, d, m]));
      grads.forEach((g, i) => close(g, want[i]!, 200));
    });
  });

  it('equals the cpu kernels on shapes that take the threaded and chunked paths', () => {
    load.addon!.setThreads(2);
    onTestFinished(() => load.addon!.setThreads((load as { threads: number }).threads));
    tf.tidy(() => {
      const e = tf.engine();
      const run = (name: string, inputs: tf.NamedTensorMap, attrs: object) => e.runKernel(name, inputs, attrs as tf.NamedAttrMap) as tf.Tensor;
      // 3x3 conv over 2x64x64x64: 8192 rows of 576 (more than one im2col chunk), threaded im2col and col2im
      const x = rand([2, 64, 64, 64], 1);
      const w = rand([3, 3, 64, 8], 2);
      const dy = rand([2, 64, 64, 8], 3);
      const a = { strides: 1, pad: 'same', dataFormat: 'NHWC', dilations: 1 };
      const conv = () => [
        run('Conv2D', { x, filter: w }, a),
        run('Conv2DBackpropInput', { dy, filter: w }, { ...a, inputShape: x.shape }),
        run('Conv2DBackpropFilter', { x, dy }, { ...a, filterShape: w.shape }),
      ];
      // depthwise over 2x32x32x32 (threaded rows), multiplier 2, stride 2
      const xd = rand([2, 32, 32, 32], 4);
      const wd = rand([3, 3, 32, 2], 5);
      const dyd = rand([2, 16, 16, 64], 6);
      const ad = { strides: 2, pad: 'same', dataFormat: 'NHWC', dilations: 1 };
      const depthwise = () => [
        run('DepthwiseConv2dNative', { x: xd, filter: wd }, ad),
        run('DepthwiseConv2dNativeBackpropInput', { dy: dyd, filter: wd }, { ...ad, inputShape: xd.shape }),
        run('DepthwiseConv2dNativeBackpropFilter', { x: xd, dy: dyd }, { ...ad, filterShape: wd.shape }),
      ];
      // a batch of 16 small products (split over threads) and one large one (threaded by OpenBLAS)
      const products = () => [tf.matMul(rand([16, 64, 64], 7), rand([16, 64, 64], 8), false, true), tf.matMul(rand([300, 200], 9), rand([300, 100], 10), true, false)];
      // with oneDNN built in, products go to it or to OpenBLAS by shape (gemm.cc, dnnlWins): a batch of
      // products each large enough for oneDNN, split over threads (one OpenMP thread each); one-thread
      // products with 4 output columns (OpenBLAS below 1M multiply-adds, or read transposed; oneDNN above),
      // and with an inner size of 6 (OpenBLAS)
      const routed = () => [
        tf.matMul(rand([8, 128, 80], 11), rand([8, 96, 80], 12), false, true),
        tf.matMul(rand([300, 200], 13), rand([300, 4], 14), true, false),
        tf.matMul(rand([512, 700], 15), rand([700, 4], 16)),
        tf.matMul(rand([512, 300], 17), rand([300, 4], 18)),
        tf.matMul(rand([400, 6], 19), rand([6, 96], 20)),
      ];
      for (const f of [conv, depthwise, products, routed]) {
        const got = f();
        const want = without(f);
        got.forEach((g, i) => close(g, want[i]!, 8192, `${f.name} ${i}`));
      }
    });
  });

  it('leaves no tensors behind', () => {
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      tf.matMul(rand([2, 3, 4], 1), rand([4, 5], 2));
      tf.conv2d(rand([1, 5, 5, 2], 3) as tf.Tensor4D, rand([3, 3, 2, 2], 4) as tf.Tensor4D, 1, 'same');
    });
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe.skipIf(!built || !wasmOk)('native kernels on the wasm backend (in place on the wasm heap)', () => {
  /** Runs `f` on wasm with the native kernels registered there. */
  const onWasm = <T>(f: () => T) =>
    onBackend('wasm', () => {
      registerNativeKernels('wasm');
      return f();
    });

  it('registers on wasm, PeftMatMul included', async () => {
    const s = await onWasm(() => nativeStatus('wasm'));
    expect(s.active).toBe(true);
    expect(s.kernels).toEqual(expect.arrayContaining(['BatchMatMul', 'PeftMatMul', 'Conv2D', 'DepthwiseConv2dNativeBackpropFilter']));
  });

  it('BatchMatMul equals the wasm kernels and the cpu backend', async () => {
    const cases = fc.sample(matCase, RUNS * 2);
    for (const c of cases) {
      const ref = tf.tidy(() => {
        const { a, b } = matOperands(c);
        return without(() => referenceMatMul(a, b, c.tA, c.tB)).arraySync();
      }); // cpu, native off
      await onWasm(() =>
        tf.tidy(() => {
          const { a, b } = matOperands(c);
          const got = tf.matMul(a, b, c.tA, c.tB);
          close(got, tf.tensor(ref as number[]), c.k);
          close(got, without(() => referenceMatMul(a, b, c.tA, c.tB)), c.k);
        }),
      );
    }
  });

  it('PeftMatMul (core matMul on wasm) with a bias equals the wasm kernel', async () => {
    const cases = fc.sample(matCase.filter((c) => c.lead[0].length === c.lead[1].length || c.lead[1].length === 0), RUNS);
    await onWasm(() => {
      for (const c of cases) {
        tf.tidy(() => {
          const { a, b } = matOperands(c);
          if (c.lead[1].length && !c.lead[0].every((d, i) => d === c.lead[1][i])) return; // outside PeftMatMul's own kernel
          const bias = rand([c.n], c.seed + 5);
          const attrs = { transposeA: c.tA, transposeB: c.tB, cacheA: false, cacheB: false };
          close(runPeftMatMul(a, b, attrs, bias), without(() => runPeftMatMul(a, b, attrs, bias)), c.k);
        });
      }
    });
  });

  it('Conv2D, depthwise conv and their gradients equal the wasm kernels and the cpu backend', async () => {
    for (const depthwise of [false, true]) {
      const cases = fc.sample(convCase.filter(convOk), RUNS);
      for (const c of cases) {
        const cpu = tf.tidy(() => without(() => convKernels(c, depthwise)).map((t) => ({ shape: t.shape, data: t.arraySync() })));
        const references = [() => cpu.map((t) => tf.tensor(t.data as number[], t.shape))];
        // tfjs-backend-wasm's own Conv2D is wrong for 'same' padding at a stride above the filter size (e.g.
        // stride 3, filter 2x4: off by ~3 from cpu); the native kernel agrees with cpu there
        if (!(c.pad === 'same' && c.stride > Math.min(c.kh, c.kw))) references.push(() => without(() => convKernels(c, depthwise)));
        await onWasm(() => checkConv(c, depthwise, references));
      }
    }
  });

  it('leaves no tensors or wasm memory behind', async () => {
    await onWasm(() => {
      const step = () =>
        tf.tidy(() => {
          const x = rand([2, 8, 8, 4], 1);
          const w = rand([3, 3, 4, 4], 2);
          const g = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.matMul(tf.reshape(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, 'same'), [128, 4]), tf.reshape(b, [36, 4]), false, true)))([x, w]);
          g.forEach((t) => t.dataSync());
        });
      step();
      const before = tf.memory();
      step();
      step();
      const after = tf.memory();
      expect(after.numTensors).toBe(before.numTensors);
      expect(after.numBytes).toBe(before.numBytes);
    });
  });
});
