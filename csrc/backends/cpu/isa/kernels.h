// The CPU backend's hand-written kernels, one table per instruction-set path (core/isa.h). Each
// path is the same sources (this folder) compiled with its own -m flags in its own namespace; the
// kernels work on a range of rows so that the caller owns the threading.
#pragma once

#include <cstdint>

namespace edgemoe::cpu {

// One (image, head) pair of fused attention (attention.h): K transposed and V packed per head.
struct AttentionArgs {
  const float* qkv;  // [batch*N, 3D]
  const float* kt;   // [batch*heads, hd, n_pad]
  const float* v;    // [batch*heads, N, hd]
  float* out;        // [batch*N, D]
  int64_t tokens, n_pad, head_dim, dim, heads;
  float scale;
};

struct IsaKernels {
  const char* name;
  int64_t attention_col_tile;  // score columns per register tile: n_pad is a multiple of it
  int attention_rows;          // query rows per block
  // Query-row blocks [first, last) of (image, head) pair bh; `scores` holds rows x n_pad floats.
  void (*attention_blocks)(const AttentionArgs& a, int64_t bh, int64_t first, int64_t last, float* scores);
  // Rows [first, last) of y = LayerNorm(x) * w + b.
  void (*layer_norm)(const float* x, int64_t x_stride, int64_t first, int64_t last, int64_t dim, const float* w,
                     const float* b, float eps, float* y, int64_t y_stride);
  // Output rows [first, last) of the flattened (slice, output row) range of upsample2x_hwc.
  void (*upsample_hwc_rows)(const float* src, float* dst, int64_t first, int64_t last, int64_t H, int64_t W,
                            int64_t C);
  // Output planes rows [first, last) of the flattened (image, channel, output row) range of
  // upsample2x_blocked_to_nchw.
  void (*upsample_blocked_rows)(const float* src, float* dst, int64_t first, int64_t last, int64_t channels,
                                int64_t H, int64_t W, int64_t block);
};

// The active path's table (core/isa.h).
const IsaKernels& isa_kernels();
// A compiled path's table by name, or nullptr (tests compare paths side by side).
const IsaKernels* isa_kernels(const char* name);

}  // namespace edgemoe::cpu
