// Multi-head self-attention over packed qkv (attention.h). Each (window or
// image, head) pair is independent: its products run on the addon's product
// engine (oneDNN or OpenBLAS by shape, gemm.cc) reading q, k
// and v in place in qkv (leading dimension ld, at the columns the layout puts
// them), and writing out, dq, dk, dv in place the same way, so nothing is
// transposed or sliced. The pairs are split over the addon's threads; each
// product then runs on one thread.
//
// Per pair, with L = logits, P = softmax(L), O = P v:
//   forward:  L = (q s) k^T [+ relH[i, a] + relW[i, b] at key (a, b)] [+ bias[h]],
//             relH[i, a] = q_i . rh[y_i, a], relW[i, b] = q_i . rw[x_i, b]
//   backward: dP = dO v^T, dv = P^T dO, dL = P (dP - rowsum(dP P)),
//             dq = s dL k + sum_a dRelH rh + sum_b dRelW rw, dk = dL^T (q s),
//             dRelH[i, a] = sum_b dL[i, (a, b)], dRelW[i, b] = sum_a dL[i, (a, b)],
//             drh[y, a] = sum over pairs and x of dRelH[(y, x), a] q_(y, x), drw alike,
//             dbias[h] = sum over the batch of dL.
// The order of operations follows the composite tfjs form (scale q, then the
// product; add relH + relW, then add that to the logits; then the bias;
// softmax as tfjs's), except that the backward's scale on the logits is the
// alpha of the dq and dk products.
#include "attention.h"

#include <algorithm>
#include <vector>

#include "blas.h"
#include "fused.h"
#include "parallel.h"
#include "simd.h"

