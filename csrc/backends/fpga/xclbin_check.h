// A structural check of an .xclbin before XRT parses it: XRT trusts the counts and offsets in the
// file, so a truncated or hostile file could make it read past its buffer. Only the container and
// the metadata sections the host flow reads are checked; the bitstream is the board's business.
#pragma once

#include <string>

namespace edgemoe::fpga {

// Throws std::invalid_argument("xclbin '<path>': <what is wrong>").
void check_xclbin_file(const std::string& path);

}  // namespace edgemoe::fpga
