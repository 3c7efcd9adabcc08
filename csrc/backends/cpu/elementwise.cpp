#include "backends/cpu/elementwise.h"

#include <algorithm>

#include "backends/cpu/isa/kernels.h"
#include "backends/cpu/threading.h"

namespace edgemoe::cpu {

namespace {
int64_t bytes(int64_t floats) { return floats * int64_t(sizeof(float)); }
}  // namespace

void layer_norm_rows(const float* x, int64_t x_stride, int64_t rows, int64_t dim, const float* w,
                     const float* b, float eps, float* y, int64_t y_stride, int max_threads) {
  const auto kernel = isa_kernels().layer_norm;
  parallel_ranges(rows, threads_for(bytes(2 * rows * dim), kMinBytesPerThread, max_threads),
                  [&](int64_t first, int64_t last) { kernel(x, x_stride, first, last, dim, w, b, eps, y, y_stride); });
}

void upsample2x_hwc(const float* src, float* dst, int64_t slices, int64_t H, int64_t W, int64_t C, int max_threads) {
  const auto kernel = isa_kernels().upsample_hwc_rows;
  parallel_ranges(slices * 2 * H, threads_for(bytes(5 * slices * H * W * C), kMinBytesPerThread, max_threads),
                  [&](int64_t first, int64_t last) { kernel(src, dst, first, last, H, W, C); });
}

void upsample2x_blocked_to_nchw(const float* src, float* dst, int64_t batch, int64_t channels, int64_t H,
                                int64_t W, int64_t block, int max_threads) {
  const auto kernel = isa_kernels().upsample_blocked_rows;
  parallel_ranges(batch * channels * 2 * H, threads_for(bytes(5 * batch * channels * H * W), kMinBytesPerThread, max_threads),
                  [&](int64_t first, int64_t last) { kernel(src, dst, first, last, channels, H, W, block); });
}

void im2col_patches(const float* images, int64_t batch, int64_t channels, int64_t grid_h,
                    int64_t grid_w, int64_t patch, float* cols, int max_threads) {
  const int64_t H = grid_h * patch, W = grid_w * patch, K = channels * patch * patch;
  parallel_ranges(batch * grid_h, threads_for(bytes(2 * batch * channels * H * W), kMinBytesPerThread, max_threads),
                  [&](int64_t first, int64_t last) {
    for (int64_t by = first; by < last; ++by) {
      const int64_t b = by / grid_h, py = by % grid_h;
      for (int64_t px = 0; px < grid_w; ++px) {
        float* row = cols + ((b * grid_h + py) * grid_w + px) * K;
        for (int64_t c = 0; c < channels; ++c)
          for (int64_t ky = 0; ky < patch; ++ky) {
            const float* in = images + ((b * channels + c) * H + py * patch + ky) * W + px * patch;
            std::copy(in, in + patch, row + (c * patch + ky) * patch);
          }
      }
    }
  });
}

}  // namespace edgemoe::cpu
