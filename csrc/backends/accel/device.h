// What the host needs of an accelerator: allocate, write, read, run. The emulation device calls
// the kernel compiled into this library; an XRT device (fpga) drives the synthesised one. Both
// get exactly the same buffers and scalars.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "src/kernel_interface.h"

namespace edgemoe::accel {

using BufferId = int;

// Arguments of the kernel m3vit_backbone, generated from its interface list
// (kernels/src/kernel_interface.h): a buffer id per m_axi pointer, and per scalar the 32 bits its
// s_axilite register receives (fixed-point scalars as their raw bits).
struct KernelArgs {
#define EDGEMOE_HOST_BUFFER(name, type) BufferId name = -1;
#define EDGEMOE_HOST_SCALAR(name, type) uint32_t name = 0;
  EDGEMOE_KERNEL_INTERFACE(EDGEMOE_HOST_BUFFER, EDGEMOE_HOST_SCALAR)
#undef EDGEMOE_HOST_BUFFER
#undef EDGEMOE_HOST_SCALAR
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
