#include "backends/fpga/fpga_backend.h"

#include "backends/accel/accel_backend.h"
#include "backends/fpga/xrt_device.h"
#include "backends/fpga/xrt_environment.h"

namespace edgemoe::fpga {

std::unique_ptr<Backend> make_fpga_backend(const ModelConfig& config, std::shared_ptr<const ModelWeights> weights,
                                           int num_threads, const BackendOptions& options) {
  return std::make_unique<accel::AccelBackend>("fpga", std::make_unique<XrtDevice>(options), config,
                                               std::move(weights), num_threads, !options.heads_on_host);
}

// Available when XRT is compiled in; whether a runtime and a device are there is found out when a
// model is loaded (the note says what the environment provides, without touching a device).
BackendInfo probe_fpga_backend() { return {"fpga", true, runtime_description()}; }

std::vector<std::string> list_fpga_devices() { return probe_devices(); }

}  // namespace edgemoe::fpga
