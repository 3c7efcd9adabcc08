#include "core/model.h"

#include "core/isa.h"

#include <algorithm>
#include <cmath>
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
  // Far beyond any ViT, and small enough that no size product below overflows int64.
  constexpr int64_t kMaxWidth = 1 << 20, kMaxDepth = 4096, kMaxGrid = 1 << 12, kMaxChannels = 1 << 16;
  for (int64_t v : {embed_dim, mlp_hidden, expert_hidden, gate_task_dim})
    require(v >= 0 && v <= kMaxWidth, "widths must be in [0, " + std::to_string(kMaxWidth) + "]");
  require(depth <= kMaxDepth, "depth must be <= " + std::to_string(kMaxDepth));
  require(grid_h <= kMaxGrid && grid_w <= kMaxGrid, "token grid sides must be <= " + std::to_string(kMaxGrid));
  require(patch_size <= 64, "patch_size must be <= 64");
  require(num_experts >= 0 && num_experts <= kMaxChannels && head_channels > 0 && head_channels <= kMaxChannels &&
              gate_num_tasks >= 0 && gate_num_tasks <= 64,
          "expert, head-channel and gate-task counts must be in range");
  for (const TaskSpec& t : tasks)
    require(t.out_channels <= kMaxChannels, "task " + t.name + " has too many output channels");
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
  require(!tasks.empty() && tasks.size() <= 64, "a model has 1 to 64 task heads");
  for (const TaskSpec& t : tasks) {
    require(t.out_channels > 0, "task " + t.name + " has no output channels");
    if (gate != GateKind::kShared && !moe_blocks.empty())
      require(t.gate_index >= 0 && t.gate_index < gate_num_tasks,
              "task " + t.name + " gate index out of range");
  }
}

namespace {
// Finite images with huge values overflow float32 inside the network; the heads' ReLUs would turn the
// resulting NaNs into plausible-looking numbers, so the residual stream is checked before them.
void require_finite_backbone(const float* x, size_t count) {
  bool finite = true;  // one streaming pass, cheaper than waking threads (backends/cpu/threading.h)
  for (size_t i = 0; i < count; ++i) finite &= std::isfinite(x[i]);
  if (!finite)
    throw std::invalid_argument("images: the backbone overflowed float32 (non-finite activations); M3ViT "
                                "expects normalised images (edgemoe.preprocess)");
}
}  // namespace

Model::Model(ModelConfig config, std::shared_ptr<const ModelWeights> weights,
             const std::string& backend, int num_threads, BackendOptions options)
    : config_(std::move(config)), weights_(std::move(weights)), num_threads_(std::max(1, num_threads)),
      options_(std::move(options)) {
  config_.validate();
  weights_->validate(config_);
  if (!isa::request_error().empty()) throw std::invalid_argument(isa::request_error());
  backend_ = make_backend(backend, config_, weights_, num_threads_, options_);
}

std::string Model::backend_name() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return backend_->name();
}

void Model::set_backend(const std::string& backend, const BackendOptions& options) {
  std::lock_guard<std::mutex> lock(mutex_);
  backend_ = make_backend(backend, config_, weights_, num_threads_, options);
  options_ = options;
}

void Model::set_num_threads(int num_threads) {
  std::lock_guard<std::mutex> lock(mutex_);
  const int threads = std::max(1, num_threads);
  backend_ = make_backend(backend_->name(), config_, weights_, threads, options_);
  num_threads_ = threads;
}

std::vector<std::string> Model::forward(const float* images, int64_t batch, const std::vector<int64_t>& task_ids,
                                       const std::vector<float*>& outputs) {
  if (task_ids.size() != outputs.size()) throw std::invalid_argument("one output per task");
  std::lock_guard<std::mutex> lock(mutex_);
  if (backend_->forward(images, batch, task_ids, outputs)) return backend_->input_warnings();
  const size_t feature_size = static_cast<size_t>(batch * config_.num_tokens() * config_.embed_dim);
  std::vector<std::vector<float>> features(task_ids.size(), std::vector<float>(feature_size));
  std::vector<float*> feature_ptrs;
  for (auto& f : features) feature_ptrs.push_back(f.data());
  backend_->backbone(images, batch, task_ids, feature_ptrs);
  for (const auto& f : features) require_finite_backbone(f.data(), f.size());
  for (size_t t = 0; t < task_ids.size(); ++t) backend_->head(task_ids[t], feature_ptrs[t], batch, outputs[t]);
  return backend_->input_warnings();
}

std::vector<std::string> Model::features(const float* images, int64_t batch, int64_t task_id, float* out) {
  std::lock_guard<std::mutex> lock(mutex_);
  backend_->backbone(images, batch, {task_id}, {out});
  require_finite_backbone(out, static_cast<size_t>(batch * config_.num_tokens() * config_.embed_dim));
  return backend_->input_warnings();
}

std::vector<std::string> Model::trace(const float* images, int64_t batch, int64_t task_id,
                                     std::vector<TraceTensor>* out) {
  if (task_id < 0 || task_id >= static_cast<int64_t>(config_.tasks.size()))
    throw std::invalid_argument("task index out of range");
  std::lock_guard<std::mutex> lock(mutex_);
  const int64_t image_size = 3 * config_.image_h() * config_.image_w();
  std::vector<std::string> warnings;
  out->clear();
  for (int64_t i = 0; i < batch; ++i) {
    TraceRecorder recorder(config_, task_id);
    backend_->trace(images + i * image_size, task_id, &recorder);
    for (const std::string& w : recorder.warnings())
      if (std::find(warnings.begin(), warnings.end(), w) == warnings.end()) warnings.push_back(w);
    const std::vector<TraceTensor>& image = recorder.tensors();
    if (i == 0) {
      for (const TraceTensor& t : image) {
        TraceTensor batched = t;
        batched.shape.insert(batched.shape.begin(), batch);
        batched.values.reserve(t.values.size() * static_cast<size_t>(batch));
        out->push_back(std::move(batched));
      }
      continue;
    }
    if (image.size() != out->size()) throw std::logic_error("trace: images recorded different entries");
    for (size_t k = 0; k < image.size(); ++k) {
      if (image[k].name != (*out)[k].name) throw std::logic_error("trace: images recorded different entries");
      (*out)[k].values.insert((*out)[k].values.end(), image[k].values.begin(), image[k].values.end());
    }
  }
  return warnings;
}

}  // namespace edgemoe
