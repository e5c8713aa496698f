// The fused elementwise kernels (issue 7) on the addon: GELU and layer norm
// (forward and gradient, used by src/core/nn/functional.ts), Softmax (a
// replacement of tfjs's kernel) and its gradient (used by the Softmax gradient
// of ./softmax-grad.ts). Like the products, they run on the tensors' memory in
// place (see storage.ts). GELU and layer norm have no tfjs kernel to fall back
// to: the layers only call them for float32 tensors, and the kernels throw
// otherwise; Softmax falls back to the kernel it replaced. PeftAdam is Adam's
// update of one parameter (used by src/app/train/adam.ts), bit-identical to
// the composite form there, and PeftAdamMulti the same for every trainable
// tensor of a step in one call (one engine and addon trip instead of one a
// tensor); PeftSensitivityEma likewise the sensitivity
// averages of one parameter (src/core/nn/sensitivity-ema.ts: AdaLoRA's
// importance, or any sensitivity-based pruning).
import * as tf from '@tensorflow/tfjs';
import type { NativeAddon } from './addon.js';
import { PEFT_ADAM, PEFT_ADAM_MULTI, PEFT_CHANNEL_AFFINE, PEFT_GELU, PEFT_GELU_GRAD, PEFT_LAYER_NORM, PEFT_LAYER_NORM_GRAD, PEFT_SENSITIVITY_EMA, PEFT_SOFTMAX_GRAD } from './fused-names.js';
import { storageFor, type Storage, type View } from './storage.js';

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };
type Original = tf.KernelFunc | undefined;

const MAX_INT32 = 2 ** 31 - 1;

/** [rows, cols] of a tensor seen as rows over its last axis (a scalar is one row of one). */
function rowsCols(shape: readonly number[]): [number, number] {
  const cols = shape.length ? shape[shape.length - 1]! : 1;
  const size = shape.reduce((a, b) => a * b, 1);
  return [cols === 0 ? 0 : size / cols, cols];
}

function check(name: string, st: Storage, tensors: (tf.TensorInfo | undefined)[]): void {
  for (const t of tensors) {
    if (t && !st.usable(t)) throw new Error(`${name} (native): expected float32 tensors on the backend, got ${t.dtype}`);
    if (t && t.shape.reduce((a, b) => a * b, 1) > MAX_INT32) throw new Error(`${name} (native): tensor too large`);
  }
}

/** The addon's params: [rows, cols, offsets...] (0 for an absent operand). */
function params(rows: number, cols: number, views: (View | undefined)[]): Int32Array {
  return Int32Array.from([rows, cols, ...views.map((v) => v?.offset ?? 0)]);
}

