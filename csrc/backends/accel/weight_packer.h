// Quantise a checkpoint into the kernel's DDR layout (kernels/src/layout.h), once per model:
// matrices to wt_t with round-to-nearest and saturation, vectors to fm_t; input normalisation
// folded into the patch weights, cls token into pos_embed row 0, the task-conditioned gate
// into per-task logit offsets; with the heads, each task's BatchNorms folded into its convolutions
// (as the cpu backend folds them) and the 3x3 kernels reordered to (ky, kx, channel) columns.
#pragma once

#include <cstdint>
#include <vector>

#include "core/config.h"
#include "core/weights.h"
#include "src/formats.h"
#include "src/layout.h"

namespace edgemoe::accel {

struct PackedModel {
  edgemoe_hls::ModelDims dims;
  // The kernel's own types: on the host they have exactly the DDR byte layout.
  std::vector<edgemoe_hls::weight_word_t> weights;  // 28 packed weights per 64-byte word (layout.h)
  std::vector<edgemoe_hls::fm_t> params;
  int32_t attn_scale_raw;
  int head_channels = 0;  // the heads packed after the backbone (0: none)
};

// head_winograd: the build runs the heads' conv_1..3 as Winograd's F(2, 3) (its build record says).
edgemoe_hls::ModelDims kernel_dims(const ModelConfig& config, bool head_winograd);
// The model must fit the kernel build first (check_fits_build, kernel_build.h); with_heads: its heads
// too (heads_unfit_reason), packed as the build runs them (head_winograd). std::invalid_argument when
// a folded head weight or bias, or a Winograd weight made of them, lies outside what the formats
// hold, naming the task and layer.
PackedModel pack_model(const ModelConfig& config, const ModelWeights& weights, bool with_heads, bool head_winograd);

// What quantize_images had to clip: values more than half a pixel level outside [0, 255].
struct PixelClipping {
  int64_t values = 0;
  double worst_levels = 0;  // furthest distance beyond the range, in pixel levels
};

// Normalised float images -> the kernel's 8-bit pixels (k/256 holds pixel value k). Throws
// std::invalid_argument on NaN or Inf, which no pixel represents.
PixelClipping quantize_images(const float* images, int64_t count, int64_t plane, std::vector<uint8_t>* pixels);
float fm_to_float(edgemoe_hls::fm_t v);

}  // namespace edgemoe::accel
