// What the host needs of an accelerator: allocate, write, read, run. The emulation device calls
// the kernel compiled into this library; an XRT device (fpga) drives the synthesised one. Both
// get exactly the same buffers and scalars.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace edgemoe::accel {

using BufferId = int;

// Arguments of the kernel m3vit_backbone (kernels/src/m3vit_backbone.h), buffers by id.
struct KernelArgs {
  BufferId images, weights, params, x, xn, qkv, hidden, scores, softmax_info, trace;
  int32_t num_images, dim, heads, grid_h, grid_w, patch, depth, mlp_hidden, experts, expert_hidden, top_k,
      num_tasks;
  uint32_t moe_mask;
  int32_t task;
  int32_t attn_scale_raw;  // fm_t bits
  int32_t embed, first_stage, last_stage;
};

class Device {
 public:
  virtual ~Device() = default;
  virtual std::string name() const = 0;
  virtual BufferId allocate(size_t bytes) = 0;
  virtual void write(BufferId buffer, const void* data, size_t bytes, size_t offset = 0) = 0;
  virtual void read(BufferId buffer, void* data, size_t bytes, size_t offset = 0) = 0;
  virtual void run(const KernelArgs& args) = 0;
};

}  // namespace edgemoe::accel