function kernel(kernelName: string, backendName: string, kernelFunc: (args: KernelArgs, st: Storage) => tf.TensorInfo | tf.TensorInfo[]): tf.KernelConfig {
  const f = (args: KernelArgs) => kernelFunc(args, storageFor(backendName, args.backend));
  return { kernelName, backendName, kernelFunc: f as unknown as tf.KernelFunc };
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function gelu(backendName: string, addon: NativeAddon): tf.KernelConfig {
  return kernel(PEFT_GELU, backendName, ({ inputs }, st) => {
    const x = inputs.x!;
    check(PEFT_GELU, st, [x]);
    const y = st.alloc(x.shape);
    const [rows, cols] = rowsCols(x.shape);
    const vx = st.view(x);
    const vy = st.view(y);
    addon.gelu(vx.array, vy.array, params(rows, cols, [vx, vy]));
    return y;
  });
}

function geluGrad(backendName: string, addon: NativeAddon): tf.KernelConfig {
  return kernel(PEFT_GELU_GRAD, backendName, ({ inputs }, st) => {
    const { x, dy } = inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
    check(PEFT_GELU_GRAD, st, [x, dy]);
    if (!sameShape(x.shape, dy.shape)) throw new Error(`${PEFT_GELU_GRAD}: x ${x.shape} and dy ${dy.shape} differ`);
    const dx = st.alloc(x.shape);
    const [rows, cols] = rowsCols(x.shape);
    const v = [st.view(x), st.view(dy), st.view(dx)] as const;
    addon.geluGrad(v[0].array, v[1].array, v[2].array, params(rows, cols, [...v]));
    return dx;
  });
}

function channelAffine(backendName: string, addon: NativeAddon): tf.KernelConfig {
  return kernel(PEFT_CHANNEL_AFFINE, backendName, ({ inputs }, st) => {
    const { x, scale, shift } = inputs as { x: tf.TensorInfo; scale: tf.TensorInfo; shift: tf.TensorInfo };
    check(PEFT_CHANNEL_AFFINE, st, [x, scale, shift]);
    const [rows, cols] = rowsCols(x.shape);
    vectorOver(`${PEFT_CHANNEL_AFFINE} scale`, scale, cols);
    vectorOver(`${PEFT_CHANNEL_AFFINE} shift`, shift, cols);
    const y = st.alloc(x.shape);
    const v = [st.view(x), st.view(scale), st.view(shift), st.view(y)] as const;
    addon.channelAffine(v[0].array, v[1].array, v[2].array, v[3].array, params(rows, cols, [...v]));
    return y;
  });
}

/** A weight or bias over the last axis of `x`, if given. */
function vectorOver(name: string, t: tf.TensorInfo | undefined, cols: number): void {
  if (t && (t.shape.length !== 1 || t.shape[0] !== cols)) throw new Error(`${name}: expected a vector of ${cols}, got shape ${t.shape}`);
}

function layerNorm(backendName: string, addon: NativeAddon): tf.KernelConfig {
  return kernel(PEFT_LAYER_NORM, backendName, ({ inputs, attrs }, st) => {
    const { x, weight, bias } = inputs as { x: tf.TensorInfo; weight?: tf.TensorInfo; bias?: tf.TensorInfo };
    const eps = Number((attrs as { eps?: number }).eps ?? 1e-5);
    check(PEFT_LAYER_NORM, st, [x, weight, bias]);
    const [rows, cols] = rowsCols(x.shape);
    vectorOver(PEFT_LAYER_NORM, weight, cols);
    vectorOver(PEFT_LAYER_NORM, bias, cols);
    const y = st.alloc(x.shape);
    const mean = st.alloc([rows]);
    const rstd = st.alloc([rows]);
    const v = [x, weight, bias, y, mean, rstd].map((t) => (t ? st.view(t) : undefined));
    addon.layerNorm(v[0]!.array, v[1]?.array ?? null, v[2]?.array ?? null, v[3]!.array, v[4]!.array, v[5]!.array, params(rows, cols, v), eps);
    return [y, mean, rstd];
  });
}

function layerNormGrad(backendName: string, addon: NativeAddon): tf.KernelConfig {
  return kernel(PEFT_LAYER_NORM_GRAD, backendName, ({ inputs, attrs }, st) => {
    const { dy, x, mean, rstd, weight } = inputs as { dy: tf.TensorInfo; x: tf.TensorInfo; mean: tf.TensorInfo; rstd: tf.TensorInfo; weight?: tf.TensorInfo };
    const biasGrad = Boolean((attrs as { biasGrad?: boolean }).biasGrad);
    check(PEFT_LAYER_NORM_GRAD, st, [dy, x, mean, rstd, weight]);
    const [rows, cols] = rowsCols(x.shape);
    if (!sameShape(dy.shape, x.shape) || !sameShape(mean.shape, [rows]) || !sameShape(rstd.shape, [rows])) {
      throw new Error(`${PEFT_LAYER_NORM_GRAD}: shapes dy ${dy.shape}, x ${x.shape}, mean ${mean.shape}, rstd ${rstd.shape} do not match`);
    }
    vectorOver(PEFT_LAYER_NORM_GRAD, weight, cols);
    const dx = st.alloc(x.shape);
    const dw = weight ? st.alloc([cols]) : undefined;
    const db = biasGrad ? st.alloc([cols]) : undefined;
    const v = [dy, x, mean, rstd, weight, dx, dw, db].map((t) => (t ? st.view(t) : undefined));
    addon.layerNormGrad(
      v[0]!.array,
      v[1]!.array,
      v[2]!.array,
      v[3]!.array,
      v[4]?.array ?? null,
      v[5]!.array,
      v[6]?.array ?? null,
      v[7]?.array ?? null,
      params(rows, cols, v),
    );
    return [dx, ...(dw ? [dw] : []), ...(db ? [db] : [])];
  });
}

/** tfjs's Softmax (over the last axis; tf.softmax allows no other), falling back to the replaced kernel. */
function softmax(backendName: string, addon: NativeAddon, original: Original): tf.KernelConfig {
  return kernel('Softmax', backendName, (args, st) => {
    const logits = args.inputs.logits!;
    const dim = Number((args.attrs as { dim?: number } | undefined)?.dim ?? -1);
    const last = dim === -1 || dim === logits.shape.length - 1;
    if (!last || logits.shape.length === 0 || !st.usable(logits) || logits.shape.reduce((a, b) => a * b, 1) > MAX_INT32) {
      if (!original) throw new Error('Softmax (native): unsupported input, and no kernel of the backend to fall back to');
      return original(args as never) as tf.TensorInfo;
    }
    const y = st.alloc(logits.shape);
    const [rows, cols] = rowsCols(logits.shape);
    const vx = st.view(logits);
    const vy = st.view(y);
    addon.softmax(vx.array, vy.array, params(rows, cols, [vx, vy]));
    return y;
  });
}

function softmaxGrad(backendName: string, addon: NativeAddon): tf.KernelConfig {
  return kernel(PEFT_SOFTMAX_GRAD, backendName, ({ inputs }, st) => {
    const { y, dy } = inputs as { y: tf.TensorInfo; dy: tf.TensorInfo };
    check(PEFT_SOFTMAX_GRAD, st, [y, dy]);
    if (!sameShape(y.shape, dy.shape)) throw new Error(`${PEFT_SOFTMAX_GRAD}: y ${y.shape} and dy ${dy.shape} differ`);
    const dx = st.alloc(y.shape);
    const [rows, cols] = rowsCols(y.shape);
    const v = [st.view(y), st.view(dy), st.view(dx)] as const;
    addon.softmaxGrad(v[0].array, v[1].array, v[2].array, params(rows, cols, [...v]));
    return dx;
  });
}

export interface AdamAttrs {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** The step being taken (1 for the first), for the bias corrections. */
  step: number;
}

/**
 * The update's scalars, computed in double exactly as the composite form in
 * src/core/train/adam.ts computes them (the addon rounds each to float32, as
 * tfjs does when it makes a scalar tensor of a JS number).
 */
export function adamScalars(a: AdamAttrs): Float64Array {
  const bc1 = 1 - a.beta1 ** a.step;
  const bc2 = 1 - a.beta2 ** a.step;
  return Float64Array.of(a.beta1, 1 - a.beta1, a.beta2, 1 - a.beta2, Math.sqrt(bc2), a.eps, a.lr / bc1);
}

function adamAttrs(attrs: tf.NamedAttrMap | undefined): AdamAttrs {
  const a = (attrs ?? {}) as Partial<Record<keyof AdamAttrs, unknown>>;
  for (const k of ['lr', 'beta1', 'beta2', 'eps', 'step'] as const) {
    if (typeof a[k] !== 'number') throw new Error(`${PEFT_ADAM}: attr ${k} must be a number, got ${typeof a[k]}`);
  }
  return a as AdamAttrs;
}

/** Adam's update of one parameter: `{p, g, m, v}` (one shape), attrs AdamAttrs → [p', m', v']. */
function adam(backendName: string, addon: NativeAddon): tf.KernelConfig {
  return kernel(PEFT_ADAM, backendName, ({ inputs, attrs }, st) => {
    const { p, g, m, v } = inputs as { p: tf.TensorInfo; g: tf.TensorInfo; m: tf.TensorInfo; v: tf.TensorInfo };
    const scalars = adamScalars(adamAttrs(attrs));
    check(PEFT_ADAM, st, [p, g, m, v]);
    if (![g, m, v].every((t) => sameShape(t.shape, p.shape))) {
      throw new Error(`${PEFT_ADAM}: shapes p ${p.shape}, g ${g.shape}, m ${m.shape}, v ${v.shape} differ`);
    }
    const out = [st.alloc(p.shape), st.alloc(p.shape), st.alloc(p.shape)];
    const [rows, cols] = rowsCols(p.shape);
    if (rows * cols > 0) {
      const vs = [p, g, m, v, ...out].map((t) => st.view(t));
      addon.adam(vs[0]!.array, vs[1]!.array, vs[2]!.array, vs[3]!.array, vs[4]!.array, vs[5]!.array, vs[6]!.array, params(rows, cols, vs), scalars);
    }
    return out;
  });
}

const EMPTY = new Float32Array(0);

/**
 * Adam's update of many parameters: `{p0, g0, m0, v0, p1, ...}` (each four of one shape), attrs AdamAttrs and
 * `count` → [p0', m0', v0', p1', ...]; one addon call whose elements the threads split as one range.
 */
function adamMulti(backendName: string, addon: NativeAddon): tf.KernelConfig {
  return kernel(PEFT_ADAM_MULTI, backendName, ({ inputs, attrs }, st) => {
    const scalars = adamScalars(adamAttrs(attrs));
    const count = (attrs as { count?: unknown } | undefined)?.count;
    if (typeof count !== 'number' || !Number.isInteger(count) || count < 0) throw new Error(`${PEFT_ADAM_MULTI}: attr count must be a whole number, got ${String(count)}`);
    const ins: tf.TensorInfo[][] = [];
    for (let i = 0; i < count; i++) {
      const four = (['p', 'g', 'm', 'v'] as const).map((k) => inputs[`${k}${i}`]);
      if (four.some((t) => t === undefined)) throw new Error(`${PEFT_ADAM_MULTI}: inputs p${i}, g${i}, m${i}, v${i} expected`);
      const [p, g, m, v] = four as tf.TensorInfo[];
      check(PEFT_ADAM_MULTI, st, [p, g, m, v]);
      if (![g, m, v].every((t) => sameShape(t!.shape, p!.shape))) {
        throw new Error(`${PEFT_ADAM_MULTI}: shapes p${i} ${p!.shape}, g ${g!.shape}, m ${m!.shape}, v ${v!.shape} differ`);
      }
      ins.push(four as tf.TensorInfo[]);
    }
    const outs = ins.map(([p]) => [st.alloc(p!.shape), st.alloc(p!.shape), st.alloc(p!.shape)]);
    // views after every allocation (the wasm heap may have grown)
    const arrays: Float32Array[] = [];
    const params = new Int32Array(1 + 8 * count);
    params[0] = count;
    for (let i = 0; i < count; i++) {
      const size = ins[i]![0]!.shape.reduce((a, b) => a * b, 1);
      params[1 + 8 * i] = size;
      [...ins[i]!, ...outs[i]!].forEach((t, k) => {
        const view = size > 0 ? st.view(t) : { array: EMPTY, offset: 0 };
        arrays.push(view.array);
        params[2 + 8 * i + k] = view.offset;
      });
    }
    if (count > 0) addon.adamMulti(arrays, params, scalars);
    return outs.flat();
  });
}

/** The sensitivity update's scalars [beta1, 1 - beta1, beta2, 1 - beta2], in double as the composite form computes them. */
export function sensitivityScalars(beta1: number, beta2: number): Float64Array {
  return Float64Array.of(beta1, 1 - beta1, beta2, 1 - beta2);
}

/** The sensitivity averages of one parameter: `{p, g, ema?, unc?}` (one shape), attrs `{beta1, beta2}` → [ema', unc']. The addon's symbol keeps its first name, importanceEma. */
function sensitivityEma(backendName: string, addon: NativeAddon): tf.KernelConfig {
  return kernel(PEFT_SENSITIVITY_EMA, backendName, ({ inputs, attrs }, st) => {
    const { p, g, ema, unc } = inputs as { p: tf.TensorInfo; g: tf.TensorInfo; ema?: tf.TensorInfo; unc?: tf.TensorInfo };
    const a = (attrs ?? {}) as { beta1?: unknown; beta2?: unknown };
    for (const k of ['beta1', 'beta2'] as const) {
      if (typeof a[k] !== 'number') throw new Error(`${PEFT_SENSITIVITY_EMA}: attr ${k} must be a number, got ${typeof a[k]}`);
    }
    check(PEFT_SENSITIVITY_EMA, st, [p, g, ema, unc]);
    if (![g, ema, unc].every((t) => !t || sameShape(t.shape, p.shape))) {
      throw new Error(`${PEFT_SENSITIVITY_EMA}: shapes p ${p.shape}, g ${g.shape}, ema ${ema?.shape ?? '-'}, unc ${unc?.shape ?? '-'} differ`);
    }
    const out = [st.alloc(p.shape), st.alloc(p.shape)];
    const [rows, cols] = rowsCols(p.shape);
    if (rows * cols > 0) {
      const vs = [p, g, ema, unc, ...out].map((t) => (t ? st.view(t) : undefined));
      const arr = (i: number) => vs[i]?.array ?? null;
      addon.importanceEma(arr(0)!, arr(1)!, arr(2), arr(3), arr(4)!, arr(5)!, params(rows, cols, vs), sensitivityScalars(a.beta1 as number, a.beta2 as number));
    }
    return out;
  });
}

/** Kernel names this module registers ('Softmax' replaces the backend's). */
export const FUSED_NATIVE_KERNELS = ['Softmax', PEFT_SOFTMAX_GRAD, PEFT_GELU, PEFT_GELU_GRAD, PEFT_CHANNEL_AFFINE, PEFT_LAYER_NORM, PEFT_LAYER_NORM_GRAD, PEFT_ADAM, PEFT_ADAM_MULTI, PEFT_SENSITIVITY_EMA];

/** The config of one of FUSED_NATIVE_KERNELS, or undefined for another name. */
export function makeFusedKernel(name: string, backendName: string, addon: NativeAddon, original: Original): tf.KernelConfig | undefined {
  switch (name) {
    case 'Softmax':
      return softmax(backendName, addon, original);
    case PEFT_SOFTMAX_GRAD:
      return softmaxGrad(backendName, addon);
    case PEFT_GELU:
      return gelu(backendName, addon);
    case PEFT_GELU_GRAD:
      return geluGrad(backendName, addon);
    case PEFT_CHANNEL_AFFINE:
      return channelAffine(backendName, addon);
    case PEFT_LAYER_NORM:
      return layerNorm(backendName, addon);
    case PEFT_LAYER_NORM_GRAD:
      return layerNormGrad(backendName, addon);
    case PEFT_ADAM:
      return adam(backendName, addon);
    case PEFT_ADAM_MULTI:
      return adamMulti(backendName, addon);
    case PEFT_SENSITIVITY_EMA:
      return sensitivityEma(backendName, addon);
    default:
      return undefined;
  }
}