namespace peft {
namespace {

// C[m, n] = alpha op(A) op(B) + beta C with explicit leading dimensions, on
// one thread (the caller's part; OpenBLAS's count was set to 1 before the parts).
void gemm(bool transA, bool transB, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  sgemmStridedOne(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// (inlined into the PEFT_CLONES loops that call them: a call across clones is an ifunc dispatch each time)
PEFT_INLINE float dot(int64_t n, const float* __restrict a, const float* __restrict b) {
  float acc[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    for (int l = 0; l < 8; l++) acc[l] += a[j + l] * b[j + l];
  }
  float tail = 0.0f;
  for (; j < n; j++) tail += a[j] * b[j];
  return (((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))) + tail;
}

// y[0..n) += alpha x[0..n)
PEFT_INLINE void axpy(int64_t n, float alpha, const float* __restrict x, float* __restrict y) {
  for (int64_t j = 0; j < n; j++) y[j] += alpha * x[j];
}

template <typename T>
struct Pair {
  T* q;  // rows of stride s.ld
  T* k;
  T* v;
};

// q, k, v of pair p (batch row p / heads, head p % heads) in qkv or dqkv
template <typename T>
Pair<T> pairOf(const AttentionShape& s, T* qkv, int64_t p) {
  const int64_t b = p / s.heads;
  const int64_t h = p % s.heads;
  T* row = qkv + b * s.n * s.ld + h * s.headStride;
  return {row + s.qOff, row + s.kOff, row + s.vOff};
}

// scratch[i, c] = q[i, c] * scale (contiguous, leading dimension hd)
void scaledQuery(const AttentionShape& s, const float* q, float* qs) {
  for (int64_t i = 0; i < s.n; i++) {
    for (int64_t c = 0; c < s.hd; c++) qs[i * s.hd + c] = q[i * s.ld + c] * s.scale;
  }
}

// logits = logits * scale (when scaled) + bias (when given), one rounding per
// operation as the composite tfjs form (no FMA).
__attribute__((optimize("fp-contract=off"))) void scaleAndBias(int64_t count, bool scaled, float scale,
                                                               const float* __restrict bias, float* __restrict logits) {
  if (scaled && bias) {
    for (int64_t j = 0; j < count; j++) logits[j] = logits[j] * scale + bias[j];
  } else if (scaled) {
    for (int64_t j = 0; j < count; j++) logits[j] = logits[j] * scale;
  } else if (bias) {
    for (int64_t j = 0; j < count; j++) logits[j] = logits[j] + bias[j];
  }
}

// relH [n, kh] and relW [n, kw] of one pair's queries
PEFT_CLONES void relPosTerms(const AttentionShape& s, const float* q, const float* rh, const float* rw, float* relH, float* relW) {
  const int64_t ld3 = s.ld;
  for (int64_t i = 0; i < s.n; i++) {
    const int64_t y = i / s.qw;
    const int64_t x = i % s.qw;
    const float* qi = q + i * ld3;
    for (int64_t a = 0; a < s.kh; a++) relH[i * s.kh + a] = dot(s.hd, qi, rh + (y * s.kh + a) * s.hd);
    for (int64_t b = 0; b < s.kw; b++) relW[i * s.kw + b] = dot(s.hd, qi, rw + (x * s.kw + b) * s.hd);
  }
}

// d[0..hd) += sum over t < count of g[t * gStride] * rows[t * rowStride + 0..hd), the terms
// added to each element in t order (as one axpy a term would), 8 elements at a time
// held in registers across the terms instead of a load and a store of d per term.
PEFT_INLINE void addTerms(int64_t hd, int64_t count, const float* g, int64_t gStride, const float* rows, int64_t rowStride,
                          float* d) {
  int64_t c0 = 0;
  for (; c0 + 8 <= hd; c0 += 8) {
    float v[8];
    for (int l = 0; l < 8; l++) v[l] = d[c0 + l];
    for (int64_t t = 0; t < count; t++) {
      const float gt = g[t * gStride];
      const float* r = rows + t * rowStride + c0;
      for (int l = 0; l < 8; l++) v[l] += gt * r[l];
    }
    for (int l = 0; l < 8; l++) d[c0 + l] = v[l];
  }
  for (; c0 < hd; c0++) {
    float v = d[c0];
    for (int64_t t = 0; t < count; t++) v += g[t * gStride] * rows[t * rowStride + c0];
    d[c0] = v;
  }
}

// dq += dRelH rh + dRelW rw; drh += dRelH^T q and drw += dRelW^T q (each may be null). Each
// element gets its terms in the order of one axpy a term (dq_i: the rows a, then b; drh[y, a]:
// the queries of row y in order; drw[x, b]: those of column x), so the sums are those of
// that loop, made with each destination held in registers across its terms.
PEFT_CLONES void relPosBackward(const AttentionShape& s, const float* q, const float* rh, const float* rw,
                                const float* dRelH, const float* dRelW, float* dq, float* drh, float* drw) {
  const int64_t hd = s.hd, ld3 = s.ld;
  for (int64_t i = 0; i < s.n; i++) {
    const int64_t y = i / s.qw, x = i % s.qw;
    float* di = dq + i * ld3;
    addTerms(hd, s.kh, dRelH + i * s.kh, 1, rh + y * s.kh * hd, hd, di);
    addTerms(hd, s.kw, dRelW + i * s.kw, 1, rw + x * s.kw * hd, hd, di);
  }
  if (drh) {
    for (int64_t y = 0; y < s.qh; y++) {
      const int64_t i0 = y * s.qw;  // the row's queries: i0 .. i0 + qw - 1
      for (int64_t a = 0; a < s.kh; a++) {
        addTerms(hd, s.qw, dRelH + i0 * s.kh + a, s.kh, q + i0 * ld3, ld3, drh + (y * s.kh + a) * hd);
      }
    }
  }
  if (drw) {
    for (int64_t x = 0; x < s.qw; x++) {
      // the column's queries: x, x + qw, ...
      for (int64_t b = 0; b < s.kw; b++) {
        addTerms(hd, s.qh, dRelW + x * s.kw + b, s.qw * s.kw, q + x * ld3, s.qw * ld3, drw + (x * s.kw + b) * hd);
      }
    }
  }
}

// y[0..n) += x[0..n)
PEFT_CLONES void addInto(int64_t n, const float* __restrict x, float* __restrict y) {
  for (int64_t j = 0; j < n; j++) y[j] += x[j];
}

void forwardPair(const AttentionShape& s, const float* qkv, const float* rh, const float* rw, const float* bias,
                 float* out, float* probs, int64_t p, std::vector<float>& scratch) {
  const int64_t n = s.n, hd = s.hd, c = s.heads * hd, ld3 = s.ld;
  const Pair<const float> pr = pairOf(s, qkv, p);
  const float* bh = bias ? bias + (p % s.heads) * n * n : nullptr;
  const bool rel = rh != nullptr;
  scratch.resize(n * n + n * hd + (rel ? n * (s.kh + s.kw) : 0) + (probs ? 0 : n * n));
  float* logits = scratch.data();
  float* qs = logits + n * n;
  float* relH = qs + n * hd;
  float* relW = relH + n * s.kh;
  float* pscratch = relW + (rel ? n * s.kw : 0);
  if (s.scaleOnQuery) {
    scaledQuery(s, pr.q, qs);
    gemm(false, true, n, n, hd, 1.0f, qs, hd, pr.k, ld3, 0.0f, logits, n);
  } else {
    gemm(false, true, n, n, hd, 1.0f, pr.q, ld3, pr.k, ld3, 0.0f, logits, n);
  }
  // the bias joins here unless the rel-pos terms come first
  scaleAndBias(n * n, !s.scaleOnQuery, s.scale, rel ? nullptr : bh, logits);
  if (rel) {
    relPosTerms(s, pr.q, rh, rw, relH, relW);
    for (int64_t i = 0; i < n; i++) {
      float* li = logits + i * n;
      for (int64_t a = 0; a < s.kh; a++) {
        const float h = relH[i * s.kh + a];
        const float* w = relW + i * s.kw;
        float* la = li + a * s.kw;
        for (int64_t b = 0; b < s.kw; b++) la[b] = la[b] + (h + w[b]);
      }
    }
    scaleAndBias(n * n, false, 1.0f, bh, logits);
  }
  // the probabilities go to probs when kept (for the backward pass), else to the part's scratch
  float* P = probs ? probs + p * n * n : pscratch;
  softmaxRowsSerial(n, n, logits, P);
  const int64_t b = p / s.heads, h = p % s.heads;
  gemm(false, false, n, hd, n, 1.0f, P, n, pr.v, ld3, 0.0f, out + b * n * c + h * hd, c);
}

void backwardPair(const AttentionShape& s, const float* dout, const float* qkv, const float* probs, const float* rh,
                  const float* rw, float* dqkv, float* drh, float* drw, float* dbias, int64_t p,
                  std::vector<float>& scratch) {
  const int64_t n = s.n, hd = s.hd, c = s.heads * hd, ld3 = s.ld;
  const int64_t b = p / s.heads, h = p % s.heads;
  const Pair<const float> pr = pairOf(s, qkv, p);
  const Pair<float> dpr = pairOf(s, dqkv, p);
  const bool rel = rh != nullptr;
  scratch.resize(2 * n * n + n * hd + (rel ? n * (s.kh + s.kw) : 0));
  float* dP = scratch.data();
  float* dL = dP + n * n;
  float* qs = dL + n * n;
  float* dRelH = qs + n * hd;
  float* dRelW = dRelH + n * s.kh;
  const float* P = probs + p * n * n;
  const float* dO = dout + b * n * c + h * hd;
  float* dq = dpr.q;
  float* dk = dpr.k;
  float* dv = dpr.v;

  gemm(false, true, n, n, hd, 1.0f, dO, c, pr.v, ld3, 0.0f, dP, n);  // dP = dO v^T
  gemm(true, false, n, hd, n, 1.0f, P, n, dO, c, 0.0f, dv, ld3);      // dv = P^T dO
  softmaxGradRowsSerial(n, n, P, dP, dL);
  if (dbias) addInto(n * n, dL, dbias + h * n * n);
  if (rel) {
    for (int64_t i = 0; i < n; i++) {
      const float* li = dL + i * n;
      float* rH = dRelH + i * s.kh;
      float* rW = dRelW + i * s.kw;
      for (int64_t bb = 0; bb < s.kw; bb++) rW[bb] = 0.0f;
      for (int64_t a = 0; a < s.kh; a++) {
        const float* la = li + a * s.kw;
        float sum = 0.0f;
        for (int64_t bb = 0; bb < s.kw; bb++) {
          sum += la[bb];
          rW[bb] += la[bb];
        }
        rH[a] = sum;
      }
    }
  }
  if (s.scaleOnQuery) {
    scaledQuery(s, pr.q, qs);
    gemm(false, false, n, hd, n, 1.0f, dL, n, pr.k, ld3, 0.0f, dq, ld3);  // d(q s) = dL k
    for (int64_t i = 0; i < n; i++) {
      float* di = dq + i * ld3;
      for (int64_t cc = 0; cc < hd; cc++) di[cc] = di[cc] * s.scale;
    }
    gemm(true, false, n, hd, n, 1.0f, dL, n, qs, hd, 0.0f, dk, ld3);  // dk = dL^T (q s)
  } else {
    // d(q k^T) = dL s: the scale rides on the products (alpha) rather than a pass over dL
    gemm(false, false, n, hd, n, s.scale, dL, n, pr.k, ld3, 0.0f, dq, ld3);
    gemm(true, false, n, hd, n, s.scale, dL, n, pr.q, ld3, 0.0f, dk, ld3);
  }
  if (rel) relPosBackward(s, pr.q, rh, rw, dRelH, dRelW, dq, drh, drw);
}

// The pairs split over at most threadCount() parts, each with its own scratch
// (and its own rel-pos table and bias gradients, summed at the end).
int partsFor(int64_t pairs) {
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threadCount(), pairs)));
}
}  // namespace

