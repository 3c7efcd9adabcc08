// Fused attention's bf16 inner loops (attention.h, precision="bf16"): q.k and p.v as AVX-512 BF16 dot
// products (vdpbf16ps: two bf16 products summed into each fp32 lane), scores, softmax and sums in fp32.
// Compiled with function-level targets, so the portable build carries it and runs it only where
// bf16_unavailable_reason() is empty (the backend refuses bf16 elsewhere).
#include "backends/cpu/attention_bf16.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#define EDGEMOE_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16")))

namespace edgemoe::cpu {

namespace {

constexpr int kRows = 6;      // query rows per block: 6 x 4 score accumulators + 4 K vectors + 1 broadcast
constexpr int kColVecs = 4;   // 4 x 16 score columns per tile
constexpr int kLanes = 16;
constexpr int kValueAccumulators = 24;

EDGEMOE_BF16_TARGET inline __m512bh as_bh(__m512i v) { return reinterpret_cast<__m512bh>(v); }

// scores[r, 0:n_pad] = scale * q_r . k: q2 holds each row's (q[2i], q[2i+1]) pairs, k2 [hd/2][n_pad] pairs.
EDGEMOE_BF16_TARGET void score_strip(const uint32_t* const* q2, const uint32_t* k2, int64_t half_hd, int64_t n_pad,
                                     float scale, float* scores) {
  for (int64_t j0 = 0; j0 < n_pad; j0 += kColVecs * kLanes) {
    __m512 acc[kRows][kColVecs];
    for (int r = 0; r < kRows; ++r)
      for (int v = 0; v < kColVecs; ++v) acc[r][v] = _mm512_setzero_ps();
    for (int64_t d = 0; d < half_hd; ++d) {
      __m512bh k[kColVecs];
      for (int v = 0; v < kColVecs; ++v) k[v] = as_bh(_mm512_loadu_si512(k2 + d * n_pad + j0 + v * kLanes));
      for (int r = 0; r < kRows; ++r) {
        const __m512bh qd = as_bh(_mm512_set1_epi32(static_cast<int>(q2[r][d])));
        for (int v = 0; v < kColVecs; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], qd, k[v]);
      }
    }
    const __m512 s = _mm512_set1_ps(scale);
    for (int r = 0; r < kRows; ++r)
      for (int v = 0; v < kColVecs; ++v) _mm512_storeu_ps(scores + r * n_pad + j0 + v * kLanes, _mm512_mul_ps(acc[r][v], s));
  }
}

// e^x for x <= 0, clamped at -87: x = n ln2 + r, e^r by a degree-7 Taylor polynomial, 2^n by scalef
// (the fp32 kernels' vexp_nonpositive, isa/simd.h, in AVX-512 intrinsics).
EDGEMOE_BF16_TARGET inline __m512 exp_nonpositive(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860682030941723212e-6f), r);
  __m512 p = _mm512_set1_ps(1.0f / 5040);
  for (const float c : {1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f, 1.0f})
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
  return _mm512_scalef_ps(p, n);
}

// exp(scores - row max) for the n real columns (0 for the padding), their fp32 sums, and the same
// numerators as bf16 pairs over columns for the value products.
EDGEMOE_BF16_TARGET void softmax_numerators(float* scores, int64_t n, int64_t n_pad, float* sums, uint32_t* probs2) {
  for (int r = 0; r < kRows; ++r) {
    float* s = scores + r * n_pad;
    __m512 m = _mm512_set1_ps(-INFINITY);
    for (int64_t j = 0; j < n_pad; j += kLanes) {
      const __mmask16 real = j + kLanes <= n ? __mmask16(0xFFFF) : __mmask16(j < n ? (1u << (n - j)) - 1 : 0);
      m = _mm512_mask_max_ps(m, real, m, _mm512_loadu_ps(s + j));
    }
    const __m512 row_max = _mm512_set1_ps(_mm512_reduce_max_ps(m));
    __m512 total = _mm512_setzero_ps();
    for (int64_t j = 0; j < n_pad; j += kLanes) {
      const __mmask16 real = j + kLanes <= n ? __mmask16(0xFFFF) : __mmask16(j < n ? (1u << (n - j)) - 1 : 0);
      const __m512 e = _mm512_maskz_mov_ps(real, exp_nonpositive(_mm512_sub_ps(_mm512_loadu_ps(s + j), row_max)));
      _mm512_storeu_ps(s + j, e);
      total = _mm512_add_ps(total, e);
    }
    sums[r] = _mm512_reduce_add_ps(total);
    uint32_t* p2 = probs2 + r * (n_pad / 2);
    for (int64_t j = 0; j < n_pad; j += 2 * kLanes) {
      const __m512bh pairs = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(s + j + kLanes), _mm512_loadu_ps(s + j));
      _mm512_storeu_si512(p2 + j / 2, reinterpret_cast<__m512i>(pairs));
    }
  }
}

