// The memory-bound row kernels of elementwise.h, compiled once per ISA path (vectorised by the
// compiler for that path's registers).
#include <algorithm>
#include <cmath>
#include <cstdint>

namespace edgemoe::cpu::EDGEMOE_ISA_NS {

void layer_norm(const float* x, int64_t x_stride, int64_t first, int64_t last, int64_t dim, const float* w,
                const float* b, float eps, float* y, int64_t y_stride) {
  for (int64_t r = first; r < last; ++r) {
    const float* xr = x + r * x_stride;
    float* yr = y + r * y_stride;
    float sum = 0.f;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < dim; ++i) sum += xr[i];
    const float mean = sum / static_cast<float>(dim);
    float sq = 0.f;
#pragma omp simd reduction(+ : sq)
    for (int64_t i = 0; i < dim; ++i) sq += (xr[i] - mean) * (xr[i] - mean);
    const float rstd = 1.0f / std::sqrt(sq / static_cast<float>(dim) + eps);
#pragma omp simd
    for (int64_t i = 0; i < dim; ++i) yr[i] = (xr[i] - mean) * rstd * w[i] + b[i];
  }
}

namespace {
// Source rows/columns and weights for output index o of a x2 half-pixel bilinear resize.
struct Tap {
  int64_t i0, i1;
  float w0, w1;
};
inline Tap tap2x(int64_t o, int64_t n) {
  const int64_t i = o / 2;
  if (o % 2 == 0) return {std::max<int64_t>(i - 1, 0), i, 0.25f, 0.75f};
  return {i, std::min<int64_t>(i + 1, n - 1), 0.75f, 0.25f};
}
}  // namespace

void upsample_hwc_rows(const float* src, float* dst, int64_t first, int64_t last, int64_t H, int64_t W,
                       int64_t C) {
  const int64_t OH = 2 * H, OW = 2 * W;
  for (int64_t row = first; row < last; ++row) {
    const int64_t s = row / OH, oy = row % OH;
    const Tap ty = tap2x(oy, H);
    const float* r0 = src + (s * H + ty.i0) * W * C;
    const float* r1 = src + (s * H + ty.i1) * W * C;
    float* out = dst + (s * OH + oy) * OW * C;
    for (int64_t ox = 0; ox < OW; ++ox) {
      const Tap tx = tap2x(ox, W);
      const float *a = r0 + tx.i0 * C, *bb = r0 + tx.i1 * C, *c = r1 + tx.i0 * C, *d = r1 + tx.i1 * C;
      float* o = out + ox * C;
#pragma omp simd
      for (int64_t k = 0; k < C; ++k)
        o[k] = ty.w0 * (tx.w0 * a[k] + tx.w1 * bb[k]) + ty.w1 * (tx.w0 * c[k] + tx.w1 * d[k]);
    }
  }
}

void upsample_blocked_rows(const float* src, float* dst, int64_t first, int64_t last, int64_t channels, int64_t H,
                           int64_t W, int64_t block) {
  const int64_t OH = 2 * H, OW = 2 * W, blocks = (channels + block - 1) / block;
  for (int64_t row = first; row < last; ++row) {
    const int64_t oy = row % OH, bc = row / OH, c = bc % channels, b = bc / channels;
    const Tap ty = tap2x(oy, H);
    const float* plane = src + ((b * blocks + c / block) * H * W) * block + c % block;
    const float* r0 = plane + ty.i0 * W * block;
    const float* r1 = plane + ty.i1 * W * block;
    float* out = dst + ((b * channels + c) * OH + oy) * OW;
    for (int64_t ox = 0; ox < OW; ++ox) {
      const Tap tx = tap2x(ox, W);
      out[ox] = ty.w0 * (tx.w0 * r0[tx.i0 * block] + tx.w1 * r0[tx.i1 * block]) +
                ty.w1 * (tx.w0 * r1[tx.i0 * block] + tx.w1 * r1[tx.i1 * block]);
    }
  }
}

}  // namespace edgemoe::cpu::EDGEMOE_ISA_NS
