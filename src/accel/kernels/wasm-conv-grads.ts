// The convolution gradient kernels tfjs-backend-wasm lacks, so that models
// with convolutions (TinyViT: 3x3 convs in the patch embedding, depthwise
// convs in MBConv, local conv and patch merging) train on wasm:
//
// - Conv2DBackpropFilter: dW[ky, kx] = X_k^T dy for each filter tap (ky, kx),
//   where X_k [B*oh*ow, ci] is the input seen by that tap (zero outside the
//   image). X_k^T is gathered in JS and the product runs on the backend's fast
//   2-D matrix product, written straight into dW's memory.
// - DepthwiseConv2dNativeBackpropInput / BackpropFilter: direct loops over the
//   heap, channels innermost (depthwise convolutions are cheap in FLOPs).
//
// Channels-last (NHWC) only, as the models here use; any stride, padding
// (same/valid/explicit), dilation and channel multiplier.
import * as tf from '@tensorflow/tfjs';
import { aliasTensor, asWasm, dataOf, f32View, idOf, releaseAlias, shapeBytes, wasmFunctions, weightsId, type WasmBackend } from './wasm-util.js';

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };

interface ConvAttrs {
  strides: [number, number] | number;
  dilations?: [number, number] | number;
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  dataFormat?: 'NHWC' | 'NCHW';
}

/** Size (elements) of the gathered-input buffer of Conv2DBackpropFilter; tests lower it to exercise chunking. */
export const convGradTuning = { chunkElements: 4 << 20 };

function zeroed(backend: WasmBackend, shape: number[]): tf.TensorInfo {
  const out = backend.makeOutput(shape, 'float32');
  f32View(backend, out).fill(0);
  return out;
}

function conv2DBackpropFilter({ inputs, backend: anyBackend, attrs }: KernelArgs): tf.TensorInfo {
  const backend = asWasm(anyBackend);
  const x = inputs.x!;
  const dy = inputs.dy!;
  const { strides, pad, dataFormat, dimRoundingMode, filterShape } = attrs as unknown as ConvAttrs & { filterShape: [number, number, number, number] };
  if (dataFormat && dataFormat !== 'NHWC') throw new Error('Conv2DBackpropFilter (wasm): only NHWC is supported');
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filterShape,
    strides,
    1,
    pad,
    dimRoundingMode,
    false,
    'channelsLast',
  );
  const { batchSize, inHeight, inWidth, inChannels: ci, outHeight, outWidth, outChannels: co, strideHeight, strideWidth, filterHeight, filterWidth } = info;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  const positions = batchSize * outHeight * outWidth;
  const out = zeroed(backend, filterShape);
  if (positions === 0 || ci === 0 || co === 0) return out;
  // X_k^T [ci, rows] for a chunk of output positions, rebuilt for each tap; chunks
  // bound the buffer (~16 MB) and their products are summed
  const chunk = Math.max(1, Math.min(positions, Math.floor(convGradTuning.chunkElements / ci)));
  const chunks = Math.ceil(positions / chunk);
  const cols = backend.makeOutput([ci, chunk], 'float32');
  const partial = chunks > 1 ? backend.makeOutput([ci, co], 'float32') : undefined;
  const fns = wasmFunctions(backend);
  const outOffset = dataOf(backend, out).memoryOffset;
  const dyOffset = dataOf(backend, dy).memoryOffset;
  try {
    for (let c0 = 0; c0 < positions; c0 += chunk) {
      const rows = Math.min(chunk, positions - c0);
      const aShape = shapeBytes([1, ci, rows]);
      const bShape = shapeBytes([1, rows, co]);
      // dy rows of this chunk: the whole dy when there is one chunk (its packed form may be reused)
      const dyW = chunks === 1 ? weightsId(backend, dy, positions, co) : { id: aliasTensor(backend, dyOffset + 4 * c0 * co, rows * co), temp: true };
      const colsId = chunks === 1 ? idOf(backend, cols) : aliasTensor(backend, dataOf(backend, cols).memoryOffset, ci * rows);
      try {
        for (let ky = 0; ky < filterHeight; ky++) {
          for (let kx = 0; kx < filterWidth; kx++) {
            const xv = f32View(backend, x);
            const cv = f32View(backend, cols);
            for (let r = 0; r < rows; r++) {
              const p = c0 + r;
              const ox = p % outWidth;
              const oy = Math.floor(p / outWidth) % outHeight;
              const b = Math.floor(p / (outWidth * outHeight));
              const iy = oy * strideHeight - top + ky;
              const ix = ox * strideWidth - left + kx;
              if (iy < 0 || iy >= inHeight || ix < 0 || ix >= inWidth) {
                for (let c = 0; c < ci; c++) cv[c * rows + r] = 0;
              } else {
                const src = ((b * inHeight + iy) * inWidth + ix) * ci;
                for (let c = 0; c < ci; c++) cv[c * rows + r] = xv[src + c]!;
              }
            }
            const tapOffset = outOffset + 4 * (ky * filterWidth + kx) * ci * co;
            if (!partial) {
              const tap = aliasTensor(backend, tapOffset, ci * co);
              try {
                fns.batchMatMul(colsId, aShape, 3, dyW.id, bShape, 3, false, false, tap);
              } finally {
                releaseAlias(backend, tap);
              }
            } else {
              fns.batchMatMul(colsId, aShape, 3, dyW.id, bShape, 3, false, false, idOf(backend, partial));
              const acc = new Float32Array(backend.wasm.HEAPU8.buffer, tapOffset, ci * co);
              const pv = f32View(backend, partial);
              for (let i = 0; i < ci * co; i++) acc[i]! += pv[i]!;
            }
          }
        }
      } finally {
        if (dyW.temp) releaseAlias(backend, dyW.id);
        if (chunks > 1) releaseAlias(backend, colsId);
      }
    }
  } finally {
    backend.disposeData(cols.dataId);
    if (partial) backend.disposeData(partial.dataId);
  }
  return out;
}