// out_r = (sum_j p[r, j] v_j) / sums[r], HV vectors of 16 per value row; v2 [n_pad/2][hd] pairs over j.
template <int HV, int R>
EDGEMOE_BF16_TARGET void weighted_values_rows(const uint32_t* probs2, const uint32_t* v2, int64_t half_n,
                                              int64_t half_n_pad, const float* sums, float* const* out,
                                              int first_row, int valid_rows) {
  __m512 acc[R][HV];
  for (int r = 0; r < R; ++r)
    for (int h = 0; h < HV; ++h) acc[r][h] = _mm512_setzero_ps();
  for (int64_t j = 0; j < half_n; ++j) {
    const uint32_t* vj = v2 + j * HV * kLanes;
    for (int r = 0; r < R; ++r) {
      const __m512bh p = as_bh(_mm512_set1_epi32(static_cast<int>(probs2[(first_row + r) * half_n_pad + j])));
      for (int h = 0; h < HV; ++h) acc[r][h] = _mm512_dpbf16_ps(acc[r][h], p, as_bh(_mm512_loadu_si512(vj + h * kLanes)));
    }
  }
  for (int r = 0; r < R && first_row + r < valid_rows; ++r) {
    const __m512 inv = _mm512_set1_ps(1.0f / sums[first_row + r]);
    for (int h = 0; h < HV; ++h) _mm512_storeu_ps(out[first_row + r] + h * kLanes, _mm512_mul_ps(acc[r][h], inv));
  }
}

constexpr int value_rows(int hv) {
  int r = kRows;
  while (r > 1 && (kRows % r != 0 || r * hv > kValueAccumulators)) --r;
  return r;
}

template <int HV>
EDGEMOE_BF16_TARGET void weighted_values(const uint32_t* probs2, const uint32_t* v2, int64_t half_n, int64_t half_n_pad,
                                         const float* sums, float* const* out, int valid_rows) {
  constexpr int R = value_rows(HV);
  for (int r0 = 0; r0 < valid_rows; r0 += R)
    weighted_values_rows<HV, R>(probs2, v2, half_n, half_n_pad, sums, out, r0, valid_rows);
}

uint16_t to_bf16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);  // NaN stays NaN
  return static_cast<uint16_t>((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);  // round to nearest even
}

}  // namespace

bool attention_bf16_supports(int64_t head_dim) {
  return head_dim == 32 || head_dim == 64 || head_dim == 128;
}

int64_t attention_bf16_col_tile() { return kColVecs * kLanes; }

void pack_attention_bf16_pair(const float* qkv, int64_t tokens, int64_t n_pad, int64_t dim, int64_t head_dim,
                              int64_t column, uint16_t* k2, uint16_t* v2) {
  // k2: [hd/2][n_pad][2] (pairs over head dims), v2: [n_pad/2][hd][2] (pairs over tokens); zero padding.
  const int64_t stride = 3 * dim;
  std::fill(k2, k2 + head_dim * n_pad, uint16_t{0});
  std::fill(v2, v2 + head_dim * n_pad, uint16_t{0});
  for (int64_t j = 0; j < tokens; ++j) {
    const float* k = qkv + j * stride + dim + column;
    const float* v = qkv + j * stride + 2 * dim + column;
    for (int64_t d = 0; d < head_dim; ++d) {
      k2[((d / 2) * n_pad + j) * 2 + d % 2] = to_bf16(k[d]);
      v2[((j / 2) * head_dim + d) * 2 + j % 2] = to_bf16(v[d]);
    }
  }
}

EDGEMOE_BF16_TARGET void attention_bf16_blocks(const AttentionBf16Args& a, int64_t bh, int64_t first, int64_t last,
                                               float* scores, uint32_t* probs2) {
  const int64_t n = a.tokens, n_pad = a.n_pad, hd = a.head_dim, stride = 3 * a.dim;
  const int64_t b = bh / a.heads, h = bh % a.heads;
  const uint32_t* k2 = reinterpret_cast<const uint32_t*>(a.k2 + bh * hd * n_pad);
  const uint32_t* v2 = reinterpret_cast<const uint32_t*>(a.v2 + bh * hd * n_pad);
  uint32_t q2[kRows][64];  // head_dim <= 128: 64 pairs
  for (int64_t blk = first; blk < last; ++blk) {
    const int64_t i0 = blk * kRows;
    const int valid = static_cast<int>(std::min<int64_t>(kRows, n - i0));
    const uint32_t* q[kRows];
    float* o[kRows];
    for (int r = 0; r < kRows; ++r) {
      const int64_t i = std::min(i0 + r, n - 1);
      const float* row = a.qkv + (b * n + i) * stride + h * hd;
      for (int64_t d = 0; d < hd; d += 2)
        q2[r][d / 2] = static_cast<uint32_t>(to_bf16(row[d])) | static_cast<uint32_t>(to_bf16(row[d + 1])) << 16;
      q[r] = q2[r];
      o[r] = a.out + (b * n + i) * a.dim + h * hd;
    }
    float sums[kRows];
    score_strip(q, k2, hd / 2, n_pad, a.scale, scores);
    softmax_numerators(scores, n, n_pad, sums, probs2);
    const int64_t half_n = (n + 1) / 2, half_n_pad = n_pad / 2;
    switch (hd / kLanes) {
      case 2: weighted_values<2>(probs2, v2, half_n, half_n_pad, sums, o, valid); break;
      case 4: weighted_values<4>(probs2, v2, half_n, half_n_pad, sums, o, valid); break;
      default: weighted_values<8>(probs2, v2, half_n, half_n_pad, sums, o, valid); break;
    }
  }
}

}  // namespace edgemoe::cpu

#else  // not x86-64: the backend refuses bf16 before any of this runs

namespace edgemoe::cpu {
bool attention_bf16_supports(int64_t) { return false; }
int64_t attention_bf16_col_tile() { return 64; }
void pack_attention_bf16_pair(const float*, int64_t, int64_t, int64_t, int64_t, int64_t, uint16_t*, uint16_t*) {}
void attention_bf16_blocks(const AttentionBf16Args&, int64_t, int64_t, int64_t, float*, uint32_t*) {}
}  // namespace edgemoe::cpu

#endif
