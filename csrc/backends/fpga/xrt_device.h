// The accelerator on a Xilinx card (or the ZCU102's programmable logic) through XRT's native API:
// the kernel m3vit_backbone of a loaded .xclbin, its buffers allocated in the banks its ports reach.
#pragma once

#include <xrt/xrt_bo.h>
#include <xrt/xrt_device.h>
#include <xrt/xrt_kernel.h>

#include <memory>
#include <string>
#include <vector>

#include "backends/accel/device.h"
#include "core/backend.h"

namespace edgemoe::fpga {

class XrtDevice : public accel::Device {
 public:
  // Opens XRT device `options.device`, checks and loads `options.xclbin`, and binds m3vit_backbone.
  // std::invalid_argument: a bad option or an xclbin that is not one for this build;
  // std::runtime_error: no usable XRT runtime or device (with what to do about it).
  explicit XrtDevice(const BackendOptions& options);
  ~XrtDevice() override;

  std::string name() const override { return "fpga"; }
  std::string origin() const override { return origin_; }
  bool executes() const override { return !noop_; }
  accel::BufferId allocate(size_t bytes, accel::KernelArg arg) override;
  void release(accel::BufferId buffer) override;
  void write(accel::BufferId buffer, const void* data, size_t bytes, size_t offset) override;
  void read(accel::BufferId buffer, void* data, size_t bytes, size_t offset) override;
  // Waits at most the configured timeout: DeviceTimeout after stopping the run, or
  // std::runtime_error if it could not be stopped (the device is then refused until reloaded).
  void run(const accel::KernelArgs& args) override;

  // The memory group (bank) XRT allocated a buffer in; for tests of the binding.
  int memory_group(accel::BufferId buffer) const;
  // The memory group of a kernel argument, as the xclbin's connectivity says.
  int argument_group(accel::KernelArg arg) const;
  // The size of the memory bank (group) each buffer argument is connected to.
  uint64_t capacity(accel::KernelArg arg) const override;
  int bank(accel::KernelArg arg) const override;
  // The register map XRT built for the last run (the payload of its ERT start command, one word per
  // 4 bytes of the s_axilite map), and a buffer's device address: for tests of the binding.
  const std::vector<uint32_t>& last_register_map() const { return last_register_map_; }
  uint64_t device_address(accel::BufferId buffer) const;

 private:
  xrt::bo& bo(accel::BufferId buffer, size_t bytes, size_t offset);
  void require_usable() const;

  std::string origin_;
  bool noop_ = false;
  unsigned timeout_ms_;
  xrt::device device_;
  xrt::kernel kernel_;
  std::vector<xrt::bo> buffers_;  // by BufferId; released ones are empty handles
  std::vector<size_t> sizes_;
  std::string unusable_;          // why the device may not be used again, after a stuck run
  std::vector<xrt::run> stuck_runs_;
  std::vector<uint32_t> last_register_map_;
  std::vector<uint64_t> capacity_;  // by argument index; UINT64_MAX for scalars
  std::vector<int> bank_;           // by argument index: its memory group; -1 for scalars
};

}  // namespace edgemoe::fpga
