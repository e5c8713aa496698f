/** The addon's functions. Operands are Float32Arrays with element offsets (the wasm heap may be passed whole). */
export interface PeftNativeAddon {
  /**
   * A batch of products C_i = op(A_i) op(B_i) (+ bias on every row), row-major.
   * dims = [batch, m, n, k, transA, transB, aOff, aStride, bOff, bStride, cOff, biasOff];
   * matrix i of a starts at aOff + (aIdx ? aIdx[i] : i * aStride), likewise b; C_i at cOff + i * m * n.
   */
  gemm(a: Float32Array, b: Float32Array, c: Float32Array, dims: Int32Array, bias?: Float32Array | null, aIdx?: Int32Array | null, bIdx?: Int32Array | null): void;
  /**
   * NHWC convolutions; params = [batch, inH, inW, ci, outH, outW, co, kh, kw, sh, sw, dh, dw, padTop, padLeft,
   * off0, off1, off2] with off0..2 the element offsets of the three arrays in argument order.
   */
  conv2d(x: Float32Array, filter: Float32Array, y: Float32Array, params: Int32Array): void;
  conv2dBackpropInput(dy: Float32Array, filter: Float32Array, dx: Float32Array, params: Int32Array): void;
  conv2dBackpropFilter(x: Float32Array, dy: Float32Array, dFilter: Float32Array, params: Int32Array): void;
  depthwise(x: Float32Array, filter: Float32Array, y: Float32Array, params: Int32Array): void;
  depthwiseBackpropInput(dy: Float32Array, filter: Float32Array, dx: Float32Array, params: Int32Array): void;
  depthwiseBackpropFilter(x: Float32Array, dy: Float32Array, dFilter: Float32Array, params: Int32Array): void;
  /**
   * Fused kernels over rows (the last axis): params = [rows, cols, offset of each array in argument order]
   * (0 for an absent one); an array spans rows * cols elements, or rows (mean, rstd), or cols (weight, bias
   * and their gradients). GELU is exact (erf); layerNorm writes y and each row's mean and 1/sqrt(var + eps);
   * layerNormGrad gives dx and, when their arrays are given, dWeight and dBias (sums over the rows);
   * softmaxGrad: dx = dy y - sum(dy y) y from softmax's output y.
   */
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
  /** y = x * scale + shift over each row (scale, shift of cols), rounded after each operation (a Multiply then an Add). */
  channelAffine(x: Float32Array, scale: Float32Array, shift: Float32Array, y: Float32Array, params: Int32Array): void;
  /** y = x with axes permuted (output axis d = input axis perm[d]); params = [rank <= 8, xOff, yOff, ...shape, ...perm]. */
  transpose(x: Float32Array, y: Float32Array, params: Int32Array): void;
  /** y [outer, inner] = x [outer, reduced, inner] summed over the middle axis; params = [outer, reduced, inner, xOff, yOff]. */
  sum(x: Float32Array, y: Float32Array, params: Int32Array): void;
  /**
   * y = a op b elementwise, op = [add, sub, mul, div][params[0]]; params = [op, outer, inner, aMode, bMode, aOff,
   * bOff, yOff]: y has outer * inner elements, and an operand is read at i (mode 0), at i mod inner (1, a row of
   * inner elements) or at 0 (2, a scalar).
   */
  binary(a: Float32Array, b: Float32Array, y: Float32Array, params: Int32Array): void;
  /**
   * Multi-head self-attention over packed qkv [nb, n, 3, heads, hd] → out [nb, n, heads, hd] and the softmax
   * probs [nb, heads, n, n] (null: not kept, for inference), with the decomposed rel-pos bias when rh [qh, kh, hd] and rw [qw, kw, hd] are given;
   * params = [nb, n, heads, hd, qh, qw, kh, kw, scaleOnQuery, offsets of the 5 arrays].
   */
  attention(qkv: Float32Array, rh: Float32Array | null, rw: Float32Array | null, bias: Float32Array | null, out: Float32Array, probs: Float32Array | null, params: Int32Array, scale: number): void;
  /** Its gradient: dqkv (and drh, drw with the tables); params as attention's, with the offsets of the 8 arrays. */
  attentionGrad(
    dout: Float32Array,
    qkv: Float32Array,
    probs: Float32Array,
    rh: Float32Array | null,
    rw: Float32Array | null,
    dqkv: Float32Array,
    drh: Float32Array | null,
    drw: Float32Array | null,
    params: Int32Array,
    scale: number,
  ): void;
  /**
   * One Adam update in float32, bit-identical to peftjs's composite form: params = [rows, cols, offsets of the
   * 7 arrays]; scalars = [beta1, 1 - beta1, beta2, 1 - beta2, sqrt(bc2), eps, lr / bc1], each rounded to float32.
   * m' = m b1 + g (1 - b1), v' = v b2 + g g (1 - b2), p' = p - m' / (sqrt(v') / sqrt(bc2) + eps) (lr / bc1).
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
   * Adam over many tensors in one call, each as adam() does it, their elements split over the threads as one
   * range: arrays = [p, g, m, v, pOut, mOut, vOut] for each tensor in turn; params = [count, then per tensor:
   * size, the 7 offsets]; scalars as adam's.
   */
  adamMulti(arrays: Float32Array[], params: Int32Array, scalars: Float64Array): void;
  /**
   * AdaLoRA's importance averages of one parameter in float32, bit-identical to peftjs's composite form:
   * params = [rows, cols, offsets of the 6 arrays]; scalars = [beta1, 1 - beta1, beta2, 1 - beta2], each rounded
   * to float32. ipt = |p g|, ema' = ema b1 + ipt (1 - b1), unc' = unc b2 + |ipt - ema'| (1 - b2); a null ema or
   * unc stands for zeros (the first update).
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
  /**
   * A linear layer with a low-rank update of its enabled output groups (LoRA): y [n, out] = x W^T + bias + scaling
   * ((x A_j^T) e_j) B_j^T per enabled group, and t = x A^T [n, r*k]; bias and the rank scale e [r*k] may be null;
   * params = [n, in, out, r, groups, offsets of the 8 arrays, enabled flag per group].
   */
  lowRankLinear(x: Float32Array, w: Float32Array, bias: Float32Array | null, a: Float32Array, b: Float32Array, e: Float32Array | null, y: Float32Array, t: Float32Array, params: Int32Array, scaling: number): void;
  /** Its gradients dx, da, db, dw, dbias, de (each computed when its array is given; de only with e); params = [n, in, out, r, groups, offsets of the 13 arrays, enabled flags]. */
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
   * A bottleneck MLP (Medical-SAM-Adapter's Adapter): pre [n, hid] = x W1^T + b1, y [n, out] = scale (gelu(pre) W2^T + b2)
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
  /** Threads for OpenBLAS and for the addon's own loops. */
  setThreads(n: number): void;
  /** products: which library runs matrix products (oneDNN's sgemm when built in, else OpenBLAS), and why. */
  info(): { config: string; corename: string; parallel: string; blasThreads: number; threads: number; products: string };
}

export interface BuildStatus {
  ok: boolean;
  reason?: string;
  log?: string;
  openblas?: string;
}

/** The addon; throws an Error saying why when it was not built. */
export function load(): PeftNativeAddon;
/** What the install script recorded, if it ran. */
export function buildStatus(): BuildStatus | undefined;
/** The OpenBLAS library found on this machine (the one the build links), if any. */
export function findOpenBlas(): string | undefined;
export const ADDON_FILE: string;
/** The OPENBLAS_CORETYPE the loader chose before OpenBLAS loaded (coretype.js), with why; undefined when OpenBLAS chose its kernels itself. */
export function coreChoice(): { coretype: string; why: string } | undefined;
/** What the loader would choose under `env` (and a /proc/cpuinfo text, for tests). */
export function chooseCoreType(env?: Record<string, string | undefined>, cpuinfo?: string): { coretype: string; why: string } | undefined;
