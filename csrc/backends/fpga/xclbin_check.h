// A structural check of an .xclbin before XRT parses it: XRT trusts the counts and offsets in the
// file, so a truncated or hostile file could make it read past its buffer. Only the container and
// the metadata sections the host flow reads are checked; the bitstream is the board's business.
#pragma once

#include <string>
#include <vector>

namespace edgemoe::fpga {

// The file's bytes, once checked: XRT is then given these bytes, not the path (the file cannot change
// between the check and the parse). Throws std::invalid_argument("xclbin '<path>': <what is wrong>").
std::vector<char> read_checked_xclbin(const std::string& path);

}  // namespace edgemoe::fpga
