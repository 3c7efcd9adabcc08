// An .xclbin as edgemoe hands it to XRT. XRT trusts the counts and offsets in the file and parses
// its kernel XML with a recursive parser, so a truncated or hostile file could make it read past
// its buffer or overflow the stack. The container and the metadata sections the host flow reads are
// checked here, and XRT gets a copy edgemoe re-emits: the checked sections laid out afresh, the
// kernel XML re-emitted from expat's parse (kernel_xml.h). The bitstream is the board's business.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace edgemoe::fpga {

// Larger than the xclbin of any build for edgemoe's boards (a ZCU102 bitstream is ~26 MB, a U280
// one ~70 MB): refused before a byte is read.
inline constexpr uint64_t kMaxXclbinBytes = uint64_t(256) << 20;

// Reads the file once (a regular file only: a FIFO or device is refused without blocking), checks
// it and returns the copy to give XRT. Throws std::invalid_argument("xclbin '<path>': <what>").
std::vector<char> read_checked_xclbin(const std::string& path);

}  // namespace edgemoe::fpga
