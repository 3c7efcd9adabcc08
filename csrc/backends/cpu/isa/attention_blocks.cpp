// Fused attention's register-tiled inner loops (attention.h), compiled once per ISA path.
#include <algorithm>
#include <cmath>

#include "backends/cpu/isa/kernels.h"
#include "backends/cpu/isa/simd.h"

namespace edgemoe::cpu::EDGEMOE_ISA_NS {

namespace {

// Query rows per block and score vectors per row in the inner tile, sized to the register file.
#if defined(__AVX512F__)
constexpr int kRows = 6;     // 6 x 4 accumulators = 24 of the 32 zmm, + 4 for K, 1 for the broadcast q
constexpr int kColVecs = 4;  // 4 x 16 score columns
constexpr int kValueAccumulators = 24;
#else
constexpr int kRows = 6;     // 6 x 2 accumulators = 12 of the 16 ymm, + 2 for K, 1 for the broadcast q
constexpr int kColVecs = 2;  // 2 x 8 score columns
constexpr int kValueAccumulators = 12;
#endif
constexpr int64_t kColTile = kColVecs * kLanes;

// scores[r, 0:n_pad] = scale * q_r . K^T for kRows query rows (rows past the end repeat the last).
void score_strip(const float* const* q, const float* kt, int64_t hd, int64_t n_pad, float scale,
                 float* scores) {
  for (int64_t j0 = 0; j0 < n_pad; j0 += kColTile) {
    vfloat acc[kRows][kColVecs] = {};
    for (int64_t d = 0; d < hd; ++d) {
      vfloat k[kColVecs];
      for (int v = 0; v < kColVecs; ++v) k[v] = vload(kt + d * n_pad + j0 + v * kLanes);
      for (int r = 0; r < kRows; ++r) {
        const vfloat qd = vsplat(q[r][d]);
        for (int v = 0; v < kColVecs; ++v) acc[r][v] += qd * k[v];
      }
    }
    for (int r = 0; r < kRows; ++r)
      for (int v = 0; v < kColVecs; ++v) vstore(scores + r * n_pad + j0 + v * kLanes, acc[r][v] * scale);
  }
}

// In place: scores[r, j] = exp(scores[r, j] - max_r) for j < n; zero for the padding. Returns sums.
void softmax_numerators(float* scores, int64_t n, int64_t n_pad, float* sums) {
  for (int r = 0; r < kRows; ++r) {
    float* s = scores + r * n_pad;
    for (int64_t j = n; j < n_pad; ++j) s[j] = -INFINITY;
    vfloat m = vsplat(-INFINITY);
    for (int64_t j = 0; j < n_pad; j += kLanes) {
      const vfloat x = vload(s + j);
      m = x > m ? x : m;
    }
    const float row_max = vhmax(m);
    vfloat total{};
    for (int64_t j = 0; j < n_pad; j += kLanes) {
      const vfloat e = vexp_nonpositive(vload(s + j) - row_max);
      vfloat masked = e;
      for (int l = 0; l < kLanes; ++l)
        if (j + l >= n) masked[l] = 0.f;
      vstore(s + j, masked);
      total += masked;
    }
    sums[r] = vhsum(total);
  }
}

// out_r = (sum_j p[r, j] v_j) / sums[r]; HV = hd / kLanes vectors per value row. Rows go in passes
// of R whose R x HV accumulators stay in registers; v_j is read straight into the FMAs (a memory
// operand), so only the accumulators and the broadcast p occupy registers.
template <int HV, int R>
void weighted_values_rows(const float* probs, const float* v, int64_t n, int64_t n_pad, const float* sums,
                          float* const* out, int first_row, int valid_rows) {
  vfloat acc[R][HV] = {};
  for (int64_t j = 0; j < n; ++j) {
    const float* vj = v + j * HV * kLanes;
    for (int r = 0; r < R; ++r) {
      const vfloat p = vsplat(probs[(first_row + r) * n_pad + j]);
      for (int h = 0; h < HV; ++h) acc[r][h] += p * vload(vj + h * kLanes);
    }
  }
  for (int r = 0; r < R && first_row + r < valid_rows; ++r)
    for (int h = 0; h < HV; ++h) vstore(out[first_row + r] + h * kLanes, acc[r][h] * (1.0f / sums[first_row + r]));
}

// The largest row pass dividing kRows whose accumulators fit kValueAccumulators registers.
constexpr int value_rows(int hv) {
  int r = kRows;
  while (r > 1 && (kRows % r != 0 || r * hv > kValueAccumulators)) --r;
  return r;
}

template <int HV>
void weighted_values(const float* probs, const float* v, int64_t n, int64_t n_pad, const float* sums,
                     float* const* out, int valid_rows) {
  constexpr int R = value_rows(HV);
  static_assert(kRows % R == 0, "row passes must tile the row block");
  for (int r0 = 0; r0 < valid_rows; r0 += R)
    weighted_values_rows<HV, R>(probs, v, n, n_pad, sums, out, r0, valid_rows);
}

void weighted_values_generic(const float* probs, const float* v, int64_t n, int64_t n_pad, int64_t hd,
                             const float* sums, float* const* out, int valid_rows) {
  for (int r = 0; r < valid_rows; ++r) {
    std::fill(out[r], out[r] + hd, 0.f);
    for (int64_t j = 0; j < n; ++j) {
      const float p = probs[r * n_pad + j];
      for (int64_t d = 0; d < hd; ++d) out[r][d] += p * v[j * hd + d];
    }
    for (int64_t d = 0; d < hd; ++d) out[r][d] /= sums[r];
  }
}

}  // namespace

// The register tile's shape, for the table (isa/table.cpp).
extern const int64_t kAttentionColTile = kColTile;
extern const int kAttentionRows = kRows;

void attention_blocks(const AttentionArgs& a, int64_t bh, int64_t first, int64_t last, float* scores) {
  const int64_t n = a.tokens, n_pad = a.n_pad, hd = a.head_dim, stride = 3 * a.dim;
  const int64_t b = bh / a.heads, h = bh % a.heads;
  const float* kt = a.kt + bh * hd * n_pad;
  const float* v = a.v + bh * n * hd;
  for (int64_t blk = first; blk < last; ++blk) {
    const int64_t i0 = blk * kRows;
    const int valid = static_cast<int>(std::min<int64_t>(kRows, n - i0));
    const float* q[kRows];
    float* o[kRows];
    for (int r = 0; r < kRows; ++r) {
      const int64_t i = std::min(i0 + r, n - 1);
      q[r] = a.qkv + (b * n + i) * stride + h * hd;
      o[r] = a.out + (b * n + i) * a.dim + h * hd;
    }
    float sums[kRows];
    score_strip(q, kt, hd, n_pad, a.scale, scores);
    softmax_numerators(scores, n, n_pad, sums);
    // Head dims 32 and 64 (ViT-T/S/B) in registers; others generic.
    switch (hd % kLanes == 0 ? hd / kLanes : 0) {
      case 2: weighted_values<2>(scores, v, n, n_pad, sums, o, valid); break;
      case 4: weighted_values<4>(scores, v, n, n_pad, sums, o, valid); break;
      case 8: weighted_values<8>(scores, v, n, n_pad, sums, o, valid); break;
      default: weighted_values_generic(scores, v, n, n_pad, hd, sums, o, valid);
    }
  }
}

}  // namespace edgemoe::cpu::EDGEMOE_ISA_NS
