// The kernel builds linked into this library: the emulation build (kernels/config/emu.h), which
// backend "emu" runs, and one build per board (kernels/config/<board>.h), each with its own MAC
// array, lanes and maxima, which the latency model runs to count that board's cycles. Emulation
// results are the same bits from every build (ctest kernel_boards_bit_identical).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "src/cycle_ledger.h"
#include "src/kernel_interface.h"

namespace edgemoe::emu {

using KernelFn = edgemoe_hls::Signature<void EDGEMOE_KERNEL_INTERFACE(EDGEMOE_AS_PARAM_BUFFER,
                                                                      EDGEMOE_AS_PARAM_SCALAR)>::type;

struct KernelBuild {
  const char* name;  // the board config's name: "emu", "zcu102", "u280"
  KernelFn* kernel;
  void (*board_model)(edgemoe_ledger::BoardModel*);
};

const KernelBuild& emulation_build();
// nullptr when no board build has this name.
const KernelBuild* find_board_build(const std::string& board);
std::vector<std::string> board_build_names();

// What each linked build can hold, as its kernel answers the build query: "emu" and every board.
struct BuildLimits {
  std::string name;
  std::string device;  // the FPGA part; empty for the emulation build
  std::vector<std::pair<std::string, uint32_t>> record;  // field name -> value (build_record.h)
};
std::vector<BuildLimits> kernel_build_limits();

}  // namespace edgemoe::emu
