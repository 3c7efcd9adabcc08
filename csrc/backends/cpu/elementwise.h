// Memory-bound helpers of the CPU backend: the active ISA path's kernels (isa/kernels.h), split over
// at most `max_threads` threads when the work is large enough (threading.h).
#pragma once

#include <cstdint>

namespace edgemoe::cpu {

// y[r] = LayerNorm(x[r]) * w + b for `rows` rows of `dim`, with row strides in floats.
void layer_norm_rows(const float* x, int64_t x_stride, int64_t rows, int64_t dim, const float* w,
                     const float* b, float eps, float* y, int64_t y_stride, int max_threads);

// Bilinear x2 (align_corners=False, PyTorch's half-pixel rule) on `slices` independent
// [H, W, C] arrays with C contiguous; dst is [slices, 2H, 2W, C]. Used for NHWC and for each
// channel block of oneDNN's nChw16c / nChw8c.
void upsample2x_hwc(const float* src, float* dst, int64_t slices, int64_t H, int64_t W, int64_t C, int max_threads);

// Same resize, from a blocked layout ([B, ceil(C/block), H, W, block]) to planar NCHW [B, C, 2H, 2W].
void upsample2x_blocked_to_nchw(const float* src, float* dst, int64_t batch, int64_t channels, int64_t H,
                                int64_t W, int64_t block, int max_threads);

// images [B, C, H, W] -> patch rows [B*gh*gw, C*P*P] in Conv2d weight order (c, ky, kx).
void im2col_patches(const float* images, int64_t batch, int64_t channels, int64_t grid_h,
                    int64_t grid_w, int64_t patch, float* cols, int max_threads);

}  // namespace edgemoe::cpu