function depthwiseInfo(xShape: number[], filterShape: number[], a: ConvAttrs) {
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    a.strides,
    a.dilations ?? 1,
    a.pad,
    a.dimRoundingMode,
    true,
  );
}

/**
 * Depthwise input gradient at stride 1, dilation 1, multiplier 1: a forward
 * depthwise convolution (XNNPACK) of dy with the spatially rotated filter.
 * Undefined when that does not apply.
 */
function depthwiseBackpropInputFast(
  backend: WasmBackend,
  dy: tf.TensorInfo,
  filter: tf.TensorInfo,
  info: tf.backend_util.Conv2DInfo,
  depthwise: tf.KernelFunc | undefined,
): tf.TensorInfo | undefined {
  const { top, bottom, left, right } = info.padInfo;
  const kh = info.filterHeight;
  const kw = info.filterWidth;
  const pads = [kh - 1 - top, kh - 1 - bottom, kw - 1 - left, kw - 1 - right];
  const ok =
    depthwise &&
    info.inChannels === info.outChannels &&
    info.strideHeight === 1 &&
    info.strideWidth === 1 &&
    info.dilationHeight === 1 &&
    info.dilationWidth === 1 &&
    pads.every((p) => p >= 0);
  if (!ok) return undefined;
  const c = info.inChannels;
  const w = backend.makeOutput([kh, kw, c, 1], 'float32');
  const src = f32View(backend, filter);
  const dst = f32View(backend, w);
  for (let y = 0; y < kh; y++) {
    for (let x = 0; x < kw; x++) {
      dst.set(src.subarray(((kh - 1 - y) * kw + (kw - 1 - x)) * c, ((kh - 1 - y) * kw + (kw - 1 - x) + 1) * c), (y * kw + x) * c);
    }
  }
  try {
    return depthwise({
      inputs: { x: dy, filter: w },
      backend: backend as never,
      attrs: { strides: [1, 1], pad: [[0, 0], [pads[0]!, pads[1]!], [pads[2]!, pads[3]!], [0, 0]], dilations: [1, 1], dataFormat: 'NHWC' },
    }) as tf.TensorInfo;
  } finally {
    backend.disposeData(w.dataId);
  }
}

let originalDepthwise: tf.KernelFunc | undefined;

