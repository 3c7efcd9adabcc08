#include "backends/accel/weight_packer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "core/task_gate.h"
#include "src/formats.h"

namespace edgemoe::accel {

namespace {

using edgemoe_hls::fm_t;
using edgemoe_hls::wt_t;
// Host-side quantisation: round to nearest even and saturate (the kernel's own conversions truncate).
using wt_round_t = ap_fixed<wt_t::width, wt_t::iwidth, AP_RND_CONV, AP_SAT>;
using fm_round_t = ap_fixed<fm_t::width, fm_t::iwidth, AP_RND_CONV, AP_SAT>;
constexpr float kMean[3] = {0.485f, 0.456f, 0.406f};
constexpr float kStd[3] = {0.229f, 0.224f, 0.225f};

wt_t to_wt(double v) { return wt_t(wt_round_t(v)); }
fm_t to_fm(double v) { return fm_t(fm_round_t(v)); }

}  // namespace

edgemoe_hls::ModelDims kernel_dims(const ModelConfig& c, bool head_winograd) {
  unsigned mask = 0;
  for (int64_t b : c.moe_blocks) mask |= 1u << b;
  return {int(c.embed_dim), int(c.num_heads), int(c.grid_h), int(c.grid_w), int(c.patch_size), int(c.depth),
          int(c.mlp_hidden), int(c.num_experts), int(c.expert_hidden), int(c.top_k), int(c.tasks.size()), mask,
          head_winograd};
}

namespace {

// Each task's head after the backbone (layout.h: w_head, p_head_*). conv_k's BatchNorm folds into
// it exactly as the cpu backend folds it (s = gamma / sqrt(var + eps); w s; (b - mean) s + beta),
// in double; values outside wt_t's or fm_t's range are refused, not saturated.
void pack_heads(const ModelConfig& c, const ModelWeights& w, PackedModel* out) {
  using namespace edgemoe_hls;
  const ModelDims& m = out->dims;
  const int C = int(c.head_channels), D = int(c.embed_dim);
  auto data = [&](const std::string& key) { return w.get(key).data.data(); };
  const double wt_limit = std::ldexp(1.0, wt_t::iwidth - 1), fm_limit = std::ldexp(1.0, fm_t::iwidth - 1);
  const double lsb = std::ldexp(1.0, -(wt_t::width - wt_t::iwidth));  // wt_t's
  for (size_t t = 0; t < c.tasks.size(); ++t) {
    const std::string& task = c.tasks[t].name;
    auto refuse = [&](const std::string& layer, const char* what, double value, double limit) {
      char text[64];
      std::snprintf(text, sizeof text, "%.4g", value);
      throw std::invalid_argument("the accelerator cannot run this model's head of task '" + task + "': its " + layer + " has a " + what +
                                  " of " + text + ", outside the accelerator's range of +-" +
                                  std::to_string(int(limit)) + " (kernels/src/formats.h); run the heads on the host "
                                  "with heads='host'");
    };
    const float* gamma = data(head_key(task, "norm.weight"));
    const float* beta = data(head_key(task, "norm.bias"));
    for (int d = 0; d < D; ++d) {
      if (!(std::abs(gamma[d]) < fm_limit)) refuse("LayerNorm", "weight", gamma[d], fm_limit);
      if (!(std::abs(beta[d]) < fm_limit)) refuse("LayerNorm", "bias", beta[d], fm_limit);
      out->params[p_head_ln(m, C, int(t)) + d] = to_fm(gamma[d]);
      out->params[p_head_ln(m, C, int(t)) + D + d] = to_fm(beta[d]);
    }
    for (int l = 0; l < kHeadLayers; ++l) {
      const std::string conv = head_key(task, "conv_" + std::to_string(l));
      const int rows = l < 4 ? C : int(c.tasks[t].out_channels), cin = l == 0 ? D : C, K = l < 4 ? 3 : 1;
      const int in = head_in(m, C, l);
      const long matrix = w_head(m, C, int(t), l);
      const bool winograd = head_layer_winograd(m, C, l);
      auto put = [&](int row, int col, wt_t v) {
        set_weight_lane(out->weights[weight_word_index(matrix, in, row, col)], col % kWeightsPerWord, v);
      };
      const float* wv = data(conv + ".weight");
      const float* bv = data(conv + ".bias");
      const std::string bn = head_key(task, "syncbn_fc_" + std::to_string(l));
      for (int o = 0; o < rows; ++o) {
        double scale = 1, bias = bv[o];
        if (l < 4) {
          const double var = data(bn + ".running_var")[o];
          if (!(var + double(kBatchNormEps) > 0))
            throw std::invalid_argument("the accelerator cannot run this model's head of task '" + task + "': its syncbn_fc_" +
                                        std::to_string(l) + ".running_var[" + std::to_string(o) +
                                        "] is not a variance (negative or NaN)");
          scale = data(bn + ".weight")[o] / std::sqrt(var + double(kBatchNormEps));
          bias = (bias - data(bn + ".running_mean")[o]) * scale + data(bn + ".bias")[o];
        }
        const std::string layer = l < 4 ? "conv_" + std::to_string(l) + " (BatchNorm folded in)" : "conv_4";
        if (!(std::abs(bias) < fm_limit)) refuse(layer, "bias", bias, fm_limit);
        out->params[p_head_bias(m, C, int(t), l) + o] = to_fm(bias);
        for (int ci = 0; ci < cin; ++ci) {
          wt_t taps[9];
          for (int k = 0; k < K * K; ++k) {
            const double v = double(wv[(size_t(o) * cin + ci) * K * K + k]) * scale;
            if (!(std::abs(v) < wt_limit)) refuse(layer, "weight", v, wt_limit);
            taps[k] = to_wt(v);
            if (!winograd) put(o, k * cin + ci, taps[k]);  // (ky, kx, channel): window_reader.h
          }
          if (!winograd) continue;
          // Winograd's F(2, 3) (layout.h): four terms per kernel row, from the rounded taps, exactly.
          for (int ky = 0; ky < 3; ++ky)
            for (int j = 0; j < kHeadWinogradTerms; ++j) {
              const long raw = winograd_weight(j, taps[3 * ky].raw(), taps[3 * ky + 1].raw(), taps[3 * ky + 2].raw());
              const double v = double(raw) * lsb;
              if (!(std::abs(v) < wt_limit))
                refuse(layer, "Winograd weight (2 g0, g0 + g1 + g2, g0 - g1 + g2 or 2 g2 of a kernel row)", v, wt_limit);
              put(j * C + o, winograd_column(ky, ci, cin), to_wt(v));
            }
        }
      }
    }
  }
  out->head_channels = C;
}

}  // namespace

PackedModel pack_model(const ModelConfig& c, const ModelWeights& w, bool with_heads, bool head_winograd) {
  using namespace edgemoe_hls;
  PackedModel out;
  out.dims = kernel_dims(c, head_winograd);
  const ModelDims& m = out.dims;
  const int head_channels = with_heads ? int(c.head_channels) : 0;
  out.weights.assign(static_cast<size_t>(model_weights_size(m, head_channels)), weight_word_t{});
  out.params.assign(static_cast<size_t>(model_params_size(m, head_channels)), fm_t(0));
  const int64_t D = c.embed_dim, P = c.patch_size, N = c.num_tokens(), E = c.num_experts, Hm = c.expert_hidden;
  auto data = [&](const std::string& key) { return w.get(key).data.data(); };
  auto put_weight = [&](long matrix, int64_t in, int64_t r, int64_t col, double v) {
    set_weight_lane(out.weights[weight_word_index(matrix, int(in), int(r), int(col))], int(col % kWeightsPerWord), to_wt(v));
  };
  auto put_matrix = [&](long matrix, const float* src, int64_t rows, int64_t in) {  // row-major [rows][in]
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t col = 0; col < in; ++col) put_weight(matrix, in, r, col, src[r * in + col]);
  };
  auto put_vector = [&](long offset, const float* src, int64_t count) {
    for (int64_t i = 0; i < count; ++i) out.params[offset + i] = to_fm(src[i]);
  };

