#include "core/model.h"

#include <algorithm>
#include <stdexcept>

namespace edgemoe {

bool ModelConfig::is_moe_block(int64_t block) const {
  return std::find(moe_blocks.begin(), moe_blocks.end(), block) != moe_blocks.end();
}

int64_t ModelConfig::task_index(const std::string& name) const {
  for (size_t i = 0; i < tasks.size(); ++i)
    if (tasks[i].name == name) return static_cast<int64_t>(i);
  return -1;
}

void ModelConfig::validate() const {
  auto require = [](bool ok, const std::string& what) {
    if (!ok) throw std::invalid_argument("invalid model config: " + what);
  };
  require(embed_dim > 0 && depth > 0 && num_heads > 0, "embed_dim, depth and num_heads must be > 0");
  require(embed_dim % num_heads == 0, "embed_dim " + std::to_string(embed_dim) +
                                          " is not divisible by num_heads " + std::to_string(num_heads));
  require(patch_size > 0 && grid_h > 0 && grid_w > 0, "patch_size and token grid must be > 0");
  require(in_chans == 3, "in_chans must be 3");
  require(mlp_hidden > 0 || moe_blocks.size() == static_cast<size_t>(depth), "mlp_hidden must be > 0");
  for (int64_t b : moe_blocks) require(b >= 0 && b < depth, "MoE block index out of range");
  if (!moe_blocks.empty()) {
    require(num_experts > 0 && expert_hidden > 0, "num_experts and expert_hidden must be > 0");
    require(top_k >= 1 && top_k <= num_experts,
            "top_k " + std::to_string(top_k) + " must be in [1, num_experts=" +
                std::to_string(num_experts) + "]");
    if (gate == GateKind::kTaskConditioned) require(gate_task_dim > 0, "gate_task_dim must be > 0");
  }
  require(!tasks.empty(), "no task heads");
  for (const TaskSpec& t : tasks) {
    require(t.out_channels > 0, "task " + t.name + " has no output channels");
    if (gate != GateKind::kShared && !moe_blocks.empty())
      require(t.gate_index >= 0 && t.gate_index < gate_num_tasks,
              "task " + t.name + " gate index out of range");
  }
}

Model::Model(ModelConfig config, std::shared_ptr<const ModelWeights> weights,
             const std::string& backend, int num_threads)
    : config_(std::move(config)), weights_(std::move(weights)), num_threads_(std::max(1, num_threads)) {
  config_.validate();
  weights_->validate(config_);
  backend_ = make_backend(backend, config_, weights_, num_threads_);
}

void Model::set_backend(const std::string& backend) {
  std::lock_guard<std::mutex> lock(mutex_);
  backend_ = make_backend(backend, config_, weights_, num_threads_);
}

void Model::set_num_threads(int num_threads) {
  std::lock_guard<std::mutex> lock(mutex_);
  num_threads_ = std::max(1, num_threads);
  backend_ = make_backend(backend_->name(), config_, weights_, num_threads_);
}

void Model::forward(const float* images, int64_t batch, const std::vector<int64_t>& task_ids,
                    const std::vector<float*>& outputs) {
  if (task_ids.size() != outputs.size()) throw std::invalid_argument("one output per task");
  std::lock_guard<std::mutex> lock(mutex_);
  const size_t feature_size = static_cast<size_t>(batch * config_.num_tokens() * config_.embed_dim);
  std::vector<std::vector<float>> features(task_ids.size(), std::vector<float>(feature_size));
  std::vector<float*> feature_ptrs;
  for (auto& f : features) feature_ptrs.push_back(f.data());
  backend_->backbone(images, batch, task_ids, feature_ptrs);
  for (size_t t = 0; t < task_ids.size(); ++t) backend_->head(task_ids[t], feature_ptrs[t], batch, outputs[t]);
}

void Model::features(const float* images, int64_t batch, int64_t task_id, float* out) {
  std::lock_guard<std::mutex> lock(mutex_);
  backend_->backbone(images, batch, {task_id}, {out});
}

}  // namespace edgemoe
