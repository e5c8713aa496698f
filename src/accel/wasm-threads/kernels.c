// Kernels for WebAssembly SIMD128 on threads, for peftjs's wasm path (no
// native addon; pool.ts runs them): a float32 matrix product C = A B
// (row-major), exact GELU and its gradient. Each thread runs its own share
// (a job record) on one shared memory.
//
// A is read in place through strides (element (i, k) at a[i*ras + k*cas]), so
// op(A) = A^T costs nothing. B is packed into panels of 8 columns (zero-padded)
// by the calling thread, one block of KC rows at a time (gemm_raw), or once for
// a frozen weight (pack_b, then gemm_packed). The micro-kernel keeps an MR x 8
// tile of C in registers and adds a[i,k] * b[k,:] with separate multiply and
// add (SIMD128 has no fused multiply-add): each element's sum runs over k in
// order, so the result does not depend on the split between threads.
//
// No stack, no static data: each thread passes its own scratch buffers (all
// threads share one memory but each instance starts its stack pointer at the
// same place, so nothing here may live on the stack; build-wasm-kernels.sh
// checks that the module never moves it).
#include <wasm_simd128.h>

#ifndef MR
#define MR 4
#endif
#define NR 8
#ifndef KC
#define KC 256
#endif
#ifndef MC
#define MC 48
#endif

typedef float f32;

// c[0..mr)[0..8) (+)= a[0..mr) x bp, over kc steps. Written for a constant mr
// (inlined per mr below) so the accumulators stay in registers.
static inline __attribute__((always_inline)) void micro(
    const int mr, int kc, const f32 *a, int ras, int cas, const f32 *bp, f32 *c, int ldc, int first) {
  v128_t acc[MR][2];
  for (int r = 0; r < mr; r++) acc[r][0] = acc[r][1] = wasm_f32x4_const(0, 0, 0, 0);
  const f32 *ar[MR];
  for (int r = 0; r < mr; r++) ar[r] = a + r * ras;
  for (int k = 0; k < kc; k++) {
    const v128_t b0 = wasm_v128_load(bp);
    const v128_t b1 = wasm_v128_load(bp + 4);
    bp += NR;
    for (int r = 0; r < mr; r++) {
      const v128_t x = wasm_v128_load32_splat(ar[r]);
      ar[r] += cas;
      acc[r][0] = wasm_f32x4_add(acc[r][0], wasm_f32x4_mul(x, b0));
      acc[r][1] = wasm_f32x4_add(acc[r][1], wasm_f32x4_mul(x, b1));
    }
  }
  for (int r = 0; r < mr; r++) {
    f32 *cr = c + r * ldc;
    if (first) {
      wasm_v128_store(cr, acc[r][0]);
      wasm_v128_store(cr + 4, acc[r][1]);
    } else {
      wasm_v128_store(cr, wasm_f32x4_add(wasm_v128_load(cr), acc[r][0]));
      wasm_v128_store(cr + 4, wasm_f32x4_add(wasm_v128_load(cr + 4), acc[r][1]));
    }
  }
}

static void micro_any(int mr, int kc, const f32 *a, int ras, int cas, const f32 *bp, f32 *c, int ldc, int first) {
  switch (mr) {
    case 6: micro(6, kc, a, ras, cas, bp, c, ldc, first); break;
    case 5: micro(5, kc, a, ras, cas, bp, c, ldc, first); break;
    case 4: micro(4, kc, a, ras, cas, bp, c, ldc, first); break;
    case 3: micro(3, kc, a, ras, cas, bp, c, ldc, first); break;
    case 2: micro(2, kc, a, ras, cas, bp, c, ldc, first); break;
    default: micro(1, kc, a, ras, cas, bp, c, ldc, first); break;
  }
}

// One tile of C at (i, j): full panels straight into C, a last partial panel
// (nr < 8 columns) through the 8-wide scratch tile.
static void tile(int mr, int nr, int kc, const f32 *a, int ras, int cas, const f32 *bp, f32 *c, int ldc, int first, f32 *scratch) {
  if (nr == NR) {
    micro_any(mr, kc, a, ras, cas, bp, c, ldc, first);
    return;
  }
  micro_any(mr, kc, a, ras, cas, bp, scratch, NR, 1);
  for (int r = 0; r < mr; r++) {
    for (int j = 0; j < nr; j++) c[r * ldc + j] = first ? scratch[r * NR + j] : c[r * ldc + j] + scratch[r * NR + j];
  }
}

