// Transpose of a row-major tensor (rank <= 8; callers merge axes that stay
// neighbours first). The output is written in order, in tiles of the two
// axes that matter for the memory traffic: the output's last axis and the
// output axis that reads the input's last axis. When those are the same (the
// last axis stays last) every output row is one contiguous copy. Output rows
// are split over the threads (disjoint writes).
#include "transpose.h"

#include <algorithm>
#include <cstring>

#include "parallel.h"

namespace peft {
namespace {

constexpr int64_t kTile = 16;

struct Layout {
  int rank;
  int64_t oShape[kMaxTransposeRank];
  int64_t src[kMaxTransposeRank];  // input stride of each output axis
  int64_t dst[kMaxTransposeRank];  // output stride of each output axis
};

// Input and output offsets of the output element with multi-index `idx` (its last entry ignored).
void offsets(const Layout& l, const int64_t* idx, int64_t* in, int64_t* out) {
  *in = 0;
  *out = 0;
  for (int d = 0; d < l.rank - 1; d++) {
    *in += idx[d] * l.src[d];
    *out += idx[d] * l.dst[d];
  }
}

// rows [begin, end) of the output (a row = all but the last axis): one copy each
void copyRows(const Layout& l, int64_t begin, int64_t end, const float* x, float* y) {
  const int64_t run = l.oShape[l.rank - 1];
  int64_t idx[kMaxTransposeRank] = {};
  int64_t rest = begin;
  for (int d = l.rank - 2; d >= 0; d--) {
    idx[d] = rest % l.oShape[d];
    rest /= l.oShape[d];
  }
  for (int64_t r = begin; r < end; r++) {
    int64_t in, out;
    offsets(l, idx, &in, &out);
    std::memcpy(y + out, x + in, static_cast<size_t>(run) * sizeof(float));
    for (int d = l.rank - 2; d >= 0; d--) {
      if (++idx[d] < l.oShape[d]) break;
      idx[d] = 0;
    }
  }
}

// The last output axis reads the input with stride l.src[last]; axis `b` reads it contiguously.
// Items = (outer index over the other axes, tile of b): each writes kTile rows of the output.
void tileItems(const Layout& l, int b, int64_t begin, int64_t end, const float* x, float* y) {
  const int last = l.rank - 1;
  const int64_t nb = l.oShape[b], na = l.oShape[last];
  const int64_t tilesB = (nb + kTile - 1) / kTile;
  for (int64_t item = begin; item < end; item++) {
    // decompose item into the other axes' indices (row-major over them) and the tile of b
    int64_t rest = item / tilesB;
    const int64_t b0 = (item % tilesB) * kTile;
    int64_t idx[kMaxTransposeRank] = {};
    for (int d = last - 1; d >= 0; d--) {
      if (d == b) continue;
      idx[d] = rest % l.oShape[d];
      rest /= l.oShape[d];
    }
    int64_t in, out;
    offsets(l, idx, &in, &out);
    const int64_t b1 = std::min(nb, b0 + kTile);
    for (int64_t a0 = 0; a0 < na; a0 += kTile) {
      const int64_t a1 = std::min(na, a0 + kTile);
      for (int64_t i = b0; i < b1; i++) {
        const float* s = x + in + i * l.src[b];
        float* t = y + out + i * l.dst[b];
        for (int64_t j = a0; j < a1; j++) t[j] = s[j * l.src[last]];
      }
    }
  }
}
}  // namespace

void transpose(int rank, const int64_t* shape, const int64_t* perm, const float* x, float* y) {
  Layout l;
  l.rank = rank;
  int64_t inStride[kMaxTransposeRank];
  int64_t size = 1;
  for (int d = rank - 1; d >= 0; d--) {
    inStride[d] = size;
    size *= shape[d];
  }
  if (size == 0) return;
  int64_t s = 1;
  for (int d = rank - 1; d >= 0; d--) {
    l.oShape[d] = shape[perm[d]];
    l.src[d] = inStride[perm[d]];
    l.dst[d] = s;
    s *= l.oShape[d];
  }
  if (rank == 0) {
    y[0] = x[0];
    return;
  }
  const int last = rank - 1;
  if (perm[last] == last) {
    const int64_t run = l.oShape[last];
    parallelFor(size / run, std::max<int64_t>(1, (int64_t{1} << 16) / run),
                [&](int64_t b, int64_t e) { copyRows(l, b, e, x, y); });
    return;
  }
  int b = 0;
  while (perm[b] != last) b++;
  const int64_t tilesB = (l.oShape[b] + kTile - 1) / kTile;
  const int64_t items = size / (l.oShape[b] * l.oShape[last]) * tilesB;
  const int64_t perItem = kTile * l.oShape[last];
  parallelFor(items, std::max<int64_t>(1, (int64_t{1} << 16) / perItem),
              [&](int64_t begin, int64_t end) { tileItems(l, b, begin, end, x, y); });
}

}  // namespace peft
