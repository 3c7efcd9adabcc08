// A backend that runs M3ViT on the accelerator through a Device (emulated or real): the backbone
// and, by default, each task's head in the same kernel call (heads_on_device; otherwise the heads
// run on the CPU backend). Weights are packed once; buffers are sized per batch.
#pragma once

#include <memory>
#include <vector>

#include "backends/accel/device.h"
#include "backends/accel/kernel_build.h"
#include "backends/accel/weight_packer.h"
#include "backends/cpu/cpu_backend.h"
#include "core/backend.h"

namespace edgemoe::accel {

class AccelBackend : public Backend {
 public:
  AccelBackend(std::string name, std::unique_ptr<Device> device, const ModelConfig& config,
               std::shared_ptr<const ModelWeights> weights, int num_threads, bool heads_on_device);
  std::string name() const override { return name_; }
  void backbone(const float* images, int64_t batch, const std::vector<int64_t>& task_ids,
                const std::vector<float*>& features) override;
  void head(int64_t task_id, const float* features, int64_t batch, float* out) override;
  bool forward(const float* images, int64_t batch, const std::vector<int64_t>& task_ids,
               const std::vector<float*>& out) override;
  bool moe_trace(int64_t task_id, std::vector<uint32_t>* trace) const override;
  // Stage by stage through the kernel's stage range, reading x back after each half-block; the MoE
  // routing is the kernel's gate replayed on the host (gate_token) over the xn the device wrote,
  // with the device's own token counts.
  void trace(const float* image, int64_t task_id, TraceRecorder* recorder) override;
  std::vector<std::string> input_warnings() const override { return input_warnings_; }

 private:
  void plan_runs();  // images per run, from the banks' capacities; refuses a model whose buffers cannot fit
  void upload_weights();
  void ensure_buffers(int64_t batch);
  // head_stages > 0: then the task's head, that many of its stages (ledger.h: 6 is all).
  void run(int64_t batch, int64_t task_id, bool embed, int first_stage, int last_stage, int head_stages = 0);
  std::vector<edgemoe_hls::fm_t> read_x(int64_t batch);  // the residual stream as the device holds it
  void read_features(int64_t batch, float* out);
  std::vector<uint8_t> quantize(const float* images, int64_t batch, std::vector<std::string>* warnings) const;
  void record_routing(int block, int64_t task_id, TraceRecorder* recorder);
  // One kernel call's worth of images (at most images_per_run_); traces are appended. With
  // `heads`, each task's head runs in its call and out[t] receives the outputs; else out[t] the
  // backbone's features.
  void backbone_chunk(const uint8_t* pixels, int64_t batch, const std::vector<int64_t>& task_ids,
                      const std::vector<float*>& out, bool heads, std::vector<std::vector<uint32_t>>* traces);
  // The whole call: chunks of images_per_run_ images.
  void run_batch(const float* images, int64_t batch, const std::vector<int64_t>& task_ids,
                 const std::vector<float*>& out, bool heads);
  void read_head_outputs(int64_t batch, int64_t task_id, float* out);
  // Elements qkv and hidden hold for the heads' maps (0 with heads on the host): the largest map,
  // its planes padded to whole words.
  uint64_t head_map_elements() const;
  int64_t padded_head_channels(int layer) const;  // a layer's output channels as its planes store them
  // A head map the kernel left in `buffer` ([slices] planes of H x W x C / slices, layout.h) as CHW.
  std::vector<float> read_map(BufferId buffer, int64_t channels, int64_t height, int64_t width, int slices);
  void trace_device_head(int64_t task_id, TraceRecorder* recorder);

  std::string name_;
  std::unique_ptr<Device> device_;
  KernelBuild build_;  // what the device's kernel said it was compiled with
  ModelConfig config_;
  bool heads_on_device_;  // before packed_: the packer reads it
  PackedModel packed_;
  cpu::CpuBackend heads_;
  KernelArgs args_{};
  int64_t buffer_batch_ = 0;
  int64_t images_per_run_ = 1;  // the build's max_images, or fewer where a bank would overflow
  std::vector<std::vector<uint32_t>> traces_;  // last trace per task
  std::vector<std::string> input_warnings_;     // of the last backbone()
};

}  // namespace edgemoe::accel
