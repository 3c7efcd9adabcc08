// The one interface every backend implements (cpu, emu, fpga ...).
// A backend owns whatever it derives from the weights (packed layouts, quantised copies, device
// buffers) and runs the two halves of a task-gated forward pass.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/trace.h"
#include "core/weights.h"

namespace edgemoe {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;

  // images: [batch, 3, H, W] contiguous, normalised. For each task_ids[t], writes the last block's
  // output [batch, num_tokens, D] to features[t]. Work shared by all tasks (everything before the
  // first task-gated layer) is the backend's to share.
  virtual void backbone(const float* images, int64_t batch, const std::vector<int64_t>& task_ids,
                        const std::vector<float*>& features) = 0;

  // features: [batch, num_tokens, D] -> out: [batch, out_channels, H, W] (raw head output).
  virtual void head(int64_t task_id, const float* features, int64_t batch, float* out) = 0;

  // The whole forward pass (out[t]: [batch, out_channels, H, W] for task_ids[t]) when the backend runs
  // backbone and heads together (an accelerator with heads on the device); false: the caller runs
  // backbone() and head().
  virtual bool forward(const float* /*images*/, int64_t /*batch*/, const std::vector<int64_t>& /*task_ids*/,
                       const std::vector<float*>& /*out*/) {
    return false;
  }

  // One image's forward pass for one task with every intermediate core/trace.h names recorded, in
  // forward order, each computed the way this backend computes it. A diagnostic: speed is secondary.
  virtual void trace(const float* image, int64_t task_id, TraceRecorder* recorder) = 0;

  // What the MoE hardware did in the last backbone() for a task, for backends that record it:
  // per image, per MoE layer, [tokens | fc1 fetches | fc2 fetches] per expert. False if not recorded.
  virtual bool moe_trace(int64_t /*task_id*/, std::vector<uint32_t>* /*trace*/) const { return false; }

  // What the last backbone() had to change in its input to run it (e.g. values outside the 8-bit
  // pixel range an accelerator reads, clipped), one sentence each; empty when it ran as given.
  virtual std::vector<std::string> input_warnings() const { return {}; }
};

struct BackendInfo {
  std::string name;
  bool available;
  std::string reason;  // why not, when unavailable; otherwise what it needs at run time, if anything
};

// Options of the backends that drive a device (fpga). Backends without a device ignore them; the
// Python layer refuses them for those.
struct BackendOptions {
  std::string xclbin;       // fpga: the .xclbin with m3vit_backbone
  int device = 0;           // fpga: XRT device index
  double timeout_s = 300;   // fpga: longest a single kernel run may take
  bool heads_on_host = false;  // emu, fpga: the task heads on the CPU backend, not the device
  bool bf16 = false;           // cpu: GEMMs, convolutions and attention products on bf16 inputs, fp32 sums
};

// A device run that did not finish in time (Python: TimeoutError).
class DeviceTimeout : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Factory over the backends compiled into this build (backend_registry.cpp).
std::unique_ptr<Backend> make_backend(const std::string& name, const ModelConfig& config,
                                      std::shared_ptr<const ModelWeights> weights, int num_threads,
                                      const BackendOptions& options = {});
std::vector<BackendInfo> list_backends();
// The devices a backend can run on, found by probing the system (only when asked: e.g. XRT
// devices for fpga). Empty for backends without devices; std::runtime_error if probing fails.
std::vector<std::string> list_devices(const std::string& backend);

}  // namespace edgemoe
