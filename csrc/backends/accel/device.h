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

// The kernel's arguments by position in the interface list.
enum class KernelArg : int {
#define EDGEMOE_ARG_INDEX(name, type) name,
  EDGEMOE_KERNEL_INTERFACE(EDGEMOE_ARG_INDEX, EDGEMOE_ARG_INDEX)
#undef EDGEMOE_ARG_INDEX
};

class Device {
 public:
  virtual ~Device() = default;
  virtual std::string name() const = 0;
  // Where the kernel lives, for messages ("the emulated kernel", "xclbin '...' on XRT device 0").
  virtual std::string origin() const = 0;
  // False when the device only goes through the motions (XRT's noop shim): nothing it returns
  // was computed.
  virtual bool executes() const { return true; }
  // A buffer for kernel argument `arg`, in the memory the argument's port reaches.
  virtual BufferId allocate(size_t bytes, KernelArg arg) = 0;
  virtual void release(BufferId buffer) = 0;
  virtual void write(BufferId buffer, const void* data, size_t bytes, size_t offset = 0) = 0;
  virtual void read(BufferId buffer, void* data, size_t bytes, size_t offset = 0) = 0;
  // Buffers left at -1 are not passed (the query stage reads none).
  virtual void run(const KernelArgs& args) = 0;
  // The most bytes one buffer of `arg` can hold: the memory bank its port reaches (an HBM
  // pseudo-channel is 256 MB). The host splits a batch into runs that fit.
  virtual uint64_t capacity(KernelArg) const { return UINT64_MAX; }
  // The memory bank `arg` is connected to (arguments with the same bank share its capacity); -1:
  // unknown or unbounded.
  virtual int bank(KernelArg) const { return -1; }
};

}  // namespace edgemoe::accel