function depthwiseBackpropInput({ inputs, backend: anyBackend, attrs }: KernelArgs): tf.TensorInfo {
  const backend = asWasm(anyBackend);
  const dy = inputs.dy!;
  const filter = inputs.filter!;
  const a = attrs as unknown as ConvAttrs & { inputShape: number[] };
  const info = depthwiseInfo(a.inputShape, filter.shape, a);
  const fast = depthwiseBackpropInputFast(backend, dy, filter, info, originalDepthwise);
  if (fast) return fast;
  const { batchSize, inHeight, inWidth, inChannels: ci, outHeight, outWidth, outChannels: co } = info;
  const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw, filterHeight: kh, filterWidth: kw } = info;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  const mult = co / ci;
  const dx = zeroed(backend, info.inShape);
  const dxv = f32View(backend, dx);
  const dyv = f32View(backend, dy);
  const fv = f32View(backend, filter);
  // scatter: every output position adds dy * w to the inputs its taps read
  for (let b = 0; b < batchSize; b++) {
    for (let oy = 0; oy < outHeight; oy++) {
      for (let ox = 0; ox < outWidth; ox++) {
        const dyBase = ((b * outHeight + oy) * outWidth + ox) * co;
        for (let ky = 0; ky < kh; ky++) {
          const iy = oy * sh - top + ky * dh;
          if (iy < 0 || iy >= inHeight) continue;
          for (let kx = 0; kx < kw; kx++) {
            const ix = ox * sw - left + kx * dw;
            if (ix < 0 || ix >= inWidth) continue;
            const dxBase = ((b * inHeight + iy) * inWidth + ix) * ci;
            const fBase = (ky * kw + kx) * co;
            if (mult === 1) {
              for (let c = 0; c < ci; c++) dxv[dxBase + c]! += dyv[dyBase + c]! * fv[fBase + c]!;
            } else {
              for (let c = 0; c < ci; c++) {
                let s = 0;
                for (let q = 0; q < mult; q++) s += dyv[dyBase + c * mult + q]! * fv[fBase + c * mult + q]!;
                dxv[dxBase + c]! += s;
              }
            }
          }
        }
      }
    }
  }
  return dx;
}

function depthwiseBackpropFilter({ inputs, backend: anyBackend, attrs }: KernelArgs): tf.TensorInfo {
  const backend = asWasm(anyBackend);
  const x = inputs.x!;
  const dy = inputs.dy!;
  const a = attrs as unknown as ConvAttrs & { filterShape: number[] };
  const info = depthwiseInfo(x.shape, a.filterShape, a);
  const { batchSize, inHeight, inWidth, inChannels: ci, outHeight, outWidth, outChannels: co } = info;
  const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw, filterHeight: kh, filterWidth: kw } = info;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  const mult = co / ci;
  const acc = new Float64Array(kh * kw * co);
  const xv = f32View(backend, x);
  const dyv = f32View(backend, dy);
  for (let b = 0; b < batchSize; b++) {
    for (let oy = 0; oy < outHeight; oy++) {
      for (let ox = 0; ox < outWidth; ox++) {
        const dyBase = ((b * outHeight + oy) * outWidth + ox) * co;
        for (let ky = 0; ky < kh; ky++) {
          const iy = oy * sh - top + ky * dh;
          if (iy < 0 || iy >= inHeight) continue;
          for (let kx = 0; kx < kw; kx++) {
            const ix = ox * sw - left + kx * dw;
            if (ix < 0 || ix >= inWidth) continue;
            const xBase = ((b * inHeight + iy) * inWidth + ix) * ci;
            const fBase = (ky * kw + kx) * co;
            if (mult === 1) {
              for (let c = 0; c < ci; c++) acc[fBase + c]! += xv[xBase + c]! * dyv[dyBase + c]!;
            } else {
              for (let c = 0; c < ci; c++) {
                const xc = xv[xBase + c]!;
                for (let q = 0; q < mult; q++) acc[fBase + c * mult + q]! += xc * dyv[dyBase + c * mult + q]!;
              }
            }
          }
        }
      }
    }
  }
  const out = backend.makeOutput(a.filterShape, 'float32');
  f32View(backend, out).set(acc);
  return out;
}

