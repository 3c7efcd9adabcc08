#include "backends/fpga/xrt_device.h"

#include <ert.h>
#include <experimental/xrt_xclbin.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "backends/fpga/run_wait.h"
#include "backends/fpga/xclbin_check.h"
#include "backends/fpga/xrt_environment.h"

namespace edgemoe::fpga {

namespace {

using edgemoe_hls::kKernelName;

bool ends_with(const std::string& s, char c) { return !s.empty() && s.back() == c; }

// The kernel in the xclbin must be the interface list, name by name and kind by kind, with the
// register layout and connections XRT will trust: XRT does not type-check set_arg (a buffer bound to
// a scalar crashes it; shared/spec/xrt.md §6.3), writes each scalar at its declared offset into a
// 4 KiB command buffer, and indexes a compute unit's connections by argument without a check.
std::string hex(uint64_t v) {
  char text[24];
  std::snprintf(text, sizeof text, "0x%llx", static_cast<unsigned long long>(v));
  return text;
}

void check_interface(const xrt::xclbin::kernel& kernel, const std::string& path) {
  auto fail = [&](const std::string& what) {
    throw std::invalid_argument("xclbin '" + path + "': " + kKernelName + " " + what +
                                "; it was not built from this edgemoe's kernel (kernels/src/kernel_interface.h): "
                                "rebuild it with kernels/vitis");
  };
  const std::vector<xrt::xclbin::ip> cus = kernel.get_cus();
  if (cus.size() != 1) fail("has " + std::to_string(cus.size()) + " compute units; edgemoe drives exactly one");
  const xrt::xclbin::ip& cu = cus[0];
  const auto control = cu.get_control_type();
  if (control != xrt::xclbin::ip::control_type::hs && control != xrt::xclbin::ip::control_type::chain)
    fail("has a compute unit with a control protocol other than ap_ctrl_hs/ap_ctrl_chain");
  const std::vector<xrt::xclbin::arg> args = kernel.get_args();
  if (args.size() != size_t(edgemoe_hls::kKernelArgCount))
    fail("has " + std::to_string(args.size()) + " arguments, this build passes " +
         std::to_string(edgemoe_hls::kKernelArgCount));
  if (cu.get_num_args() != args.size())
    fail("has a compute unit with " + std::to_string(cu.get_num_args()) + " connected arguments (its connectivity "
         "section), the kernel declares " + std::to_string(args.size()));
  for (int i = 0; i < edgemoe_hls::kKernelArgCount; ++i) {
    const edgemoe_hls::KernelArgSpec& want = edgemoe_hls::kKernelInterface[i];
    const xrt::xclbin::arg& got = args[size_t(i)];
    const std::string where = "argument " + std::to_string(i);
    if (got.get_name() != want.name) fail(where + " is '" + got.get_name() + "', expected '" + want.name + "'");
    if (got.get_index() != size_t(i)) fail(where + " '" + want.name + "' has index " + std::to_string(got.get_index()));
    const bool pointer = ends_with(got.get_host_type(), '*');
    if (pointer != want.is_buffer)
      fail(where + " '" + want.name + "' is a " + (pointer ? "pointer" : "scalar") + " (" + got.get_host_type() +
           "), expected a " + (want.is_buffer ? "pointer" : "32-bit scalar"));
    const size_t bytes = want.is_buffer ? 8 : 4;
    if (got.get_size() != bytes)
      fail(where + " '" + want.name + "' has " + std::to_string(got.get_size()) + " bytes, expected " +
           std::to_string(bytes));
    // Exactly where the register map puts it (kernel_interface.h): no arithmetic on the file's value
    // (an offset near 2^64 wraps any sum), and no overlap, duplicate or swap can pass.
    const uint64_t offset = got.get_offset(), expected = uint64_t(edgemoe_hls::register_offset(i));
    if (offset != expected)
      fail(where + " '" + want.name + "' sits at register offset " + hex(offset) + ", expected " + hex(expected) +
           " (the s_axilite map Vitis HLS builds for this argument list)");
    if (want.is_buffer) {
      bool connected = false;
      for (const xrt::xclbin::mem& bank : cu.get_arg(i).get_mems())
        connected = connected || (bank.get_used() && bank.get_type() != xrt::xclbin::mem::memory_type::streaming);
      if (!connected) fail(where + " '" + want.name + "' is connected to no used memory bank");
    }
  }
}

xrt::xclbin read_xclbin(const std::string& path) {
  const std::vector<char> bytes = read_checked_xclbin(path);  // before XRT's parser trusts a single offset
  try {
    const xrt::xclbin xclbin(bytes);
    std::string names;
    for (const xrt::xclbin::kernel& k : xclbin.get_kernels()) {
      if (k.get_name() == kKernelName) {
        check_interface(k, path);
        return xclbin;
      }
      names += (names.empty() ? "" : ", ") + k.get_name();
    }
    throw std::invalid_argument("xclbin '" + path + "' has no kernel " + kKernelName + " (it has: " +
                                (names.empty() ? "none" : names) + "); build it with kernels/vitis");
  } catch (const std::exception& e) {
    // Ours name the file already; XRT's own (it parses the metadata lazily, in get_kernels() and
    // get_args(): std::stoul on an attribute, a bad name) are the xclbin's fault too and must say so.
    if (dynamic_cast<const std::invalid_argument*>(&e) && std::string(e.what()).rfind("xclbin '", 0) == 0) throw;
    throw std::invalid_argument("xclbin '" + path + "': XRT cannot read its kernel metadata (" + e.what() +
                                "): an attribute of the kernel XML is malformed");
  }
}

}  // namespace

XrtDevice::XrtDevice(const BackendOptions& options) {
  if (options.device < 0) throw std::invalid_argument("device must be >= 0, got " + std::to_string(options.device));
  if (!(options.timeout_s > 0) || !std::isfinite(options.timeout_s) || options.timeout_s > 86400)
    throw std::invalid_argument("timeout must be a number of seconds in (0, 86400]");
  if (options.xclbin.empty())
    throw std::invalid_argument("backend 'fpga' needs an xclbin: pass xclbin='m3vit_backbone.hw.xclbin' or set "
                                "EDGEMOE_XCLBIN (build one with kernels/vitis)");
  timeout_ms_ = unsigned(std::ceil(options.timeout_s * 1000));
  noop_ = check_emulation_mode() == EmulationMode::kNoop;  // refuses sw_emu/hw_emu before XRT runs
  const xrt::xclbin xclbin = read_xclbin(options.xclbin);
  device_ = open_device(options.device);
  try {
    const xrt::uuid uuid = device_.load_xclbin(xclbin);
    kernel_ = xrt::kernel(device_, uuid, kKernelName);
  } catch (const std::exception& e) {
    throw std::runtime_error("XRT device " + std::to_string(options.device) + " could not load xclbin '" +
                             options.xclbin + "': " + e.what());
  }
  const std::vector<xrt::xclbin::mem> groups = xclbin.get_mems();  // memory groups, as group_id indexes them
  capacity_.assign(size_t(edgemoe_hls::kKernelArgCount), UINT64_MAX);
  bank_.assign(size_t(edgemoe_hls::kKernelArgCount), -1);
  for (int i = 0; i < edgemoe_hls::kKernelArgCount; ++i) {
    if (!edgemoe_hls::kKernelInterface[i].is_buffer) continue;
    int group = -1;
    try {
      group = kernel_.group_id(i);
    } catch (const std::exception&) {
    }
    if (group < 0)
      throw std::invalid_argument("xclbin '" + options.xclbin + "': XRT finds no memory bank for argument '" +
                                  edgemoe_hls::kKernelInterface[i].name + "'");
    bank_[size_t(i)] = group;
    if (size_t(group) < groups.size() && groups[size_t(group)].get_size_kb() > 0)
      capacity_[size_t(i)] = groups[size_t(group)].get_size_kb() * 1024;
  }
  origin_ = "xclbin '" + options.xclbin + "' on XRT device " + std::to_string(options.device) +
            (noop_ ? " (XCL_EMULATION_MODE=noop: nothing executes)" : "");
}

xrt::bo& XrtDevice::bo(accel::BufferId buffer, size_t bytes, size_t offset) {
  if (buffer < 0 || size_t(buffer) >= buffers_.size() || !buffers_[buffer] || offset > sizes_[buffer] ||
      bytes > sizes_[buffer] - offset)
    throw std::out_of_range("fpga device: access outside buffer " + std::to_string(buffer));
  return buffers_[buffer];
}

void XrtDevice::require_usable() const {
  if (!unusable_.empty()) throw std::runtime_error(unusable_);
}

accel::BufferId XrtDevice::allocate(size_t bytes, accel::KernelArg arg) {
  require_usable();
  xrt::bo b(device_, std::max<size_t>(bytes, 1), xrt::bo::flags::normal, kernel_.group_id(int(arg)));
  // noop hands out uninitialised host memory and computes nothing: zeros, not old heap contents,
  // are what a dry run then reads back.
  if (noop_) std::memset(b.map<void*>(), 0, std::max<size_t>(bytes, 1));
  sizes_.reserve(sizes_.size() + 1);
  buffers_.push_back(std::move(b));
  sizes_.push_back(bytes);
  return accel::BufferId(buffers_.size() - 1);
}

void XrtDevice::release(accel::BufferId buffer) {
  bo(buffer, 0, 0);
  // After a run that could not be stopped the compute unit may still write to any buffer: keep them.
  if (!unusable_.empty()) return;
  buffers_[buffer] = xrt::bo();
  sizes_[buffer] = 0;
}

XrtDevice::~XrtDevice() {
  // The same: memory a running compute unit may still write to is never given back.
  if (!unusable_.empty()) {
    new std::vector<xrt::bo>(std::move(buffers_));     // NOLINT: deliberate leak
    new std::vector<xrt::run>(std::move(stuck_runs_));  // NOLINT: deliberate leak
  }
}

void XrtDevice::write(accel::BufferId buffer, const void* data, size_t bytes, size_t offset) {
  require_usable();
  xrt::bo& b = bo(buffer, bytes, offset);
  b.write(data, bytes, offset);
  b.sync(XCL_BO_SYNC_BO_TO_DEVICE, bytes, offset);
}

void XrtDevice::read(accel::BufferId buffer, void* data, size_t bytes, size_t offset) {
  require_usable();
  xrt::bo& b = bo(buffer, bytes, offset);
  b.sync(XCL_BO_SYNC_BO_FROM_DEVICE, bytes, offset);
  b.read(data, bytes, offset);
}

void XrtDevice::run(const accel::KernelArgs& a) {
  require_usable();
  xrt::run run(kernel_);
  int index = 0;
#define EDGEMOE_XRT_BUFFER(name, type) \
  if (a.name >= 0) run.set_arg(index, bo(a.name, 0, 0)); \
  ++index;
#define EDGEMOE_XRT_SCALAR(name, type) \
  run.set_arg(index, a.name);          \
  ++index;
  EDGEMOE_KERNEL_INTERFACE(EDGEMOE_XRT_BUFFER, EDGEMOE_XRT_SCALAR)
#undef EDGEMOE_XRT_BUFFER
#undef EDGEMOE_XRT_SCALAR
  // What XRT will write to the compute unit: the CU masks, then the register map.
  const auto* command = reinterpret_cast<const ert_start_kernel_cmd*>(run.get_ert_packet());
  const uint32_t masks = 1 + command->extra_cu_masks;
  const uint32_t* payload = &command->cu_mask;
  last_register_map_.assign(payload + std::min<uint32_t>(masks, command->count), payload + command->count);
  run.start();
  try {
    await_run(run, timeout_ms_, origin_, &unusable_);
  } catch (...) {
    if (!unusable_.empty()) stuck_runs_.push_back(run);  // its command buffer must outlive the run
    throw;
  }
}

int XrtDevice::memory_group(accel::BufferId buffer) const {
  if (buffer < 0 || size_t(buffer) >= buffers_.size() || !buffers_[buffer])
    throw std::out_of_range("fpga device: no buffer " + std::to_string(buffer));
  return int(buffers_[buffer].get_memory_group());
}

int XrtDevice::argument_group(accel::KernelArg arg) const { return kernel_.group_id(int(arg)); }

uint64_t XrtDevice::capacity(accel::KernelArg arg) const {
  const size_t i = size_t(arg);
  return i < capacity_.size() ? capacity_[i] : UINT64_MAX;
}

int XrtDevice::bank(accel::KernelArg arg) const {
  const size_t i = size_t(arg);
  return i < bank_.size() ? bank_[i] : -1;
}

uint64_t XrtDevice::device_address(accel::BufferId buffer) const {
  if (buffer < 0 || size_t(buffer) >= buffers_.size() || !buffers_[buffer])
    throw std::out_of_range("fpga device: no buffer " + std::to_string(buffer));
  return buffers_[buffer].address();
}

}  // namespace edgemoe::fpga
