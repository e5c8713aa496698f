// Multi-head self-attention over packed qkv, forward and backward in one call
// each (issue 7): SAM's `Attention` between its qkv and proj linears, with the
// optional decomposed relative-position bias (segment-anything
// `add_decomposed_rel_pos`). One call replaces the ~20 tfjs kernels of the
// forward pass (transposes, slices, scale, two batched products, the rel-pos
// products and broadcast adds, softmax) and the ~35 of the backward pass.
//
// Layouts (row-major, float32):
//   qkv   [nb, N, 3, heads, hd]  (each token's qkv projection, as SAM's reshape)
//   out   [nb, N, heads, hd]     (heads merged, before proj)
//   probs [nb, heads, N, N]      (the softmax, kept for the backward pass)
//   rh    [qh, kh, hd], rw [qw, kw, hd]  (get_rel_pos tables; N = qh*qw = kh*kw)
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
};

// out, probs from qkv (+ rel-pos bias when rh and rw are given; both or neither).
void attentionForward(const AttentionShape& s, const float* qkv, const float* rh, const float* rw, float* out,
                      float* probs);

// dqkv (written whole), and drh, drw (written whole; may be null) from the
// output's gradient dout, qkv and the forward's probs.
void attentionBackward(const AttentionShape& s, const float* dout, const float* qkv, const float* probs,
                       const float* rh, const float* rw, float* dqkv, float* drh, float* drw);

}  // namespace peft