void attentionForward(const AttentionShape& s, const float* qkv, const float* rh, const float* rw, const float* bias,
                      float* out, float* probs) {
  const int64_t pairs = s.nb * s.heads;
  if (pairs == 0 || s.n == 0) return;
  const int parts = partsFor(pairs);
  if (parts > 1) useBlasThreads(1);
  parallelFor(parts, 1, [&](int64_t p0, int64_t p1) {
    std::vector<float> scratch;
    for (int64_t part = p0; part < p1; part++) {
      for (int64_t p = part * pairs / parts; p < (part + 1) * pairs / parts; p++) {
        forwardPair(s, qkv, rh, rw, bias, out, probs, p, scratch);
      }
    }
  });
}

void attentionBackward(const AttentionShape& s, const float* dout, const float* qkv, const float* probs,
                       const float* rh, const float* rw, float* dqkv, float* drh, float* drw, float* dbias) {
  const int64_t pairs = s.nb * s.heads;
  const int64_t rhSize = s.qh * s.kh * s.hd, rwSize = s.qw * s.kw * s.hd, biasSize = s.heads * s.n * s.n;
  if (drh) std::fill(drh, drh + rhSize, 0.0f);
  if (drw) std::fill(drw, drw + rwSize, 0.0f);
  if (dbias) std::fill(dbias, dbias + biasSize, 0.0f);
  // the pairs write their q, k, v columns; a layout leaving columns over leaves them zero
  if (3 * s.heads * s.hd != s.ld) std::fill(dqkv, dqkv + s.nb * s.n * s.ld, 0.0f);
  if (pairs == 0 || s.n == 0) return;
  const int parts = partsFor(pairs);
  if (parts > 1) useBlasThreads(1);
  // part 0 accumulates into drh, drw, dbias themselves, the others into their
  // own buffers, summed in order at the end
  const int64_t hSize = drh ? rhSize : 0, wSize = drw ? rwSize : 0, bSize = dbias ? biasSize : 0;
  const bool shared = hSize + wSize + bSize > 0;
  std::vector<std::vector<float>> partial(shared ? parts - 1 : 0);
  parallelFor(parts, 1, [&](int64_t p0, int64_t p1) {
    std::vector<float> scratch;
    for (int64_t part = p0; part < p1; part++) {
      float* ph = drh;
      float* pw = drw;
      float* pb = dbias;
      if (shared && part > 0) {
        std::vector<float>& buf = partial[part - 1];
        buf.assign(hSize + wSize + bSize, 0.0f);
        ph = drh ? buf.data() : nullptr;
        pw = drw ? buf.data() + hSize : nullptr;
        pb = dbias ? buf.data() + hSize + wSize : nullptr;
      }
      for (int64_t p = part * pairs / parts; p < (part + 1) * pairs / parts; p++) {
        backwardPair(s, dout, qkv, probs, rh, rw, dqkv, ph, pw, pb, p, scratch);
      }
    }
  });
  for (const std::vector<float>& buf : partial) {
    if (drh) addInto(rhSize, buf.data(), drh);
    if (drw) addInto(rwSize, buf.data() + hSize, drw);
    if (dbias) addInto(biasSize, buf.data() + hSize + wSize, dbias);
  }
}

}  // namespace peft
