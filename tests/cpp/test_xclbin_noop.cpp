// The metadata-only xclbin (csrc/backends/fpga/xclbin_writer) against XRT itself, under the noop
// shim (no card; shared/spec/xrt.md §6): XRT must parse it, report m3vit_backbone's arguments
// exactly as kernels/src/kernel_interface.h lists them, bind every buffer to a bank, and run the
// kernel with one buffer or register value per argument. noop executes nothing: this tests plumbing.
#include <xrt/xrt_bo.h>
#include <xrt/xrt_device.h>
#include <xrt/xrt_kernel.h>
#include <experimental/xrt_xclbin.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "backends/fpga/xclbin_writer.h"
#include "src/kernel_interface.h"
#include "expect.h"

namespace {
using edgemoe_test::expect;
// XRT loads $XILINX_XRT/lib/libxrt_noop.so.2; Debian keeps it in the multiarch directory.
std::filesystem::path noop_root(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  const std::filesystem::path lib = dir / "lib";
  if (!std::filesystem::exists(lib)) std::filesystem::create_directory_symlink(EDGEMOE_XRT_LIBDIR, lib);
  return dir;
}
}  // namespace

int main(int argc, char** argv) {
  const std::filesystem::path work = argc > 1 ? argv[1] : std::filesystem::temp_directory_path() / "edgemoe_noop";
  setenv("XILINX_XRT", noop_root(work / "xrt").c_str(), 1);
  setenv("XCL_EMULATION_MODE", "noop", 1);
  const std::string path = (work / "m3vit_backbone.noop.xclbin").string();
  {
    const std::vector<char> bytes = edgemoe::fpga::metadata_xclbin({});
    std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
  }
  try {
    const xrt::xclbin xclbin(path);
    const auto kernels = xclbin.get_kernels();
    expect(kernels.size() == 1 && kernels[0].get_name() == "m3vit_backbone", "one kernel, m3vit_backbone");
    const auto args = kernels.at(0).get_args();
    expect(args.size() == size_t(edgemoe_hls::kKernelArgCount), "argument count");
    for (size_t i = 0; i < args.size() && i < size_t(edgemoe_hls::kKernelArgCount); ++i) {
      const auto& spec = edgemoe_hls::kKernelInterface[i];
      expect(args[i].get_name() == spec.name, "argument " + std::to_string(i) + " is " + spec.name);
      const bool global = args[i].get_port() == "M_AXI_GMEM" && !args[i].get_mems().empty();
      expect(global == spec.is_buffer, std::string(spec.name) + " is a buffer iff the list says so");
      expect(args[i].get_size() == (spec.is_buffer ? 8u : 4u), std::string(spec.name) + " register size");
    }

    xrt::device device(0);
    const xrt::uuid uuid = device.load_xclbin(path);
    xrt::kernel kernel(device, uuid, "m3vit_backbone");
    xrt::run run(kernel);
    std::vector<xrt::bo> buffers;
    for (int i = 0; i < edgemoe_hls::kKernelArgCount; ++i) {
      if (edgemoe_hls::kKernelInterface[i].is_buffer) {
        expect(kernel.group_id(i) == 0, std::string(edgemoe_hls::kKernelInterface[i].name) + " in bank 0");
        buffers.emplace_back(device, 4096, kernel.group_id(i));
        std::vector<char> fill(4096, char(i));
        buffers.back().write(fill.data());
        buffers.back().sync(XCL_BO_SYNC_BO_TO_DEVICE);
        run.set_arg(i, buffers.back());
      } else {
        run.set_arg(i, uint32_t(i));
      }
    }
    run.start();
    expect(run.wait(std::chrono::milliseconds(1000)) == ERT_CMD_STATE_COMPLETED, "noop run completes");
    std::vector<char> back(4096);
    buffers[3].sync(XCL_BO_SYNC_BO_FROM_DEVICE);
    buffers[3].read(back.data());
    expect(back[0] == 3 && back[4095] == 3, "a buffer reads back what the host wrote");
  } catch (const std::exception& e) {
    expect(false, std::string("XRT threw: ") + e.what());
  }
  return edgemoe_test::report();
}
