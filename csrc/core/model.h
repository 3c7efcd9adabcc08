// A loaded M3ViT: config + weights + the backend that runs it.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/config.h"
#include "core/weights.h"

namespace edgemoe {

class Model {
 public:
  Model(ModelConfig config, std::shared_ptr<const ModelWeights> weights, const std::string& backend,
        int num_threads, BackendOptions options = {});

  const ModelConfig& config() const { return config_; }
  std::shared_ptr<const ModelWeights> weights() const { return weights_; }
  std::string backend_name() const;
  int num_threads() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return num_threads_;
  }
  // Replaces the backend; the current one stays if the new one cannot be made.
  void set_backend(const std::string& backend, const BackendOptions& options);
  void set_num_threads(int num_threads);

  // images [batch, 3, H, W]; outputs[t] receives [batch, C_t, H, W] for task_ids[t].
  // Safe to call from several threads: calls on one model are serialised. Returns the backend's
  // input warnings for this call.
  std::vector<std::string> forward(const float* images, int64_t batch, const std::vector<int64_t>& task_ids,
               const std::vector<float*>& outputs);

  bool moe_trace(int64_t task_id, std::vector<uint32_t>* trace) {
    std::lock_guard<std::mutex> lock(mutex_);
    return backend_->moe_trace(task_id, trace);
  }

  // One task's forward pass with its intermediates (core/trace.h), image by image; every tensor's
  // shape gets the batch in front. Returns the backend's input warnings (each once).
  std::vector<std::string> trace(const float* images, int64_t batch, int64_t task_id, std::vector<TraceTensor>* out);

  // The backbone alone (last block output incl. cls), for accuracy comparisons.
  std::vector<std::string> features(const float* images, int64_t batch, int64_t task_id, float* out);

 private:
  ModelConfig config_;
  std::shared_ptr<const ModelWeights> weights_;
  std::unique_ptr<Backend> backend_;
  int num_threads_;
  BackendOptions options_;
  mutable std::mutex mutex_;
};

}  // namespace edgemoe
