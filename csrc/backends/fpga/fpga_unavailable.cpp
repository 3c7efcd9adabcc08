// The fpga backend of a build without XRT: present in the registry, so that it says why it cannot run.
#include <stdexcept>

#include "backends/fpga/fpga_backend.h"

namespace edgemoe::fpga {

namespace {
const char* const kWhy =
    "this build has no XRT support (CMake found no XRT headers and libxrt_coreutil, or EDGEMOE_WITH_XRT=OFF); "
    "install libxrt-dev and uuid-dev (Debian) or XRT from AMD, then rebuild edgemoe";
}

std::unique_ptr<Backend> make_fpga_backend(const ModelConfig&, std::shared_ptr<const ModelWeights>, int,
                                           const BackendOptions&) {
  throw std::runtime_error(std::string("backend 'fpga' is unavailable: ") + kWhy);
}

BackendInfo probe_fpga_backend() { return {"fpga", false, kWhy}; }

std::vector<std::string> list_fpga_devices() { throw std::runtime_error(kWhy); }

}  // namespace edgemoe::fpga