  // Patch embedding on raw pixels p = k/256: x_norm = (k/255 - mean)/std = p * 256/(255 std) - mean/std.
  const float* pw = data("backbone.patch_embed.proj.weight");
  const float* pb = data("backbone.patch_embed.proj.bias");
  for (int64_t d = 0; d < D; ++d) {
    double bias = pb[d];
    for (int64_t ch = 0; ch < 3; ++ch)
      for (int64_t i = 0; i < P * P; ++i) {
        const double wv = pw[(d * 3 + ch) * P * P + i];
        put_weight(w_patch(m), 3 * P * P, d, ch * P * P + i, wv * 256.0 / (255.0 * kStd[ch]));
        bias -= wv * kMean[ch] / kStd[ch];
      }
    out.params[p_patch_bias(m) + d] = to_fm(bias);
  }
  const float* pos = data("backbone.pos_embed");
  const float* cls = data("backbone.cls_token");
  for (int64_t n = 0; n < N; ++n)
    for (int64_t d = 0; d < D; ++d)
      out.params[p_pos(m) + n * D + d] = to_fm(double(pos[n * D + d]) + (n == 0 ? cls[d] : 0.0));

  for (int b = 0; b < int(c.depth); ++b) {
    put_vector(p_ln1(m, b), data(block_key(b, "norm1.weight")), D);
    put_vector(p_ln1(m, b) + D, data(block_key(b, "norm1.bias")), D);
    put_vector(p_ln2(m, b), data(block_key(b, "norm2.weight")), D);
    put_vector(p_ln2(m, b) + D, data(block_key(b, "norm2.bias")), D);
    put_matrix(w_qkv(m, b), data(block_key(b, "attn.qkv.weight")), 3 * D, D);
    put_vector(p_qkv_bias(m, b), data(block_key(b, "attn.qkv.bias")), 3 * D);
    put_matrix(w_proj(m, b), data(block_key(b, "attn.proj.weight")), D, D);
    put_vector(p_proj_bias(m, b), data(block_key(b, "attn.proj.bias")), D);
    if (!c.is_moe_block(b)) {
      put_matrix(w_fc1(m, b), data(block_key(b, "mlp.fc1.weight")), c.mlp_hidden, D);
      put_vector(p_fc1_bias(m, b), data(block_key(b, "mlp.fc1.bias")), c.mlp_hidden);
      put_matrix(w_fc2(m, b), data(block_key(b, "mlp.fc2.weight")), D, c.mlp_hidden);
      put_vector(p_fc2_bias(m, b), data(block_key(b, "mlp.fc2.bias")), D);
      continue;
    }
    for (size_t t = 0; t < c.tasks.size(); ++t) {
      // Router [D(+G), E] used as x . w_gate -> the kernel's [E][D] rows.
      const std::string key = c.gate == GateKind::kMultiGate
                                  ? block_key(b, "mlp.gate." + std::to_string(c.tasks[t].gate_index) + ".w_gate")
                                  : block_key(b, "mlp.gate.w_gate");
      const float* g = data(key);
      for (int64_t e = 0; e < E; ++e)
        for (int64_t d = 0; d < D; ++d) put_weight(w_gate(m, b, int(t)), D, e, d, g[d * E + e]);
      if (c.gate == GateKind::kTaskConditioned)
        put_vector(p_gate_bias(m, b, int(t)), task_gate_logit_bias(w, c, b, int64_t(t)).data(), E);
    }
    const float* w1 = data(block_key(b, "mlp.experts.htoh4.weight"));
    const float* b1 = data(block_key(b, "mlp.experts.htoh4.bias"));
    const float* w2 = data(block_key(b, "mlp.experts.h4toh.weight"));
    const float* b2 = data(block_key(b, "mlp.experts.h4toh.bias"));
    for (int e = 0; e < int(E); ++e) {
      put_matrix(w_expert_fc1(m, b, e), w1 + e * Hm * D, Hm, D);
      put_vector(p_expert_bias1(m, b, e), b1 + e * Hm, Hm);
      put_matrix(w_expert_fc2(m, b, e), w2 + e * D * Hm, D, Hm);
      put_vector(p_expert_bias2(m, b, e), b2 + e * D, D);
    }
  }
  out.attn_scale_raw = int32_t(uint32_t(to_fm(1.0 / std::sqrt(double(c.head_dim()))).range()));
  if (with_heads) pack_heads(c, w, &out);
  return out;
}

PixelClipping quantize_images(const float* images, int64_t count, int64_t plane, std::vector<uint8_t>* pixels) {
  pixels->resize(static_cast<size_t>(count * 3 * plane));
  PixelClipping clipped;
  int64_t non_finite = 0;
  for (int64_t i = 0; i < count * 3; ++i) {
    const int ch = int(i % 3);
    for (int64_t j = 0; j < plane; ++j) {
      const double level = (double(images[i * plane + j]) * kStd[ch] + kMean[ch]) * 255.0;
      if (!std::isfinite(level)) {
        ++non_finite;
        continue;
      }
      const double beyond = level < 0 ? -level : level - 255.0;
      if (beyond > 0.5) {
        ++clipped.values;
        clipped.worst_levels = std::max(clipped.worst_levels, beyond);
      }
      const double k = std::nearbyint(level);
      (*pixels)[i * plane + j] = uint8_t(k < 0 ? 0 : (k > 255 ? 255 : k));
    }
  }
  if (non_finite)
    throw std::invalid_argument("images contain " + std::to_string(non_finite) + " NaN or Inf values");
  return clipped;
}

float fm_to_float(fm_t v) { return float(v.to_double()); }

}  // namespace edgemoe::accel
