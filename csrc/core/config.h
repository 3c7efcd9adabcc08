// Hyper-parameters of one M3ViT model: everything a backend needs besides the weights.
// Filled from the checkpoint (and user overrides) on the Python side, validated here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace edgemoe {

enum class GateKind {
  kMultiGate,        // one router w_gate [D, E] per task (M3ViT README recipe)
  kTaskConditioned,  // shared w_gate [D+G, E] on [token | task_feat(one-hot)]
  kShared,           // one router for every task (single-task checkpoints)
};

struct TaskSpec {
  std::string name;     // semseg, human_parts, sal, normals, edge, depth
  int64_t out_channels;
  int64_t gate_index;   // router index / one-hot position (M3ViT's fixed task order)
};

struct ModelConfig {
  int64_t embed_dim = 0;
  int64_t depth = 0;
  int64_t num_heads = 0;
  int64_t patch_size = 16;
  int64_t in_chans = 3;
  int64_t grid_h = 0, grid_w = 0;      // token grid; image is (grid_h*patch) x (grid_w*patch)
  int64_t mlp_hidden = 0;              // dense MLP hidden width
  std::vector<int64_t> moe_blocks;     // block indices whose MLP is a mixture of experts
  int64_t num_experts = 0;
  int64_t expert_hidden = 0;
  int64_t top_k = 0;
  GateKind gate = GateKind::kMultiGate;
  int64_t gate_task_dim = 0;           // G for kTaskConditioned
  int64_t gate_num_tasks = 0;          // routers (multi-gate) or one-hot width (task-conditioned)
  int64_t head_channels = 256;
  std::vector<TaskSpec> tasks;

  int64_t image_h() const { return grid_h * patch_size; }
  int64_t image_w() const { return grid_w * patch_size; }
  int64_t num_tokens() const { return 1 + grid_h * grid_w; }  // cls + patches
  int64_t head_dim() const { return embed_dim / num_heads; }
  bool is_moe_block(int64_t block) const;
  int64_t task_index(const std::string& name) const;  // -1 if absent

  // Throws std::invalid_argument naming the first inconsistent field.
  void validate() const;
};

constexpr float kBackboneLayerNormEps = 1e-6f;
constexpr float kBatchNormEps = 1e-5f;

}  // namespace edgemoe
