// backend "fpga": the accelerator's backbone on an XRT device (xrt_device.h) behind the shared
// accelerator host (backends/accel), the task heads on the CPU. Built with XRT when CMake finds it
// (fpga_backend.cpp); otherwise fpga_unavailable.cpp reports why it is missing.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"

namespace edgemoe::fpga {

std::unique_ptr<Backend> make_fpga_backend(const ModelConfig& config, std::shared_ptr<const ModelWeights> weights,
                                           int num_threads, const BackendOptions& options);
BackendInfo probe_fpga_backend();
// "index: name" per XRT device; probes the system.
std::vector<std::string> list_fpga_devices();

}  // namespace edgemoe::fpga

namespace edgemoe {
using fpga::list_fpga_devices;
using fpga::make_fpga_backend;
using fpga::probe_fpga_backend;
}  // namespace edgemoe
