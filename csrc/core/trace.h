// Named intermediates of one task's forward pass (Model::trace, edgemoe.Model.trace): the same
// names, shapes and forward order on every backend, so two backends' traces compare entry by entry
// (edgemoe.compare). A backend records one image at a time, in forward order:
//   embed                      [N, D]      patch embedding + cls token + position embedding
//   block{b}.attn              [N, D]      block b's attention branch: proj(attention(norm1(x)))
//   block{b}.gate_probs        [N, E]      MoE blocks: the gate's softmax over all experts
//   block{b}.experts           [N, k]      MoE blocks: chosen experts, best first (ties: lower index)
//   block{b}.tokens_per_expert [E]         MoE blocks: tokens the layer routed to each expert
//   block{b}.mlp               [N, D]      its MLP / MoE branch (what the block adds after attention)
//   block{b}.out               [N, D]      the residual stream after block b
// The branches are what each layer adds to the residual stream: an error in one layer's weights is
// as large in its branch as it is, while the stream, dominated by what came before, hides it.
//   head.norm                  [D, gh, gw] the head's LayerNorm of the patch tokens (cls dropped)
//   head.stage{i}, i < 3       [C, ., .]   conv_i + BatchNorm + ReLU, upsampled x2
//   head.stage3                [C, 8gh, 8gw] conv_3 + BatchNorm + ReLU
//   head.logits                [out, 8gh, 8gw] conv_4
//   output                     [out, H, W] the task's output (logits upsampled x2)
// N = 1 + gh * gw tokens (cls first), E experts, k = top_k, C head channels.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/config.h"

namespace edgemoe {

struct TraceTensor {
  std::string name;
  std::vector<int64_t> shape;  // of one image; Model::trace prepends the batch
  std::vector<float> values;
  bool integer = false;        // expert indices and token counts (exact in float below 2^24)
};

class TraceRecorder {
 public:
  TraceRecorder(const ModelConfig& config, int64_t task_id) : config_(config), task_id_(task_id) {}

  void embedding(const float* x);
  void attention(int64_t block, const float* branch);
  void mlp(int64_t block, const float* branch);
  // probs [N, E]; experts [N, k] in pick order.
  void routing(int64_t block, const float* probs, const int64_t* experts);
  void tokens_per_expert(int64_t block, const uint32_t* counts);
  void block_output(int64_t block, const float* x);
  void head_norm(const float* chw);
  void head_stage(int stage, const float* chw, int64_t channels, int64_t height, int64_t width);
  void head_logits(const float* chw, int64_t height, int64_t width);
  void output(const float* chw);

  // What the backend had to change in the image to run it (as Backend::input_warnings, but of the
  // trace: a trace leaves the backend's last-forward state alone).
  void warn(std::string note) { warnings_.push_back(std::move(note)); }

  const std::vector<TraceTensor>& tensors() const { return tensors_; }
  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  void add(std::string name, std::vector<int64_t> shape, const float* values, bool integer = false);

  const ModelConfig& config_;
  int64_t task_id_;
  std::vector<TraceTensor> tensors_;
  std::vector<std::string> warnings_;
};

// Expert choices of one token from its gate probabilities, as every backend's router picks them:
// k passes of arg-max over the not yet taken experts, the lower index winning ties.
void pick_experts(const float* probs, int64_t experts, int64_t top_k, int64_t* picks);

}  // namespace edgemoe