/** `W [kh, kw, ci, co]` rotated 180° with in/out swapped: `W'[y, x, o, i] = W[kh-1-y, kw-1-x, i, o]`. */
function flippedFilter(backend: WasmBackend, filter: tf.TensorInfo): tf.TensorInfo {
  const [kh, kw, ci, co] = filter.shape as [number, number, number, number];
  const out = backend.makeOutput([kh, kw, co, ci], 'float32');
  const src = f32View(backend, filter);
  const dst = f32View(backend, out);
  for (let y = 0; y < kh; y++) {
    for (let x = 0; x < kw; x++) {
      const s0 = ((kh - 1 - y) * kw + (kw - 1 - x)) * ci * co;
      const d0 = (y * kw + x) * co * ci;
      for (let i = 0; i < ci; i++) {
        for (let o = 0; o < co; o++) dst[d0 + o * ci + i] = src[s0 + i * co + o]!;
      }
    }
  }
  return out;
}

/**
 * Conv2DBackpropInput at stride 1: the input gradient is the "full"
 * correlation of dy with the rotated, transposed filter — one forward Conv2D
 * (XNNPACK) instead of the backend's generic loops. Other strides keep the
 * backend's kernel.
 */
function makeConv2DBackpropInput(original: (name: string) => tf.KernelFunc | undefined): tf.KernelConfig {
  const fallback = original('Conv2DBackpropInput');
  const conv2d = original('Conv2D');
  const kernelFunc = (args: KernelArgs): tf.TensorInfo => {
    const backend = asWasm(args.backend);
    const dy = args.inputs.dy!;
    const filter = args.inputs.filter!;
    const a = args.attrs as unknown as ConvAttrs & { inputShape: [number, number, number, number] };
    const info = tf.backend_util.computeConv2DInfo(
      a.inputShape,
      filter.shape as [number, number, number, number],
      a.strides,
      1,
      a.pad,
      a.dimRoundingMode,
      false,
      'channelsLast',
    );
    const { top, bottom, left, right } = info.padInfo;
    const kh = info.filterHeight;
    const kw = info.filterWidth;
    const pads = [kh - 1 - top, kh - 1 - bottom, kw - 1 - left, kw - 1 - right];
    const usable = conv2d && (a.dataFormat ?? 'NHWC') === 'NHWC' && info.strideHeight === 1 && info.strideWidth === 1 && pads.every((p) => p >= 0);
    if (!usable) {
      if (!fallback) throw new Error('Conv2DBackpropInput (wasm): original kernel missing');
      return fallback(args as never) as tf.TensorInfo;
    }
    const w = flippedFilter(backend, filter);
    try {
      return conv2d({
        inputs: { x: dy, filter: w },
        backend: backend as never,
        attrs: { strides: [1, 1], pad: [[0, 0], [pads[0]!, pads[1]!], [pads[2]!, pads[3]!], [0, 0]], dataFormat: 'NHWC', dilations: [1, 1] },
      }) as tf.TensorInfo;
    } finally {
      backend.disposeData(w.dataId);
    }
  };
  return { kernelName: 'Conv2DBackpropInput', backendName: 'wasm', kernelFunc: kernelFunc as unknown as tf.KernelFunc };
}

export function makeConvGradKernels(original: (name: string) => tf.KernelFunc | undefined): tf.KernelConfig[] {
  originalDepthwise = original('DepthwiseConv2dNative');
  return [...convGradKernels, makeConv2DBackpropInput(original)];
}

export const convGradKernels: tf.KernelConfig[] = [
  { kernelName: 'Conv2DBackpropFilter', backendName: 'wasm', kernelFunc: conv2DBackpropFilter as unknown as tf.KernelFunc },
  { kernelName: 'DepthwiseConv2dNativeBackpropInput', backendName: 'wasm', kernelFunc: depthwiseBackpropInput as unknown as tf.KernelFunc },
  { kernelName: 'DepthwiseConv2dNativeBackpropFilter', backendName: 'wasm', kernelFunc: depthwiseBackpropFilter as unknown as tf.KernelFunc },
];
