// The emulated accelerator: host memory as DDR, and the HLS kernel compiled into this library
// (kernel config kernels/config/emu.h) as the compute unit, called with exactly the buffers and
// scalars an FPGA run would get.
#pragma once

#include <memory>
#include <vector>

#include "backends/accel/device.h"
#include "backends/emu/board_builds.h"
#include "core/backend.h"

namespace edgemoe::emu {

class EmuDevice : public accel::Device {
 public:
  // `build`: which kernel build runs (a board build for the latency model); `ledger`: where that
  // build's loops report their cycles during this device's runs (none: not counted); `threads`:
  // how many threads the emulation may split a large job over.
  explicit EmuDevice(const KernelBuild& build = emulation_build(), edgemoe_ledger::Ledger* ledger = nullptr,
                     int threads = 1)
      : build_(build), ledger_(ledger), threads_(threads) {}
  std::string name() const override { return "emu"; }
  std::string origin() const override;
  accel::BufferId allocate(size_t bytes, accel::KernelArg arg) override;
  void release(accel::BufferId buffer) override;
  void write(accel::BufferId buffer, const void* data, size_t bytes, size_t offset) override;
  void read(accel::BufferId buffer, void* data, size_t bytes, size_t offset) override;
  void run(const accel::KernelArgs& args) override;

 private:
  uint8_t* at(accel::BufferId buffer, size_t bytes, size_t offset);
  uint8_t* base_or_null(accel::BufferId buffer);
  const KernelBuild& build_;
  edgemoe_ledger::Ledger* ledger_;
  int threads_;
  std::vector<std::vector<uint64_t>> buffers_;  // 8-byte aligned backing store
  std::vector<size_t> sizes_;
};

std::unique_ptr<Backend> make_emu_backend(const ModelConfig& config, std::shared_ptr<const ModelWeights> weights,
                                          int num_threads, const BackendOptions& /*options: none*/);
BackendInfo probe_emu_backend();

}  // namespace edgemoe::emu

namespace edgemoe {
using emu::make_emu_backend;
using emu::probe_emu_backend;
}  // namespace edgemoe
