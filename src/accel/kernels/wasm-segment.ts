// UnsortedSegmentSum for the wasm backend (the gradient of gather, e.g. of
// TinyViT's attention-bias table lookup): `out[s, ...] = sum of x[i, ...]
// over the positions i whose segment id is s`; ids outside [0, numSegments)
// are dropped, as TensorFlow does.
import * as tf from '@tensorflow/tfjs';
import { asWasm, f32View } from './wasm-util.js';

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };

function unsortedSegmentSum({ inputs, backend: anyBackend, attrs }: KernelArgs): tf.TensorInfo {
  const backend = asWasm(anyBackend);
  const x = inputs.x!;
  const ids = inputs.segmentIds!;
  const numSegments = (attrs as { numSegments: number }).numSegments;
  if (x.dtype !== 'float32') throw new Error('UnsortedSegmentSum (wasm): float32 only');
  const idCount = ids.shape.reduce((a, b) => a * b, 1);
  const rest = x.shape.slice(ids.shape.length);
  const inner = rest.reduce((a, b) => a * b, 1);
  const acc = new Float64Array(numSegments * inner);
  const idv = backend.readSync(ids.dataId) as Int32Array;
  const xv = f32View(backend, x);
  for (let i = 0; i < idCount; i++) {
    const s = idv[i]!;
    if (s < 0 || s >= numSegments) continue;
    const src = i * inner;
    const dst = s * inner;
    for (let j = 0; j < inner; j++) acc[dst + j]! += xv[src + j]!;
  }
  const out = backend.makeOutput([numSegments, ...rest], 'float32');
  f32View(backend, out).set(acc);
  return out;
}

export const segmentKernels: tf.KernelConfig[] = [
  { kernelName: 'UnsortedSegmentSum', backendName: 'wasm', kernelFunc: unsortedSegmentSum as unknown as tf.KernelFunc },
];
