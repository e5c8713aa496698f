// Multi-head self-attention over packed qkv, forward and backward in one call
// each (issue 7): SAM's `Attention` between its qkv and proj linears, with the
// optional decomposed relative-position bias (segment-anything
// `add_decomposed_rel_pos`), and TinyViT's (LeViT's) attention with its learned
// additive logits bias. One call replaces the ~20 tfjs kernels of the forward
// pass (transposes, slices, scale, two batched products, the bias adds,
// softmax) and the ~35 of the backward pass.
//
// Layouts (row-major, float32):
//   qkv   [nb, N, ld]            (each token's qkv projection); q, k, v of head h
//                                are the hd columns from qOff, kOff, vOff + h * headStride:
//                                SAM's [3, heads, hd]: ld 3C, offsets 0, C, 2C, headStride hd;
//                                per head [heads, 3, hd]: ld 3C, offsets 0, hd, 2hd, headStride 3hd
//   out   [nb, N, heads, hd]     (heads merged, before proj)
//   probs [nb, heads, N, N]      (the softmax, kept for the backward pass; may be null: not kept)
//   rh    [qh, kh, hd], rw [qw, kw, hd]  (get_rel_pos tables; N = qh*qw = kh*kw)
//   bias  [heads, N, N]          (added to the logits of every row of the batch)
#pragma once
#include <cstdint>

namespace peft {

struct AttentionShape {
  int64_t nb, n, heads, hd;
  // the query grid and key grid of the rel-pos bias (unused without rh/rw)
  int64_t qh, qw, kh, kw;
  float scale;
  // true: logits = (q * scale) k^T (SAM); false: logits = (q k^T) * scale
  bool scaleOnQuery;
  // where q, k, v sit in a row of qkv (and of dqkv): see above
  int64_t ld, qOff, kOff, vOff, headStride;
};

// out, probs from qkv (+ rel-pos bias when rh and rw are given, both or
// neither; + bias when given, after the rel-pos terms).
void attentionForward(const AttentionShape& s, const float* qkv, const float* rh, const float* rw, const float* bias,
                      float* out, float* probs);

// dqkv (written whole: columns of no q, k or v are zero), and drh, drw, dbias
// (written whole; each may be null) from the output's gradient dout, qkv and
// the forward's probs. dbias is the logits' gradient summed over the batch.
void attentionBackward(const AttentionShape& s, const float* dout, const float* qkv, const float* probs,
                       const float* rh, const float* rw, float* dqkv, float* drh, float* drw, float* dbias);

}  // namespace peft