// Packs rows [k0, k0 + kc) and columns [j0, j1) of B (element (k, j) at
// b[k*rsb + j*csb]) as panels of 8 columns: dst[p*pstride + kk*8 + jj].
static void pack(const f32 *b, int rsb, int csb, int k0, int kc, int j0, int j1, f32 *dst, int pstride) {
  for (int j = j0, p = 0; j < j1; j += NR, p++) {
    const int nr = j1 - j < NR ? j1 - j : NR;
    f32 *d = dst + p * pstride;
    if (csb == 1 && nr == NR) {
      const f32 *s = b + k0 * rsb + j;
      for (int kk = 0; kk < kc; kk++, s += rsb, d += NR) {
        wasm_v128_store(d, wasm_v128_load(s));
        wasm_v128_store(d + 4, wasm_v128_load(s + 4));
      }
    } else if (rsb == 1 && nr == NR) {
      // B^T stored row-major (column j of B contiguous): 4 k's of the panel's
      // 8 columns at a time, two 4x4 transposes in registers
      const f32 *s0 = b + j * csb + k0;
      int kk = 0;
      for (; kk + 4 <= kc; kk += 4) {
        v128_t r[8];
        for (int q = 0; q < 8; q++) r[q] = wasm_v128_load(s0 + q * csb + kk);
        for (int h = 0; h < 2; h++) {
          const v128_t t0 = wasm_i32x4_shuffle(r[4 * h], r[4 * h + 1], 0, 4, 1, 5);
          const v128_t t1 = wasm_i32x4_shuffle(r[4 * h], r[4 * h + 1], 2, 6, 3, 7);
          const v128_t t2 = wasm_i32x4_shuffle(r[4 * h + 2], r[4 * h + 3], 0, 4, 1, 5);
          const v128_t t3 = wasm_i32x4_shuffle(r[4 * h + 2], r[4 * h + 3], 2, 6, 3, 7);
          wasm_v128_store(d + (kk + 0) * NR + 4 * h, wasm_i32x4_shuffle(t0, t2, 0, 1, 4, 5));
          wasm_v128_store(d + (kk + 1) * NR + 4 * h, wasm_i32x4_shuffle(t0, t2, 2, 3, 6, 7));
          wasm_v128_store(d + (kk + 2) * NR + 4 * h, wasm_i32x4_shuffle(t1, t3, 0, 1, 4, 5));
          wasm_v128_store(d + (kk + 3) * NR + 4 * h, wasm_i32x4_shuffle(t1, t3, 2, 3, 6, 7));
        }
      }
      for (; kk < kc; kk++) {
        for (int jj = 0; jj < NR; jj++) d[kk * NR + jj] = s0[jj * csb + kk];
      }
    } else if (rsb == 1) {
      // B^T stored row-major, a last partial panel: column j of B is contiguous
      for (int jj = 0; jj < NR; jj++) {
        if (jj < nr) {
          const f32 *s = b + (j + jj) * csb + k0;
          for (int kk = 0; kk < kc; kk++) d[kk * NR + jj] = s[kk];
        } else {
          for (int kk = 0; kk < kc; kk++) d[kk * NR + jj] = 0;
        }
      }
    } else {
      for (int kk = 0; kk < kc; kk++) {
        for (int jj = 0; jj < NR; jj++) d[kk * NR + jj] = jj < nr ? b[(k0 + kk) * rsb + (j + jj) * csb] : 0;
      }
    }
  }
}

