// A metadata-only .xclbin for the kernel m3vit_backbone, generated from its one interface list
// (kernels/src/kernel_interface.h). It carries no bitstream: it is what XRT's `noop` shim needs to
// run the whole host flow without a card (shared/spec/xrt.md §6-7; Debian's xclbinutil does not run).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "src/kernel_interface.h"

namespace edgemoe::fpga {

struct XclbinMemoryBank {
  std::string tag;     // e.g. "DDR[0]", "HBM[0]"
  uint64_t base = 0;   // base address
  uint64_t size_kb = 0;
};

struct XclbinArg {
  std::string name;
  bool is_buffer;
};

struct XclbinDescription {
  std::string kernel = edgemoe_hls::kKernelName;
  std::string instance = std::string(edgemoe_hls::kKernelName) + "_1";
  std::vector<XclbinMemoryBank> banks{{"DDR[0]", 0x4000000000ull, 4ull << 20}};
  // Bank (index into banks) of each m_axi argument, in interface order; empty: all in bank 0.
  std::vector<int> buffer_banks;
  // The kernel's arguments; empty: the real interface (kernels/src/kernel_interface.h). Tests
  // describe drifted kernels with it.
  std::vector<XclbinArg> args;
};

// The .xclbin bytes (sections MEM_TOPOLOGY, IP_LAYOUT, CONNECTIVITY, EMBEDDED_METADATA). Throws
// std::invalid_argument for an inconsistent description.
std::vector<char> metadata_xclbin(const XclbinDescription& description);

}  // namespace edgemoe::fpga
