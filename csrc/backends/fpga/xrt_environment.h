// The XRT runtime around a device: which shim XCL_EMULATION_MODE selects (refusing the ones that
// end the process), opening a device with errors that say what to do, and a description of the
// runtime that probes nothing.
#pragma once

#include <xrt/xrt_device.h>

#include <string>
#include <vector>

namespace edgemoe::fpga {

enum class EmulationMode { kHardware, kNoop };

// Reads XCL_EMULATION_MODE. sw_emu / hw_emu: std::runtime_error, because XRT 2.13 calls exit() in
// this process when Vitis's emulation libraries are missing (shared/spec/xrt.md §8); any other
// unknown value: std::runtime_error too.
EmulationMode check_emulation_mode();

// xrt::device(index), its exceptions turned into what is missing and how to provide it.
xrt::device open_device(int index);

// What XRT would load, from the environment and the file system only (no device access).
std::string runtime_description();

// "index: name (bdf)" per device; probes.
std::vector<std::string> probe_devices();

}  // namespace edgemoe::fpga
