// edgemoe_write_xclbin OUT.xclbin: writes the metadata-only xclbin of m3vit_backbone (all buffers in
// one DDR bank), for running the fpga host flow under XRT's noop shim.
#include <cstdio>
#include <fstream>
#include <stdexcept>

#include "backends/fpga/xclbin_writer.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT.xclbin\n", argv[0]);
    return 2;
  }
  const std::vector<char> bytes = edgemoe::fpga::metadata_xclbin({});
  std::ofstream out(argv[1], std::ios::binary);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  if (!out) {
    std::fprintf(stderr, "cannot write %s\n", argv[1]);
    return 1;
  }
  return 0;
}
