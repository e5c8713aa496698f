// Loading the optional OpenBLAS addon (`@peftjs/native`, the workspace package
// in native/): found through node_modules when npm linked it, else beside the
// checkout (a clone where `npm install` has not run since native/ appeared).
// Loading never throws: the result says why there is no addon.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The addon's functions (see native/index.d.ts for the argument layouts). */
export interface NativeAddon {
  gemm(a: Float32Array, b: Float32Array, c: Float32Array, dims: Int32Array, bias?: Float32Array | null, aIdx?: Int32Array | null, bIdx?: Int32Array | null): void;
  conv2d(x: Float32Array, filter: Float32Array, y: Float32Array, params: Int32Array): void;
  conv2dBackpropInput(dy: Float32Array, filter: Float32Array, dx: Float32Array, params: Int32Array): void;
  conv2dBackpropFilter(x: Float32Array, dy: Float32Array, dFilter: Float32Array, params: Int32Array): void;
  depthwise(x: Float32Array, filter: Float32Array, y: Float32Array, params: Int32Array): void;
  depthwiseBackpropInput(dy: Float32Array, filter: Float32Array, dx: Float32Array, params: Int32Array): void;
  depthwiseBackpropFilter(x: Float32Array, dy: Float32Array, dFilter: Float32Array, params: Int32Array): void;
  gelu(x: Float32Array, y: Float32Array, params: Int32Array): void;
  geluGrad(x: Float32Array, dy: Float32Array, dx: Float32Array, params: Int32Array): void;
  layerNorm(x: Float32Array, weight: Float32Array | null, bias: Float32Array | null, y: Float32Array, mean: Float32Array, rstd: Float32Array, params: Int32Array, eps: number): void;
  layerNormGrad(
    dy: Float32Array,
    x: Float32Array,
    mean: Float32Array,
    rstd: Float32Array,
    weight: Float32Array | null,
    dx: Float32Array,
    dWeight: Float32Array | null,
    dBias: Float32Array | null,
    params: Int32Array,
  ): void;
  softmax(x: Float32Array, y: Float32Array, params: Int32Array): void;
  softmaxGrad(y: Float32Array, dy: Float32Array, dx: Float32Array, params: Int32Array): void;
  /** y = x * scale + shift over rows (params = [rows, cols, offsets of the 4 arrays]), a Multiply then an Add to the bit. */
  channelAffine(x: Float32Array, scale: Float32Array, shift: Float32Array, y: Float32Array, params: Int32Array): void;
  transpose(x: Float32Array, y: Float32Array, params: Int32Array): void;
  /**
   * One Adam update: params = [rows, cols, offsets of the 7 arrays]; scalars =
   * [beta1, 1 - beta1, beta2, 1 - beta2, sqrt(bc2), eps, lr / bc1] (each rounded to float32).
   */
  adam(
    p: Float32Array,
    g: Float32Array,
    m: Float32Array,
    v: Float32Array,
    pOut: Float32Array,
    mOut: Float32Array,
    vOut: Float32Array,
    params: Int32Array,
    scalars: Float64Array,
  ): void;
  /**
   * Adam over many tensors in one call (native/src/adam.h): arrays = 7 a tensor (p, g, m, v, pOut, mOut, vOut);
   * params = [count, then per tensor: size, the 7 offsets]; scalars as adam's.
   */
  adamMulti(arrays: Float32Array[], params: Int32Array, scalars: Float64Array): void;
  /**
   * AdaLoRA's importance averages of one parameter: params = [rows, cols, offsets of the 6 arrays]; scalars =
   * [beta1, 1 - beta1, beta2, 1 - beta2] (each rounded to float32); a null ema or unc is the first update's zeros.
   */
  importanceEma(
    p: Float32Array,
    g: Float32Array,
    ema: Float32Array | null,
    unc: Float32Array | null,
    emaOut: Float32Array,
    uncOut: Float32Array,
    params: Int32Array,
    scalars: Float64Array,
  ): void;
  /** y [outer, inner] = x [outer, reduced, inner] summed over the middle axis; params = [outer, reduced, inner, xOff, yOff]. */
  sum(x: Float32Array, y: Float32Array, params: Int32Array): void;
  /**
   * y = a op b elementwise, op = [add, sub, mul, div][params[0]]; params = [op, outer, inner, aMode, bMode, aOff,
   * bOff, yOff]: y has outer * inner elements, and an operand is read at i (mode 0), at i mod inner (1, a row of
   * inner elements) or at 0 (2, a scalar).
   */
  binary(a: Float32Array, b: Float32Array, y: Float32Array, params: Int32Array): void;
  /** params = [nb, n, heads, hd, qh, qw, kh, kw, scaleOnQuery, ld, qOff, kOff, vOff, headStride, offsets of the 6 arrays]. */
  attention(
    qkv: Float32Array,
    rh: Float32Array | null,
    rw: Float32Array | null,
    bias: Float32Array | null,
    out: Float32Array,
    probs: Float32Array | null,
    params: Int32Array,
    scale: number,
  ): void;
  /** params = [nb, n, heads, hd, qh, qw, kh, kw, scaleOnQuery, ld, qOff, kOff, vOff, headStride, offsets of the 9 arrays]. */
  attentionGrad(
    dout: Float32Array,
    qkv: Float32Array,
    probs: Float32Array,
    rh: Float32Array | null,
    rw: Float32Array | null,
    dqkv: Float32Array,
    drh: Float32Array | null,
    drw: Float32Array | null,
    dbias: Float32Array | null,
    params: Int32Array,
    scale: number,
  ): void;
  /** The low-rank linear layer (native/src/lowrank.cc), e the optional rank scale; params = [n, in, out, r, groups, offsets of the 8 arrays, enabled flag per group]. */
  lowRankLinear(x: Float32Array, w: Float32Array, bias: Float32Array | null, a: Float32Array, b: Float32Array, e: Float32Array | null, y: Float32Array, t: Float32Array, params: Int32Array, scaling: number): void;
  /** Its gradients (the non-null ones; de only with e); params = [n, in, out, r, groups, offsets of the 13 arrays, enabled flag per group]. */
  lowRankLinearGrad(
    dy: Float32Array,
    x: Float32Array,
    w: Float32Array,
    a: Float32Array,
    b: Float32Array,
    e: Float32Array | null,
    t: Float32Array,
    dx: Float32Array | null,
    da: Float32Array | null,
    db: Float32Array | null,
    dw: Float32Array | null,
    dbias: Float32Array | null,
    de: Float32Array | null,
    params: Int32Array,
    scaling: number,
  ): void;
  /**
   * The bottleneck MLP (native/src/bottleneck.cc): pre [n, hid] = x W1^T + b1, y [n, out] = scale (gelu(pre) W2^T + b2)
   * (+ x when skip); params = [n, in, hid, out, skip, offsets of the 7 arrays]; scale 1 when absent.
   */
  bottleneckMlp(x: Float32Array, w1: Float32Array, b1: Float32Array, w2: Float32Array, b2: Float32Array, y: Float32Array, pre: Float32Array, params: Int32Array, scale?: number): void;
  /** Its gradients dx, dw1, db1, dw2, db2 (each computed when its array is given); params = [n, in, hid, out, skip, offsets of the 10 arrays]. */
  bottleneckMlpGrad(
    dy: Float32Array,
    x: Float32Array,
    w1: Float32Array,
    w2: Float32Array,
    pre: Float32Array,
    dx: Float32Array | null,
    dw1: Float32Array | null,
    db1: Float32Array | null,
    dw2: Float32Array | null,
    db2: Float32Array | null,
    params: Int32Array,
    scale?: number,
  ): void;
  /** AdaLoRA's orthogonality distances ||Gram(x_i) - I||_F (native/src/orthogonality.cc); params = [count, normsOff, per factor rows, cols, side (1: x^T x), xOff]. */
  orthogonality(xs: Float32Array[], norms: Float32Array, params: Int32Array): void;
  /** Their gradients dx_i = dn_i 2 (D x or x D) / norm_i (0 at a zero norm); params = [count, dnOff, normsOff, per factor rows, cols, side, xOff, dxOff]. */
  orthogonalityGrad(xs: Float32Array[], dn: Float32Array, norms: Float32Array, dxs: Float32Array[], params: Int32Array): void;
  setThreads(n: number): void;
  /** products: which library runs matrix products (oneDNN's sgemm when built in, else OpenBLAS), and why. */
  info(): { config: string; corename: string; parallel: string; blasThreads: number; threads: number; products: string };
}