// Rows [i0, i1), columns [j0, j1) of C, with the panels of column j at
// panel(j) + kk*8 for the current block of rows k0.. of B.
static void blocks(const f32 *a, int ras, int cas, int K, f32 *c, int ldc, int i0, int i1, int j0, int j1,
                   const f32 *b, int rsb, int csb, const f32 *bp, f32 *pk, f32 *scratch) {
  for (int k0 = 0; k0 < K; k0 += KC) {
    const int kc = K - k0 < KC ? K - k0 : KC;
    const f32 *panels;
    int pstride;
    if (bp) {
      panels = bp + (j0 / NR) * K * NR + k0 * NR;
      pstride = K * NR;
    } else {
      pack(b, rsb, csb, k0, kc, j0, j1, pk, kc * NR);
      panels = pk;
      pstride = kc * NR;
    }
    for (int ib = i0; ib < i1; ib += MC) {
      const int ie = i1 - ib < MC ? i1 - ib : MC;
      for (int j = j0, p = 0; j < j1; j += NR, p++) {
        const int nr = j1 - j < NR ? j1 - j : NR;
        for (int i = ib; i < ib + ie; i += MR) {
          const int mr = ib + ie - i < MR ? ib + ie - i : MR;
          tile(mr, nr, kc, a + i * ras + k0 * cas, ras, cas, panels + p * pstride, c + i * ldc + j, ldc, k0 == 0, scratch);
        }
      }
    }
  }
}

// C[i0:i1, j0:j1] = A B with B unpacked; pk holds KC * (j1 - j0 rounded up to 8)
// floats, scratch MR * 8. j0 is a multiple of 8.
__attribute__((export_name("gemm_raw"))) void gemm_raw(
    const f32 *a, int ras, int cas, const f32 *b, int rsb, int csb, int K, f32 *c, int ldc,
    int i0, int i1, int j0, int j1, f32 *pk, f32 *scratch) {
  blocks(a, ras, cas, K, c, ldc, i0, i1, j0, j1, b, rsb, csb, 0, pk, scratch);
}

// The same with B packed whole by pack_b.
__attribute__((export_name("gemm_packed"))) void gemm_packed(
    const f32 *a, int ras, int cas, const f32 *bp, int K, f32 *c, int ldc, int i0, int i1, int j0, int j1, f32 *scratch) {
  blocks(a, ras, cas, K, c, ldc, i0, i1, j0, j1, 0, 0, 0, bp, 0, scratch);
}

// Packs all of B (K x N) as panels of 8 columns over all K: ceil(N/8) * K * 8 floats.
__attribute__((export_name("pack_b"))) void pack_b(const f32 *b, int rsb, int csb, int K, int N, f32 *dst) {
  pack(b, rsb, csb, 0, K, 0, N, dst, K * NR);
}

