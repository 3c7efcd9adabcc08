#include "core/trace.h"

#include <algorithm>
#include <cmath>

namespace edgemoe {

namespace {
std::string block_name(int64_t block, const char* what) { return "block" + std::to_string(block) + "." + what; }
}  // namespace

void TraceRecorder::add(std::string name, std::vector<int64_t> shape, const float* values, bool integer) {
  int64_t count = 1;
  for (int64_t s : shape) count *= s;
  tensors_.push_back({std::move(name), std::move(shape), std::vector<float>(values, values + count), integer});
}

void TraceRecorder::embedding(const float* x) { add("embed", {config_.num_tokens(), config_.embed_dim}, x); }

void TraceRecorder::attention(int64_t block, const float* branch) {
  add(block_name(block, "attn"), {config_.num_tokens(), config_.embed_dim}, branch);
}

void TraceRecorder::mlp(int64_t block, const float* branch) {
  add(block_name(block, "mlp"), {config_.num_tokens(), config_.embed_dim}, branch);
}

void TraceRecorder::routing(int64_t block, const float* probs, const int64_t* experts) {
  const int64_t N = config_.num_tokens(), E = config_.num_experts, k = config_.top_k;
  add(block_name(block, "gate_probs"), {N, E}, probs);
  std::vector<float> picks(static_cast<size_t>(N * k));
  for (size_t i = 0; i < picks.size(); ++i) picks[i] = float(experts[i]);
  add(block_name(block, "experts"), {N, k}, picks.data(), true);
}

void TraceRecorder::tokens_per_expert(int64_t block, const uint32_t* counts) {
  std::vector<float> values(counts, counts + config_.num_experts);
  add(block_name(block, "tokens_per_expert"), {config_.num_experts}, values.data(), true);
}

void TraceRecorder::block_output(int64_t block, const float* x) {
  add(block_name(block, "out"), {config_.num_tokens(), config_.embed_dim}, x);
}

void TraceRecorder::head_norm(const float* chw) { add("head.norm", {config_.embed_dim, config_.grid_h, config_.grid_w}, chw); }

void TraceRecorder::head_stage(int stage, const float* chw, int64_t channels, int64_t height, int64_t width) {
  add("head.stage" + std::to_string(stage), {channels, height, width}, chw);
}

void TraceRecorder::head_logits(const float* chw, int64_t height, int64_t width) {
  add("head.logits", {config_.tasks[task_id_].out_channels, height, width}, chw);
}

void TraceRecorder::output(const float* chw) {
  add("output", {config_.tasks[task_id_].out_channels, config_.image_h(), config_.image_w()}, chw);
}

void pick_experts(const float* probs, int64_t experts, int64_t top_k, int64_t* picks) {
  for (int64_t j = 0; j < top_k; ++j) {
    // A NaN probability never wins, and a row of NaNs still picks k distinct experts.
    int64_t best = -1;
    for (int64_t e = 0; e < experts; ++e) {
      if (std::find(picks, picks + j, e) != picks + j) continue;  // k is small: a scan of the taken
      if (best < 0 || probs[e] > probs[best] || (std::isnan(probs[best]) && !std::isnan(probs[e]))) best = e;
    }
    picks[j] = best;
  }
}

}  // namespace edgemoe