/** The OPENBLAS_CORETYPE the loader chose before OpenBLAS loaded, and why (native/coretype.js). */
export interface CoreChoice {
  coretype: string;
  why: string;
}

interface NativePackage {
  load(): NativeAddon;
  /** Absent in an addon package older than the choice. */
  coreChoice?(): CoreChoice | undefined;
  buildStatus(): { ok: boolean; reason?: string } | undefined;
  findOpenBlas(): string | undefined;
}

/** `packageFound`: the addon's package is there (built or not), so a missing addon is a failed or skipped build, not a choice. */
export type AddonLoad = { addon: NativeAddon; threads: number; core?: CoreChoice } | { addon?: undefined; reason: string; openblasInstalled: boolean; packageFound: boolean };

const require = createRequire(import.meta.url);
const PACKAGE = '@peftjs/native';

/** native/ of this checkout, searched upwards from this file (src/accel/native or dist/src/accel/native). */
function checkoutPackage(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const pj = join(dir, 'native', 'package.json');
    if (existsSync(pj)) {
      try {
        if ((JSON.parse(readFileSync(pj, 'utf8')) as { name?: string }).name === PACKAGE) return join(dir, 'native', 'index.js');
      } catch {
        /* not ours */
      }
    }
    dir = dirname(dir);
  }
  return undefined;
}