// exp and erf on four lanes, the arithmetic of native/src/vmath.h's expFast
// and erfFast step for step (the same constants, operations and order), so
// the wasm and native GELU agree to the bit where neither fuses a
// multiply-add.
static inline v128_t exp4(v128_t x) {
  const v128_t lo = wasm_f32x4_splat(-87.33654475f);
  v128_t c = wasm_f32x4_pmin(x, wasm_f32x4_splat(88.0f));  // 88 < x ? 88 : x (NaN stays)
  c = wasm_f32x4_pmax(c, lo);                               // c < lo ? lo : c
  const v128_t magic = wasm_f32x4_splat(12582912.0f);
  const v128_t n = wasm_f32x4_sub(wasm_f32x4_add(wasm_f32x4_mul(c, wasm_f32x4_splat(1.44269504088896341f)), magic), magic);
  v128_t r = wasm_f32x4_sub(c, wasm_f32x4_mul(n, wasm_f32x4_splat(0.693359375f)));
  r = wasm_f32x4_sub(r, wasm_f32x4_mul(n, wasm_f32x4_splat(-2.12194440e-4f)));
  v128_t p = wasm_f32x4_splat(1.0f / 5040.0f);
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(1.0f / 720.0f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(1.0f / 120.0f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(1.0f / 24.0f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(1.0f / 6.0f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(0.5f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(1.0f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(1.0f));
  const v128_t scale = wasm_i32x4_shl(wasm_i32x4_add(wasm_i32x4_trunc_sat_f32x4(n), wasm_i32x4_splat(127)), 23);
  const v128_t y = wasm_f32x4_mul(p, scale);
  return wasm_v128_andnot(y, wasm_f32x4_lt(x, lo));  // 0 below ln(FLT_MIN)
}

static inline v128_t erf4(v128_t x) {
  const v128_t sign = wasm_v128_and(x, wasm_i32x4_splat((int)0x80000000u));
  v128_t a = wasm_v128_and(x, wasm_i32x4_splat(0x7fffffff));
  a = wasm_f32x4_pmin(a, wasm_f32x4_splat(4.0f));  // 4 < a ? 4 : a (NaN stays)
  const v128_t t = wasm_f32x4_mul(a, a);
#define STEP(v, coef) v = wasm_f32x4_add(wasm_f32x4_mul(v, t), wasm_f32x4_splat(coef))
  v128_t p = wasm_f32x4_splat(1.920207815e-08f);
  STEP(p, -2.001355597e-06f);
  STEP(p, 1.578941155e-04f);
  STEP(p, 4.386135377e-03f);
  STEP(p, 5.272476375e-02f);
  STEP(p, 2.160757482e-01f);
  STEP(p, 1.128378868e+00f);
  v128_t q = wasm_f32x4_splat(1.120994799e-03f);
  STEP(q, 1.573862880e-02f);
  STEP(q, 1.216883957e-01f);
  STEP(q, 5.248199105e-01f);
  STEP(q, 1.0f);
#undef STEP
  v128_t r = wasm_f32x4_div(wasm_f32x4_mul(a, p), q);
  r = wasm_f32x4_pmin(r, wasm_f32x4_splat(1.0f));  // 1 < r ? 1 : r
  return wasm_v128_or(r, sign);
}

// The lanes [0, n) of a vector at p (n < 4: a tail), the others 0; and back.
static inline v128_t load_tail(const f32 *p, int n) {
  return wasm_f32x4_make(p[0], n > 1 ? p[1] : 0.0f, n > 2 ? p[2] : 0.0f, 0.0f);
}
static inline void store_tail(f32 *p, v128_t v, int n) {
  p[0] = wasm_f32x4_extract_lane(v, 0);
  if (n > 1) p[1] = wasm_f32x4_extract_lane(v, 1);
  if (n > 2) p[2] = wasm_f32x4_extract_lane(v, 2);
}

static inline v128_t gelu4(v128_t v) {
  const v128_t e = erf4(wasm_f32x4_mul(v, wasm_f32x4_splat(0.70710678118654752f)));
  return wasm_f32x4_mul(wasm_f32x4_mul(v, wasm_f32x4_splat(0.5f)), wasm_f32x4_add(e, wasm_f32x4_splat(1.0f)));
}

// GELU's gradient: dy (Phi(x) + x phi(x)), as geluGradSpan in native/src/gelu.cc.
static inline v128_t gelu_grad4(v128_t v, v128_t dy) {
  const v128_t e = erf4(wasm_f32x4_mul(v, wasm_f32x4_splat(0.70710678118654752f)));
  const v128_t cdf = wasm_f32x4_mul(wasm_f32x4_add(e, wasm_f32x4_splat(1.0f)), wasm_f32x4_splat(0.5f));
  const v128_t g = exp4(wasm_f32x4_mul(wasm_f32x4_mul(v, v), wasm_f32x4_splat(-0.5f)));
  const v128_t xpdf = wasm_f32x4_mul(wasm_f32x4_mul(v, g), wasm_f32x4_splat(0.39894228040143268f));
  return wasm_f32x4_mul(dy, wasm_f32x4_add(cdf, xpdf));
}

// Exact GELU over elements [i0, i1) (reads and writes nothing outside them).
static void gelu(const f32 *x, f32 *y, int i0, int i1) {
  int i = i0;
  for (; i + 4 <= i1; i += 4) wasm_v128_store(y + i, gelu4(wasm_v128_load(x + i)));
  if (i < i1) store_tail(y + i, gelu4(load_tail(x + i, i1 - i)), i1 - i);
}

static void gelu_grad(const f32 *x, const f32 *dy, f32 *dx, int i0, int i1) {
  int i = i0;
  for (; i + 4 <= i1; i += 4) wasm_v128_store(dx + i, gelu_grad4(wasm_v128_load(x + i), wasm_v128_load(dy + i)));
  if (i < i1) store_tail(dx + i, gelu_grad4(load_tail(x + i, i1 - i), load_tail(dy + i, i1 - i)), i1 - i);
}

// c = a op b elementwise (op: add, sub, mul, div; the IEEE operations, so the
// results equal tfjs's to the bit) over output elements [i0, i1), seen as rows
// of n. Each side is a full tensor (SIDE_FULL), a row of n repeated for every
// row (SIDE_ROW), one value per row (SIDE_COLUMN) or one value (SIDE_SCALAR).
enum { OP_ADD = 0, OP_SUB = 1, OP_MUL = 2, OP_DIV = 3 };
enum { SIDE_FULL = 0, SIDE_ROW = 1, SIDE_COLUMN = 2, SIDE_SCALAR = 3 };

static inline __attribute__((always_inline)) v128_t apply4(const int op, v128_t x, v128_t y) {
  switch (op) {
    case OP_ADD: return wasm_f32x4_add(x, y);
    case OP_SUB: return wasm_f32x4_sub(x, y);
    case OP_MUL: return wasm_f32x4_mul(x, y);
    default: return wasm_f32x4_div(x, y);
  }
}

// One run of `len` elements: x from xp (stride 1) or the value xs (xsplat), y likewise.
static inline __attribute__((always_inline)) void run_op(
    const int op, const int xsplat, const int ysplat, const f32 *xp, f32 xs, const f32 *yp, f32 ys, f32 *c, int len) {
  const v128_t xv = wasm_f32x4_splat(xs), yv = wasm_f32x4_splat(ys);
  int t = 0;
  for (; t + 4 <= len; t += 4) {
    const v128_t x = xsplat ? xv : wasm_v128_load(xp + t);
    const v128_t y = ysplat ? yv : wasm_v128_load(yp + t);
    wasm_v128_store(c + t, apply4(op, x, y));
  }
  if (t < len) {
    const int r = len - t;
    const v128_t x = xsplat ? xv : load_tail(xp + t, r);
    const v128_t y = ysplat ? yv : load_tail(yp + t, r);
    store_tail(c + t, apply4(op, x, y), r);
  }
}

static void run_any(int op, int xsplat, int ysplat, const f32 *xp, f32 xs, const f32 *yp, f32 ys, f32 *c, int len) {
#define CASE(o)                                                                 \
  case o:                                                                       \
    if (xsplat && ysplat) run_op(o, 1, 1, xp, xs, yp, ys, c, len);              \
    else if (xsplat) run_op(o, 1, 0, xp, xs, yp, ys, c, len);                   \
    else if (ysplat) run_op(o, 0, 1, xp, xs, yp, ys, c, len);                   \
    else run_op(o, 0, 0, xp, xs, yp, ys, c, len);                               \
    return;
  switch (op) {
    CASE(OP_ADD)
    CASE(OP_SUB)
    CASE(OP_MUL)
    CASE(OP_DIV)
  }
#undef CASE
}

static void binary(int op, const f32 *a, int aside, const f32 *b, int bside, f32 *c, int n, int i0, int i1) {
  for (int i = i0; i < i1;) {
    const int r = i / n, j = i - r * n;
    const int len = n - j < i1 - i ? n - j : i1 - i;
    const f32 *ap = aside == SIDE_FULL ? a + i : a + j;
    const f32 *bp = bside == SIDE_FULL ? b + i : b + j;
    const int asplat = aside >= SIDE_COLUMN, bsplat = bside >= SIDE_COLUMN;
    const f32 as = aside == SIDE_COLUMN ? a[r] : aside == SIDE_SCALAR ? a[0] : 0.0f;
    const f32 bs = bside == SIDE_COLUMN ? b[r] : bside == SIDE_SCALAR ? b[0] : 0.0f;
    run_any(op, asplat, bsplat, ap, as, bp, bs, c + i, len);
    i += len;
  }
}

// Layer norm over rows of n, the arithmetic of native/src/layernorm.cc: the
// forward pass writes y and each row's mean and rstd; the backward pass writes
// dx and adds dy * xhat and dy into this thread's partial sums of dw and db
// (the pool adds the threads' partials in a fixed order). Sums run in 4 lanes.
typedef struct {
  int kind;
  const f32 *x, *w, *b;  // w, b: 0 when absent
  f32 *mean, *rstd;
  const f32 *dy;
  f32 *out;              // y, or dx
  f32 *dw, *db;          // partial sums (0 when not asked)
  int n;
  f32 eps;
  int r0, r1;
} norm_job;

static inline f32 hsum(v128_t v) {
  return (wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1)) + (wasm_f32x4_extract_lane(v, 2) + wasm_f32x4_extract_lane(v, 3));
}

static void norm_forward(const norm_job *p) {
  const int n = p->n;
  const f32 count = (f32)n;
  for (int r = p->r0; r < p->r1; r++) {
    const f32 *x = p->x + r * n;
    f32 *y = p->out + r * n;
    v128_t acc = wasm_f32x4_splat(0.0f);
    int j = 0;
    for (; j + 4 <= n; j += 4) acc = wasm_f32x4_add(acc, wasm_v128_load(x + j));
    f32 sum = hsum(acc);
    for (; j < n; j++) sum += x[j];
    const f32 m = sum / count;
    const v128_t mv = wasm_f32x4_splat(m);
    acc = wasm_f32x4_splat(0.0f);
    for (j = 0; j + 4 <= n; j += 4) {
      const v128_t d = wasm_f32x4_sub(wasm_v128_load(x + j), mv);
      acc = wasm_f32x4_add(acc, wasm_f32x4_mul(d, d));
    }
    f32 ss = hsum(acc);
    for (; j < n; j++) ss += (x[j] - m) * (x[j] - m);
    const f32 rs = 1.0f / __builtin_sqrtf(ss / count + p->eps);
    p->mean[r] = m;
    p->rstd[r] = rs;
    const v128_t rv = wasm_f32x4_splat(rs);
    for (j = 0; j + 4 <= n; j += 4) {
      v128_t v = wasm_f32x4_mul(wasm_f32x4_sub(wasm_v128_load(x + j), mv), rv);
      if (p->w) v = wasm_f32x4_mul(v, wasm_v128_load(p->w + j));
      if (p->b) v = wasm_f32x4_add(v, wasm_v128_load(p->b + j));
      wasm_v128_store(y + j, v);
    }
    for (; j < n; j++) {
      f32 v = (x[j] - m) * rs;
      if (p->w) v = v * p->w[j];
      if (p->b) v = v + p->b[j];
      y[j] = v;
    }
  }
}

static void norm_backward(const norm_job *p) {
  const int n = p->n;
  const f32 count = (f32)n;
  const f32 *w = p->w;
  for (int r = p->r0; r < p->r1; r++) {
    const f32 *g0 = p->dy + r * n;
    const f32 *x = p->x + r * n;
    f32 *dx = p->out + r * n;
    const f32 m = p->mean[r], rs = p->rstd[r];
    const v128_t mv = wasm_f32x4_splat(m), rv = wasm_f32x4_splat(rs);
    v128_t sg = wasm_f32x4_splat(0.0f), sgx = wasm_f32x4_splat(0.0f);
    int j = 0;
    for (; j + 4 <= n; j += 4) {
      v128_t g = wasm_v128_load(g0 + j);
      if (w) g = wasm_f32x4_mul(g, wasm_v128_load(w + j));
      const v128_t xhat = wasm_f32x4_mul(wasm_f32x4_sub(wasm_v128_load(x + j), mv), rv);
      sg = wasm_f32x4_add(sg, g);
      sgx = wasm_f32x4_add(sgx, wasm_f32x4_mul(g, xhat));
    }
    f32 sumG = hsum(sg), sumGx = hsum(sgx);
    for (; j < n; j++) {
      const f32 g = w ? g0[j] * w[j] : g0[j];
      sumG += g;
      sumGx += g * ((x[j] - m) * rs);
    }
    const f32 meanG = sumG / count, meanGx = sumGx / count;
    const v128_t mg = wasm_f32x4_splat(meanG), mgx = wasm_f32x4_splat(meanGx);
    for (j = 0; j + 4 <= n; j += 4) {
      const v128_t g1 = wasm_v128_load(g0 + j);
      const v128_t g = w ? wasm_f32x4_mul(g1, wasm_v128_load(w + j)) : g1;
      const v128_t xhat = wasm_f32x4_mul(wasm_f32x4_sub(wasm_v128_load(x + j), mv), rv);
      wasm_v128_store(dx + j, wasm_f32x4_mul(wasm_f32x4_sub(wasm_f32x4_sub(g, mg), wasm_f32x4_mul(xhat, mgx)), rv));
      if (p->dw) wasm_v128_store(p->dw + j, wasm_f32x4_add(wasm_v128_load(p->dw + j), wasm_f32x4_mul(g1, xhat)));
      if (p->db) wasm_v128_store(p->db + j, wasm_f32x4_add(wasm_v128_load(p->db + j), g1));
    }
    for (; j < n; j++) {
      const f32 g = w ? g0[j] * w[j] : g0[j];
      const f32 xhat = (x[j] - m) * rs;
      dx[j] = ((g - meanG) - xhat * meanGx) * rs;
      if (p->dw) p->dw[j] += g0[j] * xhat;
      if (p->db) p->db[j] += g0[j];
    }
  }
}

// Column sums of a [rows, n] matrix, columns [j0, j1): c[j] = the sum over
// rows in order (16 columns at a time down the rows, then 4, then 1).
static void col_sum(const f32 *a, f32 *c, int rows, int n, int j0, int j1) {
  int j = j0;
  for (; j + 16 <= j1; j += 16) {
    v128_t s0 = wasm_f32x4_splat(0.0f), s1 = s0, s2 = s0, s3 = s0;
    for (int r = 0; r < rows; r++) {
      const f32 *row = a + r * n + j;
      s0 = wasm_f32x4_add(s0, wasm_v128_load(row));
      s1 = wasm_f32x4_add(s1, wasm_v128_load(row + 4));
      s2 = wasm_f32x4_add(s2, wasm_v128_load(row + 8));
      s3 = wasm_f32x4_add(s3, wasm_v128_load(row + 12));
    }
    wasm_v128_store(c + j, s0);
    wasm_v128_store(c + j + 4, s1);
    wasm_v128_store(c + j + 8, s2);
    wasm_v128_store(c + j + 12, s3);
  }
  for (; j + 4 <= j1; j += 4) {
    v128_t s0 = wasm_f32x4_splat(0.0f);
    for (int r = 0; r < rows; r++) s0 = wasm_f32x4_add(s0, wasm_v128_load(a + r * n + j));
    wasm_v128_store(c + j, s0);
  }
  for (; j < j1; j++) {
    f32 t = 0.0f;
    for (int r = 0; r < rows; r++) t += a[r * n + j];
    c[j] = t;
  }
}

// A transpose of 4-byte elements (rank <= 6): output element i has index
// (i_0 .. i_{rank-1}) in the output's shape os and sits at sum i_d st[d] in
// the input (st: the input stride of each output axis). Output elements
// [i0, i1): runs along the last output axis, copied in vectors when that axis
// is the input's last too, gathered otherwise. The index counters live in the
// job record (this thread's own memory: the module has no stack per thread).
typedef struct {
  int kind;
  const f32 *x;
  int rank;
  int os[6], st[6];
  f32 *out;
  int i0, i1;
  int idx[6];
} permute_job;

static void permute(permute_job *p) {
  const int rank = p->rank, last = rank - 1;
  int *idx = p->idx;
  int rem = p->i0, src = 0;
  for (int d = last; d >= 0; d--) {
    idx[d] = rem % p->os[d];
    rem /= p->os[d];
    src += idx[d] * p->st[d];
  }
  const int step = p->st[last], len = p->os[last];
  for (int i = p->i0; i < p->i1;) {
    const int run = len - idx[last] < p->i1 - i ? len - idx[last] : p->i1 - i;
    f32 *o = p->out + i;
    const f32 *x = p->x + src;
    if (step == 1) {
      int t = 0;
      for (; t + 4 <= run; t += 4) wasm_v128_store(o + t, wasm_v128_load(x + t));
      for (; t < run; t++) o[t] = x[t];
    } else {
      for (int t = 0; t < run; t++) o[t] = x[t * step];
    }
    i += run;
    src += run * step;
    idx[last] += run;
    // carry into the outer axes
    for (int d = last; d > 0 && idx[d] == p->os[d]; d--) {
      src -= idx[d] * p->st[d];
      idx[d] = 0;
      idx[d - 1]++;
      src += p->st[d - 1];
    }
  }
}

// One thread's share of a job, as the pool writes it into the shared memory
// (one record per thread).
//  - products (JOB_GEMM, JOB_GEMM_PACKED): matrices [b0, b1) of a batch, rows
//    [i0, i1) and columns [j0, j1) of each; matrix t of the batch is at
//    a + t*a_step (b, c likewise; a step of 0 shares one matrix);
//  - elementwise (JOB_GELU: c = gelu(a); JOB_GELU_GRAD: c = gelu'(a) b):
//    elements [i0, i1);
//  - JOB_BINARY: c = a op b over elements [i0, i1) in rows of n = ldc, with
//    op = K, a's side = ras, b's side = rsb;
//  - JOB_NORM, JOB_NORM_GRAD: a norm_job (rows [r0, r1));
//  - JOB_COL_SUM: c = the column sums of a ([K, ldc]), columns [i0, i1);
//  - JOB_PERMUTE: a permute_job.
enum { JOB_GEMM = 0, JOB_GEMM_PACKED = 1, JOB_GELU = 2, JOB_GELU_GRAD = 3, JOB_BINARY = 4, JOB_NORM = 5, JOB_NORM_GRAD = 6, JOB_COL_SUM = 7, JOB_PERMUTE = 8 };

typedef struct {
  int kind;
  const f32 *a;
  int a_step, ras, cas;
  const f32 *b;
  int b_step, rsb, csb;
  int K;
  f32 *c;
  int c_step, ldc;
  int i0, i1, j0, j1, b0, b1;
  f32 *pk, *scratch;
} job;

__attribute__((export_name("run_job"))) void run_job(job *p) {
  switch (p->kind) {
    case JOB_GELU: gelu(p->a, p->c, p->i0, p->i1); return;
    case JOB_GELU_GRAD: gelu_grad(p->a, p->b, p->c, p->i0, p->i1); return;
    case JOB_BINARY: binary(p->K, p->a, p->ras, p->b, p->rsb, p->c, p->ldc, p->i0, p->i1); return;
    case JOB_NORM: norm_forward((const norm_job *)p); return;
    case JOB_NORM_GRAD: norm_backward((const norm_job *)p); return;
    case JOB_COL_SUM: col_sum(p->a, p->c, p->K, p->ldc, p->i0, p->i1); return;
    case JOB_PERMUTE: permute((permute_job *)p); return;
    default: break;
  }
  for (int t = p->b0; t < p->b1; t++) {
    const f32 *a = p->a + t * p->a_step;
    const f32 *b = p->b + t * p->b_step;
    f32 *c = p->c + t * p->c_step;
    if (p->kind == JOB_GEMM_PACKED) {
      gemm_packed(a, p->ras, p->cas, b, p->K, c, p->ldc, p->i0, p->i1, p->j0, p->j1, p->scratch);
    } else {
      gemm_raw(a, p->ras, p->cas, b, p->rsb, p->csb, p->K, c, p->ldc, p->i0, p->i1, p->j0, p->j1, p->pk, p->scratch);
    }
  }
}

// Buffer sizes a caller provides, in floats: gemm_raw's pk for `ncols` columns,
// and the scratch tile.
__attribute__((export_name("pack_floats"))) int pack_floats(int ncols) { return KC * ((ncols + NR - 1) / NR) * NR; }
__attribute__((export_name("scratch_floats"))) int scratch_floats(void) { return MR * NR; }
__attribute__((export_name("packed_floats"))) int packed_floats(int K, int N) { return ((N + NR - 1) / NR) * NR * K; }
