// Which instruction-set path the hand-written CPU kernels take: every path is compiled into the one
// portable build and the best one this CPU supports is picked at run time (as PyTorch and oneDNN
// do), so a wheel built anywhere runs on any x86-64 CPU. EDGEMOE_FORCE_ISA=<name> picks another.
#pragma once

#include <string>
#include <vector>

namespace edgemoe::isa {

// Paths this build holds, best last: on x86-64 "baseline" (SSE2), "avx2" (AVX2 + FMA) and "avx512"
// (AVX-512 F/BW/DQ/VL); elsewhere, or in an EDGEMOE_NATIVE build, the single path "native".
const std::vector<std::string>& compiled();
// Compiled paths this CPU can run.
std::vector<std::string> supported();
// The path in use: EDGEMOE_FORCE_ISA if set (read once), else the best supported one.
const std::string& active();
// Non-empty when EDGEMOE_FORCE_ISA names a path this build lacks or this CPU cannot run; backends
// refuse to start then rather than run another path silently.
const std::string& request_error();

}  // namespace edgemoe::isa
