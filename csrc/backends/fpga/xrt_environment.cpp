#include "backends/fpga/xrt_environment.h"

#include <experimental/xrt_system.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <stdexcept>

namespace edgemoe::fpga {

namespace {

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

// Debian installs XRT's shims in the multiarch directory, but XRT loads $XILINX_XRT/lib/<shim>.
std::string setup_hint() {
  return "source /opt/xilinx/xrt/setup.sh for AMD's XRT packages; with Debian's libxrt1 make a root whose lib/ "
         "is the library directory: D=$(mktemp -d) && ln -s " EDGEMOE_XRT_LIBDIR " $D/lib && export XILINX_XRT=$D";
}

std::string shim_library(EmulationMode mode) {
  return mode == EmulationMode::kNoop ? "libxrt_noop.so.2" : "libxrt_core.so.2";
}

}  // namespace

EmulationMode check_emulation_mode() {
  const std::string mode = env("XCL_EMULATION_MODE");
  if (mode.empty()) return EmulationMode::kHardware;
  if (mode == "noop") return EmulationMode::kNoop;
  if (mode == "sw_emu" || mode == "hw_emu")
    throw std::runtime_error(
        "XCL_EMULATION_MODE=" + mode + " is refused: XRT 2.13 ends the whole process (exit(1)) when Vitis's "
        "emulation libraries are missing, which would kill this interpreter. Run " + mode + " from a separate host "
        "program on a machine with Vitis (kernels/vitis/README.md); unset XCL_EMULATION_MODE for a real device, or "
        "set it to noop for a dry run of the host flow");
  throw std::runtime_error("XCL_EMULATION_MODE='" + mode +
                           "' is not a mode edgemoe can run; unset it for a real device or set it to noop");
}

namespace {
// XRT loads one shim per process, at the first device it opens: what XCL_EMULATION_MODE said then
// holds for the process, whatever the variable says later.
std::mutex g_mode_mutex;
bool g_mode_fixed = false;
EmulationMode g_mode = EmulationMode::kHardware;

const char* mode_name(EmulationMode m) { return m == EmulationMode::kNoop ? "noop" : "hardware"; }
}  // namespace

xrt::device open_device(int index) {
  const EmulationMode mode = check_emulation_mode();
  {
    std::lock_guard<std::mutex> lock(g_mode_mutex);
    if (g_mode_fixed && g_mode != mode)
      throw std::runtime_error(std::string("XCL_EMULATION_MODE now selects the ") + mode_name(mode) +
                               " shim, but XRT loaded the " + mode_name(g_mode) +
                               " shim for this process when it opened its first device; start a new process");
  }
  try {
    xrt::device device{static_cast<unsigned>(index)};
    std::lock_guard<std::mutex> lock(g_mode_mutex);
    g_mode_fixed = true;
    g_mode = mode;
    return device;
  } catch (const std::exception& e) {
    const std::string what = e.what();
    const std::string root = env("XILINX_XRT");
    if (what.find("XILINX_XRT not set") != std::string::npos)
      throw std::runtime_error("the XRT runtime was not found: XILINX_XRT is not set; " + setup_hint());
    if (what.find("No such library") != std::string::npos)
      throw std::runtime_error("the XRT runtime under XILINX_XRT=" + root + " is unusable: " + what + "; " +
                               setup_hint());
    if (what.find("Could not open device") != std::string::npos) {
      unsigned found = 0;
      try {
        found = xrt::system::enumerate_devices();
      } catch (const std::exception&) {
      }
      throw std::runtime_error("no FPGA device at index " + std::to_string(index) + " (XRT finds " +
                               std::to_string(found) + " device" + (found == 1 ? "" : "s") +
                               "; is the card installed and its driver loaded? " +
                               (mode == EmulationMode::kHardware ? "For a dry run without a card set "
                                                                   "XCL_EMULATION_MODE=noop)"
                                                                 : ")"));
    }
    throw std::runtime_error("XRT could not open device " + std::to_string(index) + ": " + what);
  }
}

std::string runtime_description() {
  std::string mode = env("XCL_EMULATION_MODE");
  EmulationMode m = EmulationMode::kHardware;
  try {
    m = check_emulation_mode();
  } catch (const std::exception&) {
    return "XCL_EMULATION_MODE=" + mode + " is refused (only unset or noop run in-process)";
  }
  const std::string root = env("XILINX_XRT");
  if (root.empty()) return "XRT runtime not set up: XILINX_XRT is not set (" + setup_hint() + ")";
  const std::filesystem::path shim = std::filesystem::path(root) / "lib" / shim_library(m);
  std::error_code error;
  if (!std::filesystem::exists(shim, error))
    return "XRT runtime not usable: XILINX_XRT=" + root + " has no " + shim.string() + " (" + setup_hint() + ")";
  return "XRT runtime: XILINX_XRT=" + root + ", " +
         (m == EmulationMode::kNoop ? "noop shim (dry run: nothing executes)" : "hardware shim");
}

std::vector<std::string> probe_devices() {
  check_emulation_mode();
  unsigned count = 0;
  try {
    count = xrt::system::enumerate_devices();
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("XRT cannot enumerate devices: ") + e.what() + "; " + setup_hint());
  }
  std::vector<std::string> out;
  for (unsigned i = 0; i < count; ++i) {
    std::string line = std::to_string(i) + ": ";
    try {
      const xrt::device device = open_device(int(i));
      line += device.get_info<xrt::info::device::name>() + " (" + device.get_info<xrt::info::device::bdf>() + ")";
    } catch (const std::exception& e) {
      line += std::string("cannot be opened: ") + e.what();
    }
    out.push_back(line);
  }
  return out;
}

}  // namespace edgemoe::fpga
