#include "backends/emu/emu_device.h"

#include <cstring>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "backends/accel/accel_backend.h"
#include "core/helper_pool.h"

// The kernels' hook for splitting a job in two (kernels/src/emu_parallel.h); set for a run, under
// the compute-unit lock.
extern "C" edgemoe_emu_pair_fn edgemoe_emu_pair_runner = nullptr;

namespace edgemoe::emu {

namespace {
// The kernel keeps its on-chip buffers in static storage: one compute unit, one caller at a time.
std::mutex g_compute_unit;

void run_halves_on_pool(void (*half)(void*, int64_t), void* ctx) { HelperPool::shared().run(2, 1, half, ctx); }
}  // namespace

accel::BufferId EmuDevice::allocate(size_t bytes, accel::KernelArg /*host memory is one bank*/) {
  buffers_.emplace_back((bytes + 7) / 8, 0);
  sizes_.push_back(bytes);
  return accel::BufferId(buffers_.size() - 1);
}

void EmuDevice::release(accel::BufferId buffer) {
  at(buffer, 0, 0);
  std::vector<uint64_t>().swap(buffers_[buffer]);
  sizes_[buffer] = 0;
}

uint8_t* EmuDevice::base_or_null(accel::BufferId buffer) { return buffer < 0 ? nullptr : at(buffer, 0, 0); }

uint8_t* EmuDevice::at(accel::BufferId buffer, size_t bytes, size_t offset) {
  if (buffer < 0 || size_t(buffer) >= buffers_.size() || offset + bytes > sizes_[buffer])
    throw std::out_of_range("emu device: access outside buffer " + std::to_string(buffer));
  return reinterpret_cast<uint8_t*>(buffers_[buffer].data()) + offset;
}

void EmuDevice::write(accel::BufferId buffer, const void* data, size_t bytes, size_t offset) {
  std::memcpy(at(buffer, bytes, offset), data, bytes);
}

void EmuDevice::read(accel::BufferId buffer, void* data, size_t bytes, size_t offset) {
  std::memcpy(data, at(buffer, bytes, offset), bytes);
}

std::string EmuDevice::origin() const {
  if (&build_ == &emulation_build()) return "the emulated kernel compiled into edgemoe";
  return std::string("the ") + build_.name + " build of the kernel, emulated";
}

namespace {
// A scalar register's 32 bits as the kernel parameter type.
template <typename T>
T from_register(uint32_t bits) {
  if constexpr (std::is_integral<T>::value) {
    return T(bits);
  } else {
    T value;
    value.range() = bits;
    return value;
  }
}
}  // namespace

void EmuDevice::run(const accel::KernelArgs& a) {
  using namespace edgemoe_hls;
  std::lock_guard<std::mutex> lock(g_compute_unit);
  // The ledger is global to the kernel builds; the compute-unit lock makes it this run's alone.
  struct Attach {
    explicit Attach(edgemoe_ledger::Ledger* ledger) { edgemoe_ledger::active() = ledger; }
    ~Attach() { edgemoe_ledger::active() = nullptr; }
  } attach(ledger_);
  // Large jobs run as two halves on the shared helper pool when this model may use two threads.
  struct Halves {
    explicit Halves(bool on) { edgemoe_emu_pair_runner = on ? &run_halves_on_pool : nullptr; }
    ~Halves() { edgemoe_emu_pair_runner = nullptr; }
  } halves(threads_ > 1);
#define EDGEMOE_EMU_BUFFER(name, type) , reinterpret_cast<type*>(base_or_null(a.name))
#define EDGEMOE_EMU_SCALAR(name, type) , from_register<type>(a.name)
  std::invoke(build_.kernel EDGEMOE_KERNEL_INTERFACE(EDGEMOE_EMU_BUFFER, EDGEMOE_EMU_SCALAR));
#undef EDGEMOE_EMU_BUFFER
#undef EDGEMOE_EMU_SCALAR
}

std::unique_ptr<Backend> make_emu_backend(const ModelConfig& config, std::shared_ptr<const ModelWeights> weights,
                                          int num_threads, const BackendOptions& options) {
  return std::make_unique<accel::AccelBackend>("emu", std::make_unique<EmuDevice>(emulation_build(), nullptr, num_threads),
                                               config, std::move(weights), num_threads, !options.heads_on_host);
}

BackendInfo probe_emu_backend() { return {"emu", true, ""}; }

}  // namespace edgemoe::emu