function nativePackage(): NativePackage | undefined {
  try {
    return require(PACKAGE) as NativePackage;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code !== 'MODULE_NOT_FOUND') throw err;
  }
  const local = checkoutPackage();
  return local ? (require(local) as NativePackage) : undefined;
}

function firstLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.split('\n')[0]!.slice(0, 240);
}

/**
 * Thread count: PEFT_NATIVE_THREADS, else OPENBLAS_NUM_THREADS, else the cores
 * available — except under vitest, whose workers already run one per core
 * (there: 1, unless one of those variables says otherwise).
 */
export function nativeThreadCount(): number {
  for (const v of [process.env.PEFT_NATIVE_THREADS, process.env.OPENBLAS_NUM_THREADS]) {
    const n = Number.parseInt(v ?? '', 10);
    if (Number.isInteger(n) && n > 0) return n;
  }
  return process.env.VITEST ? 1 : availableParallelism();
}

let loaded: AddonLoad | undefined;

/** Loads the addon once (PEFT_NATIVE=0 is checked by the caller, not here). */
export function loadAddon(): AddonLoad {
  if (loaded) return loaded;
  let pkg: NativePackage | undefined;
  try {
    pkg = nativePackage();
  } catch (err) {
    return (loaded = { reason: `${PACKAGE} failed to load: ${firstLine(err)}`, openblasInstalled: false, packageFound: true });
  }
  if (!pkg) return (loaded = { reason: `${PACKAGE} is not installed (an optional dependency)`, openblasInstalled: false, packageFound: false });
  const openblasInstalled = Boolean(pkg.findOpenBlas());
  try {
    const addon = pkg.load();
    const threads = nativeThreadCount();
    addon.setThreads(threads);
    const core = pkg.coreChoice?.();
    loaded = { addon, threads, ...(core ? { core } : {}) };
  } catch (err) {
    loaded = { reason: firstLine(err), openblasInstalled, packageFound: true };
  }
  return loaded;
}
