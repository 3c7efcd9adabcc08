// The fpga host flow without a card: XrtDevice under XRT's noop shim (shared/spec/xrt.md §6) next
// to the emulated device, both driven by the same accelerator host and recorded call by call.
// noop executes nothing, so this asserts plumbing, never numbers:
//   - every buffer is allocated with the same size for the same kernel argument, in the bank the
//     xclbin connects that argument to;
//   - every byte the host writes and every scalar it passes equal what emu gets for the same call
//     (writes of the residual stream are checked against what that device itself returned);
//   - the stage ranges, the build query, and weights/params uploaded exactly once over many calls.
// Plus the build-record checks and the timeout paths, with fakes where XRT cannot produce the case.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "backends/accel/accel_backend.h"
#include "backends/accel/kernel_build.h"
#include "backends/emu/emu_device.h"
#include "backends/fpga/run_wait.h"
#include "backends/fpga/xclbin_writer.h"
#include "backends/fpga/xrt_device.h"

#include <xclbin.h>

#include "expect.h"

namespace {
using edgemoe_test::expect;
using edgemoe_test::g_passed;

using edgemoe::ModelConfig;
using edgemoe::accel::BufferId;
using edgemoe::accel::Device;
using edgemoe::accel::KernelArg;
using edgemoe::accel::KernelArgs;

// Runs f, expecting exception E whose message contains `needle`.
template <class E>
void expect_throw(const std::function<void()>& f, const std::string& needle, const std::string& what) {
  try {
    f();
    expect(false, what + ": no exception");
  } catch (const E& e) {
    const bool found = std::string(e.what()).find(needle) != std::string::npos;
    expect(found, what + ": message lacks '" + needle + "': " + e.what());
  } catch (const std::exception& e) {
    expect(false, what + ": wrong exception type: " + e.what());
  }
}

// ---------------------------------------------------------------------------------------------
// Models: the tiny test preset and Edge-MoE's ViT-T (python/edgemoe/synthetic.py), seeded weights.

ModelConfig tiny_config() {
  ModelConfig c;
  c.embed_dim = 64, c.depth = 4, c.num_heads = 2, c.grid_h = 4, c.grid_w = 6, c.mlp_hidden = 128;
  c.moe_blocks = {1, 3}, c.num_experts = 4, c.expert_hidden = 64, c.top_k = 2, c.gate_num_tasks = 3;
  c.head_channels = 32;
  c.tasks = {{"semseg", 5, 0}, {"sal", 1, 1}, {"normals", 3, 2}};
  return c;
}

ModelConfig vit_t_config() {
  ModelConfig c;
  c.embed_dim = 192, c.depth = 12, c.num_heads = 3, c.grid_h = 8, c.grid_w = 16, c.mlp_hidden = 768;
  c.moe_blocks = {1, 3, 5, 7, 9, 11}, c.num_experts = 16, c.expert_hidden = 384, c.top_k = 2, c.gate_num_tasks = 2;
  c.tasks = {{"semseg", 7, 0}, {"depth", 1, 1}};
  return c;
}

std::shared_ptr<edgemoe::ModelWeights> seeded_weights(const ModelConfig& c, unsigned seed) {
  auto w = std::make_shared<edgemoe::ModelWeights>();
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> value(-0.05f, 0.05f);
  for (const edgemoe::WeightSpec& spec : edgemoe::required_weights(c)) {
    int64_t n = 1;
    for (int64_t d : spec.shape) n *= d;
    std::vector<float> data(static_cast<size_t>(n));
    const std::string tail = "running_var";
    const bool variance = spec.name.size() >= tail.size() && spec.name.compare(spec.name.size() - tail.size(), tail.size(), tail) == 0;
    for (float& v : data) v = variance ? 1 + value(rng) : value(rng);  // a BatchNorm's variance is positive
    w->add(spec.name, spec.shape, data.data());
  }
  w->validate(c);
  return w;
}

std::vector<float> seeded_images(const ModelConfig& c, int64_t batch, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> value(-2.0f, 2.0f);
  std::vector<float> images(size_t(batch * 3 * c.image_h() * c.image_w()));
  for (float& v : images) v = value(rng);
  return images;
}

// ---------------------------------------------------------------------------------------------
// A device that records every call and passes it on.

struct Event {
  enum Kind { kAllocate, kRelease, kWrite, kRead, kRun } kind;
  int buffer = -1;      // allocation ordinal (ids differ between devices, ordinals must not)
  BufferId inner = -1;  // the inner device's id
  KernelArg role = KernelArg::images;
  size_t bytes = 0, offset = 0;
  std::vector<uint8_t> data;  // written or read
  KernelArgs args;            // buffer fields hold allocation ordinals
  // Run: what the kernel finds in its input buffers (read back through the device itself).
  std::vector<std::vector<uint8_t>> inputs;
  // Run on an XrtDevice: the register map XRT built, and each buffer argument's device address.
  std::vector<uint32_t> register_map;
  std::vector<uint64_t> addresses;
};

// The buffers whose contents the host owns when a run starts (scratch and results are the kernel's).
constexpr KernelArg kHostInputs[] = {KernelArg::images, KernelArg::weights, KernelArg::weights_odd, KernelArg::params};

class RecordingDevice : public Device {
 public:
  RecordingDevice(Device* inner, std::vector<Event>* log) : inner_(inner), log_(log) {}
  std::string name() const override { return inner_->name(); }
  std::string origin() const override { return inner_->origin(); }
  bool executes() const override { return inner_->executes(); }
  uint64_t capacity(KernelArg arg) const override { return inner_->capacity(arg); }
  int bank(KernelArg arg) const override { return inner_->bank(arg); }
  BufferId allocate(size_t bytes, KernelArg arg) override {
    const BufferId id = inner_->allocate(bytes, arg);
    ordinal_.push_back(id);
    roles_.push_back(arg);
    sizes_.push_back(bytes);
    Event e{Event::kAllocate};
    e.buffer = int(ordinal_.size() - 1), e.inner = id, e.role = arg, e.bytes = bytes;
    log_->push_back(e);
    return BufferId(ordinal_.size() - 1);  // the host sees ordinals
  }
  void release(BufferId b) override {
    inner_->release(ordinal_.at(size_t(b)));
    Event e{Event::kRelease};
    e.buffer = b, e.role = roles_.at(size_t(b));
    log_->push_back(e);
  }
  void write(BufferId b, const void* data, size_t bytes, size_t offset) override {
    inner_->write(ordinal_.at(size_t(b)), data, bytes, offset);
    Event e{Event::kWrite};
    e.buffer = b, e.role = roles_.at(size_t(b)), e.bytes = bytes, e.offset = offset;
    e.data.assign(static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + bytes);
    log_->push_back(e);
  }
  void read(BufferId b, void* data, size_t bytes, size_t offset) override {
    inner_->read(ordinal_.at(size_t(b)), data, bytes, offset);
    Event e{Event::kRead};
    e.buffer = b, e.role = roles_.at(size_t(b)), e.bytes = bytes, e.offset = offset;
    e.data.assign(static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + bytes);
    log_->push_back(e);
  }
  void run(const KernelArgs& a) override {
    KernelArgs inner = a;
#define EDGEMOE_MAP_BUFFER(name, type) inner.name = a.name < 0 ? -1 : ordinal_.at(size_t(a.name));
#define EDGEMOE_MAP_SCALAR(name, type)
    EDGEMOE_KERNEL_INTERFACE(EDGEMOE_MAP_BUFFER, EDGEMOE_MAP_SCALAR)
#undef EDGEMOE_MAP_BUFFER
#undef EDGEMOE_MAP_SCALAR
    Event e{Event::kRun};
    e.args = a;
    for (KernelArg role : kHostInputs) {
      BufferId b = -1;
#define EDGEMOE_PICK_BUFFER(name, type) \
  if (role == KernelArg::name) b = a.name;
#define EDGEMOE_PICK_SCALAR(name, type)
      EDGEMOE_KERNEL_INTERFACE(EDGEMOE_PICK_BUFFER, EDGEMOE_PICK_SCALAR)
#undef EDGEMOE_PICK_BUFFER
#undef EDGEMOE_PICK_SCALAR
      std::vector<uint8_t> contents;
      if (b >= 0) {
        contents.resize(sizes_.at(size_t(b)));
        inner_->read(ordinal_.at(size_t(b)), contents.data(), contents.size(), 0);
      }
      e.inputs.push_back(std::move(contents));
    }
    inner_->run(inner);
    if (const auto* xrt = dynamic_cast<const edgemoe::fpga::XrtDevice*>(inner_)) {
      e.register_map = xrt->last_register_map();
      int index = 0;
#define EDGEMOE_ADDRESS_BUFFER(name, type) \
  e.addresses.push_back(inner.name >= 0 ? xrt->device_address(inner.name) : 0); \
  ++index;
#define EDGEMOE_ADDRESS_SCALAR(name, type) \
  e.addresses.push_back(0);                \
  ++index;
      EDGEMOE_KERNEL_INTERFACE(EDGEMOE_ADDRESS_BUFFER, EDGEMOE_ADDRESS_SCALAR)
#undef EDGEMOE_ADDRESS_BUFFER
#undef EDGEMOE_ADDRESS_SCALAR
    }
    log_->push_back(e);
  }

 private:
  Device* inner_;
  std::vector<Event>* log_;
  std::vector<BufferId> ordinal_;
  std::vector<KernelArg> roles_;
  std::vector<size_t> sizes_;
};

// Owns the inner device and records it.
class OwningRecorder : public RecordingDevice {
 public:
  OwningRecorder(std::unique_ptr<Device> inner, std::vector<Event>* log)
      : RecordingDevice(inner.get(), log), owned_(std::move(inner)) {}

 private:
  std::unique_ptr<Device> owned_;
};

const char* role_name(KernelArg a) { return edgemoe_hls::kKernelInterface[int(a)].name; }

// The same host calls on both devices must produce the same log, up to data the device returned.
void compare_logs(const std::vector<Event>& emu, const std::vector<Event>& fpga, const std::string& label) {
  expect(emu.size() == fpga.size(), label + ": same number of device calls (" + std::to_string(emu.size()) + " vs " +
                                        std::to_string(fpga.size()) + ")");
  std::vector<std::vector<uint8_t>> state_reads[2];  // per log: residual streams read back since the images
  for (size_t i = 0; i < emu.size() && i < fpga.size(); ++i) {
    const Event& a = emu[i];
    const Event& b = fpga[i];
    const std::string at = label + " call " + std::to_string(i);
    if (a.kind != b.kind) {
      expect(false, at + ": different kinds of call");
      return;
    }
    switch (a.kind) {
      case Event::kAllocate:
        expect(a.role == b.role && a.bytes == b.bytes && a.buffer == b.buffer,
               at + ": allocation of " + role_name(a.role) + " (" + std::to_string(a.bytes) + " vs " +
                   std::to_string(b.bytes) + " bytes)");
        break;
      case Event::kRelease:
        expect(a.buffer == b.buffer, at + ": release of the same buffer");
        break;
      case Event::kRead:
        expect(a.buffer == b.buffer && a.bytes == b.bytes && a.offset == b.offset, at + ": read of " + role_name(a.role));
        if (a.role == KernelArg::x) state_reads[0].push_back(a.data), state_reads[1].push_back(b.data);
        break;
      case Event::kWrite:
        expect(a.buffer == b.buffer && a.bytes == b.bytes && a.offset == b.offset,
               at + ": write to " + role_name(a.role));
        if (a.role == KernelArg::images) state_reads[0].clear(), state_reads[1].clear();
        if (a.role == KernelArg::x) {
          // The host restores the shared prefix it read from the same device in this call.
          auto seen = [](const std::vector<std::vector<uint8_t>>& reads, const std::vector<uint8_t>& d) {
            for (const auto& r : reads)
              if (r == d) return true;
            return false;
          };
          expect(seen(state_reads[0], a.data) && seen(state_reads[1], b.data),
                 at + ": residual stream written back as read");
        } else {
          expect(a.data == b.data, at + ": bytes written to " + role_name(a.role) + " equal emu's");
        }
        break;
      case Event::kRun: {
#define EDGEMOE_CMP_ARG(name, type) \
  expect(a.args.name == b.args.name, at + ": kernel argument " #name " equals emu's");
        EDGEMOE_KERNEL_INTERFACE(EDGEMOE_CMP_ARG, EDGEMOE_CMP_ARG)
#undef EDGEMOE_CMP_ARG
        for (size_t k = 0; k < a.inputs.size(); ++k)
          expect(a.inputs[k] == b.inputs[k],
                 at + ": the kernel finds the same bytes in " + role_name(kHostInputs[k]) + " on both devices");
        break;
      }
    }
  }
}

std::filesystem::path g_work;

// What reaches the compute unit: in the register map XRT built for each run, every scalar at its
// kernel_interface.h offset holds the value the host passed (compare_logs shows emu got the same),
// and every bound buffer's device address sits at its pointer's offset.
void check_register_maps(const std::vector<Event>& fpga_log, const std::string& label) {
  int runs = 0, wrong = 0;
  for (const Event& e : fpga_log) {
    if (e.kind != Event::kRun) continue;
    ++runs;
    auto word = [&](int byte_offset) -> uint64_t {
      const size_t at = size_t(byte_offset) / 4;
      return at < e.register_map.size() ? e.register_map[at] : ~uint64_t(0);
    };
    int index = 0;
#define EDGEMOE_CHECK_BUFFER(name, type)                                                                  \
  if (e.args.name >= 0) {                                                                                 \
    const int at = edgemoe_hls::register_offset(index);                                                   \
    const uint64_t address = word(at) | (word(at + 4) << 32);                                             \
    if (address != e.addresses[size_t(index)]) {                                                          \
      ++wrong;                                                                                            \
      expect(false, label + ": buffer " #name " at register " + std::to_string(at) + " holds address " +  \
                        std::to_string(address) + ", its buffer is at " + std::to_string(e.addresses[size_t(index)])); \
    }                                                                                                     \
  }                                                                                                       \
  ++index;
#define EDGEMOE_CHECK_SCALAR(name, type)                                                                  \
  {                                                                                                       \
    const int at = edgemoe_hls::register_offset(index);                                                   \
    if (word(at) != e.args.name) {                                                                        \
      ++wrong;                                                                                            \
      expect(false, label + ": scalar " #name " at register " + std::to_string(at) + " holds " +           \
                        std::to_string(word(at)) + ", the host passed " + std::to_string(e.args.name));    \
    }                                                                                                     \
  }                                                                                                       \
  ++index;
    EDGEMOE_KERNEL_INTERFACE(EDGEMOE_CHECK_BUFFER, EDGEMOE_CHECK_SCALAR)
#undef EDGEMOE_CHECK_BUFFER
#undef EDGEMOE_CHECK_SCALAR
  }
  expect(runs > 0 && wrong == 0, label + ": every run's register map (XRT's ERT command) is kernel_interface.h's");
}

std::string write_xclbin(const edgemoe::fpga::XclbinDescription& d, const std::string& name) {
  const std::string path = (g_work / name).string();
  const std::vector<char> bytes = edgemoe::fpga::metadata_xclbin(d);
  std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
  return path;
}

// Every buffer argument in its own place: 10 buffers over 4 banks.
edgemoe::fpga::XclbinDescription four_banks() {
  edgemoe::fpga::XclbinDescription d;
  d.banks = {{"HBM[0]", 0x0, 256ull << 10}, {"HBM[1]", 0x10000000, 256ull << 10},
             {"HBM[2]", 0x20000000, 256ull << 10}, {"HBM[3]", 0x30000000, 256ull << 10}};
  d.buffer_banks = {0, 1, 2, 3, 0, 1, 2, 3, 0, 1};
  return d;
}

struct Call {
  int64_t batch;
  std::vector<int64_t> tasks;
};

// Banks smaller than a batch: the residual stream's bank holds 2.5 images, so a batch of 5 runs as
// 2 + 2 + 1 images (each run within the bank), and a bank that holds no image refuses the model.
void bank_capacity_flow() {
  const ModelConfig config = tiny_config();
  const auto weights = seeded_weights(config, 7);
  const uint64_t per_image_x = uint64_t(config.num_tokens()) * config.embed_dim * sizeof(edgemoe_hls::fm_t);
  auto description = [&](uint64_t x_bank_bytes) {
    edgemoe::fpga::XclbinDescription d;
    d.banks = {{"HBM[0]", 0x0, 256ull << 10}, {"HBM[1]", 0x10000000, (x_bank_bytes + 1023) / 1024}};
    int buffer = 0;
    for (const auto& a : edgemoe_hls::kKernelInterface) {
      if (!a.is_buffer) continue;
      d.buffer_banks.push_back(std::string(a.name) == "x" ? 1 : 0);
      ++buffer;
    }
    return d;
  };
  edgemoe::BackendOptions options;
  options.xclbin = write_xclbin(description(per_image_x * 5 / 2), "small_x_bank.xclbin");
  std::vector<Event> log;
  edgemoe::accel::AccelBackend fpga("fpga", std::make_unique<OwningRecorder>(
                                                std::make_unique<edgemoe::fpga::XrtDevice>(options), &log),
                                    config, weights, 1, true);
  const std::vector<float> images = seeded_images(config, 5, 3);
  std::vector<float> features(size_t(5 * config.num_tokens() * config.embed_dim));
  fpga.backbone(images.data(), 5, {0}, {features.data()});
  std::vector<int> embed_runs;  // images of each run that embeds (one per chunk)
  for (const Event& e : log)
    if (e.kind == Event::kRun && e.args.embed) embed_runs.push_back(int(e.args.num_images));
  expect(embed_runs == std::vector<int>({2, 2, 1}), "a batch of 5 runs as 2 + 2 + 1 images when x's bank holds 2.5");
  for (const Event& e : log)
    if (e.kind == Event::kAllocate && e.role == KernelArg::x)
      expect(e.bytes <= per_image_x * 5 / 2, "every x buffer fits its bank");
  options.xclbin = write_xclbin(description(per_image_x / 2), "tiny_x_bank.xclbin");
  expect_throw<std::invalid_argument>(
      [&] {
        edgemoe::accel::AccelBackend refused("fpga", std::make_unique<edgemoe::fpga::XrtDevice>(options), config,
                                             weights, 1, true);
      },
      "the memory bank of argument 'x' holds", "a bank that holds no image refuses the model");
}

void host_flow(const ModelConfig& config, const std::vector<Call>& calls, const std::string& label) {
  const auto weights = seeded_weights(config, 7);
  edgemoe::BackendOptions options;
  options.xclbin = write_xclbin(four_banks(), label + ".xclbin");
  std::vector<Event> emu_log, fpga_log;
  auto xrt = std::make_unique<edgemoe::fpga::XrtDevice>(options);
  edgemoe::fpga::XrtDevice* xrt_device = xrt.get();
  expect(!xrt_device->executes(), label + ": noop device says it executes nothing");
  edgemoe::accel::AccelBackend emu("emu", std::make_unique<OwningRecorder>(std::make_unique<edgemoe::emu::EmuDevice>(), &emu_log),
                                   config, weights, 1, true);
  edgemoe::accel::AccelBackend fpga("fpga", std::make_unique<OwningRecorder>(std::move(xrt), &fpga_log), config,
                                    weights, 1, true);
  const int64_t feature_size = config.num_tokens() * config.embed_dim;
  unsigned seed = 1;
  for (const Call& call : calls) {
    const std::vector<float> images = seeded_images(config, call.batch, seed++);
    std::vector<std::vector<float>> features(call.tasks.size(), std::vector<float>(size_t(call.batch * feature_size)));
    std::vector<float*> outs;
    for (auto& f : features) outs.push_back(f.data());
    emu.backbone(images.data(), call.batch, call.tasks, outs);
    fpga.backbone(images.data(), call.batch, call.tasks, outs);
  }
  compare_logs(emu_log, fpga_log, label);
  check_register_maps(fpga_log, label);

  // Weights and params: uploaded once, whatever the calls.
  int weight_writes = 0, odd_weight_writes = 0, param_writes = 0;
  for (const Event& e : fpga_log) {
    if (e.kind != Event::kWrite) continue;
    weight_writes += e.role == KernelArg::weights;
    odd_weight_writes += e.role == KernelArg::weights_odd;
    param_writes += e.role == KernelArg::params;
  }
  expect(weight_writes == 1 && odd_weight_writes == 1 && param_writes == 1, label + ": weights and params uploaded exactly once over " +
                                                      std::to_string(calls.size()) + " calls");

  // Banks: every live buffer where the xclbin connects its argument.
  const std::vector<int> banks = four_banks().buffer_banks;
  std::vector<bool> released(fpga_log.size(), false);
  for (const Event& e : fpga_log)
    if (e.kind == Event::kRelease) released[size_t(e.buffer)] = true;
  int buffer_index_of[edgemoe_hls::kKernelArgCount];
  for (int i = 0, buffer = 0; i < edgemoe_hls::kKernelArgCount; ++i)
    buffer_index_of[i] = edgemoe_hls::kKernelInterface[i].is_buffer ? buffer++ : -1;
  for (const Event& e : fpga_log) {
    if (e.kind != Event::kAllocate || released[size_t(e.buffer)]) continue;
    const int want = banks[size_t(buffer_index_of[int(e.role)])];
    expect(xrt_device->argument_group(e.role) == want && xrt_device->memory_group(e.inner) == want,
           label + ": buffer for " + role_name(e.role) + " in bank " + std::to_string(want) + " (XRT: argument " +
               std::to_string(xrt_device->argument_group(e.role)) + ", buffer " +
               std::to_string(xrt_device->memory_group(e.inner)) + ")");
  }

  // Stage ranges: the query, then per call the shared prefix once and the task-gated rest per task.
  int split = int(2 * config.depth);
  for (int64_t b : config.moe_blocks) split = std::min(split, int(2 * b + 1));
  std::vector<std::pair<int, int>> want{{-1, 0}};
  for (const Call& call : calls) {
    want.push_back({0, split});
    for (size_t t = 0; t < call.tasks.size(); ++t)
      if (std::find(call.tasks.begin(), call.tasks.begin() + t, call.tasks[t]) == call.tasks.begin() + t)
        want.push_back({split, int(2 * config.depth)});  // a task named twice runs once
  }
  std::vector<std::pair<int, int>> got;
  for (const Event& e : fpga_log)
    if (e.kind == Event::kRun) got.push_back({int(e.args.first_stage), int(e.args.last_stage)});
  expect(got == want, label + ": stage ranges (query, shared prefix, one task-gated run per distinct task)");
  size_t run = 0;
  for (const Event& e : fpga_log) {
    if (e.kind != Event::kRun) continue;
    if (run == 0) expect(e.args.trace >= 0 && e.args.weights < 0, label + ": the query passes only its record buffer");
    else expect(e.args.embed == (got[run].first == 0 ? 1u : 0u), label + ": embed only with the shared prefix");
    ++run;
  }
}

// ---------------------------------------------------------------------------------------------

void build_record_checks() {
  using namespace edgemoe_hls;
  using edgemoe::accel::KernelBuild;
  const KernelBuild host = edgemoe::accel::host_kernel_build();
  expect(host.config_name() == "emu", "host build record names config emu");
  edgemoe::accel::check_kernel_build(host);  // no throw
  ++g_passed;
  auto altered = [&](BuildRecordField f, uint32_t v) {
    KernelBuild b = host;
    b.words[f] = v;
    b.origin = "test";
    return b;
  };
  expect_throw<std::runtime_error>([&] { edgemoe::accel::check_kernel_build(altered(kRecord_magic, 0)); },
                                   "did not answer the build query", "zero record");
  expect_throw<std::runtime_error>([&] { edgemoe::accel::check_kernel_build(altered(kRecord_interface_hash, 1)); },
                                   "argument list differs", "other interface");
  expect_throw<std::runtime_error>([&] { edgemoe::accel::check_kernel_build(altered(kRecord_wt_bits, 16)); },
                                   "number format wt_t is 16 bits", "16-bit weights");
  expect_throw<std::runtime_error>([&] { edgemoe::accel::check_kernel_build(altered(kRecord_record_version, 10)); },
                                   "version 10", "record version");
  expect_throw<std::runtime_error>([&] { edgemoe::accel::check_kernel_build(altered(kRecord_max_images, 0)); },
                                   "max_images is 0", "zero maximum");

  // A ZCU102-sized build: Edge-MoE's ViT-T fits, a wider model is refused naming the limit.
  KernelBuild zcu = host;
  zcu.words[kRecord_max_dim] = 192, zcu.words[kRecord_max_tokens] = 129, zcu.words[kRecord_max_heads] = 3;
  zcu.words[kRecord_max_tasks] = 2, zcu.words[kRecord_max_mlp_hidden] = 768, zcu.words[kRecord_max_expert_hidden] = 384;
  zcu.origin = "xclbin 'zcu102.xclbin'";
  edgemoe::accel::check_fits_build(vit_t_config(), zcu);
  ++g_passed;
  ModelConfig wide = vit_t_config();
  wide.embed_dim = 384, wide.num_heads = 6;
  expect_throw<std::invalid_argument>([&] { edgemoe::accel::check_fits_build(wide, zcu); },
                                      "EDGEMOE_MAX_DIM = 192 (kernel config 'emu' in xclbin 'zcu102.xclbin'",
                                      "width beyond the build");
  ModelConfig tall = vit_t_config();
  tall.grid_h = 16;
  expect_throw<std::invalid_argument>([&] { edgemoe::accel::check_fits_build(tall, zcu); }, "EDGEMOE_MAX_TOKENS = 129",
                                      "tokens beyond the build");

  // A kernel that ignores the query (an old xclbin on a device that does execute): refused.
  class Silent : public edgemoe::emu::EmuDevice {
   public:
    void run(const KernelArgs&) override {}
    std::string origin() const override { return "a silent kernel"; }
  } silent;
  expect_throw<std::runtime_error>([&] { edgemoe::accel::query_kernel_build(silent); },
                                   "a silent kernel cannot run with this edgemoe build: it did not answer",
                                   "kernel without the query");
  // The emulated kernel answers with its own record.
  edgemoe::emu::EmuDevice emu;
  const KernelBuild answered = edgemoe::accel::query_kernel_build(emu);
  expect(!answered.assumed && std::memcmp(answered.words, host.words, sizeof host.words) == 0,
         "the emulated kernel answers the query with the host build's record");
}

// Fake run handles with XRT's wait/abort semantics.
struct FakeRun {
  ert_cmd_state wait_state;
  ert_cmd_state abort_state;
  bool abort_throws = false;
  ert_cmd_state wait(std::chrono::milliseconds) const { return wait_state; }
  ert_cmd_state abort() {
    if (abort_throws) throw std::runtime_error("ioctl failed");
    return abort_state;
  }
};

void timeout_checks() {
  using edgemoe::fpga::await_run;
  std::string unusable;
  FakeRun done{ERT_CMD_STATE_COMPLETED, ERT_CMD_STATE_COMPLETED};
  await_run(done, 1000, "dev", &unusable);
  expect(unusable.empty(), "a completed run passes");
  FakeRun late{ERT_CMD_STATE_TIMEOUT, ERT_CMD_STATE_COMPLETED};
  expect_throw<edgemoe::DeviceTimeout>([&] { await_run(late, 1500, "dev", &unusable); },
                                       "within the timeout of 1.5", "timed-out run that completed while stopped");
  expect(unusable.empty(), "a run that completed leaves the device usable");
  FakeRun aborted{ERT_CMD_STATE_TIMEOUT, ERT_CMD_STATE_ABORT};
  expect_throw<edgemoe::DeviceTimeout>([&] { await_run(aborted, 1000, "dev", &unusable); }, "may still be running",
                                       "aborted run: the compute unit may still write");
  expect(unusable.find("unusable") != std::string::npos, "an aborted run marks the device unusable");
  unusable.clear();
  FakeRun stuck{ERT_CMD_STATE_TIMEOUT, ERT_CMD_STATE_TIMEOUT, true};
  expect_throw<edgemoe::DeviceTimeout>([&] { await_run(stuck, 1000, "dev", &unusable); }, "abort failed: ioctl failed",
                                       "timed-out run, stuck");
  expect(unusable.find("unusable") != std::string::npos, "a stuck run marks the device unusable");
  FakeRun failed{ERT_CMD_STATE_ERROR, ERT_CMD_STATE_ERROR};
  std::string fine;
  expect_throw<std::runtime_error>([&] { await_run(failed, 1000, "dev", &fine); }, "command state", "run error");
}

void xrt_error_paths() {
  edgemoe::BackendOptions options;
  expect_throw<std::invalid_argument>([&] { edgemoe::fpga::XrtDevice d(options); }, "needs an xclbin", "no xclbin");
  options.xclbin = (g_work / "missing.xclbin").string();
  expect_throw<std::invalid_argument>([&] { edgemoe::fpga::XrtDevice d(options); }, "cannot open", "missing xclbin");
  // Truncations and corruptions of a good file: refused before XRT parses them.
  const std::string good = write_xclbin({}, "good.xclbin");
  std::ifstream in(good, std::ios::binary);
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto variant = [&](const std::function<void(std::vector<char>&)>& change, const std::string& name) {
    std::vector<char> b = bytes;
    change(b);
    const std::string path = (g_work / name).string();
    std::ofstream(path, std::ios::binary).write(b.data(), std::streamsize(b.size()));
    return path;
  };
  const size_t length_at = offsetof(axlf, m_header) + offsetof(axlf_header, m_length);
  const size_t count_at = offsetof(axlf, m_header) + offsetof(axlf_header, m_numSections);
  const size_t first_section = offsetof(axlf, m_sections);
  struct Case {
    std::string name, needle;
    std::function<void(std::vector<char>&)> change;
  };
  const std::vector<Case> cases = {
      {"truncated", "truncated or padded", [](std::vector<char>& b) { b.resize(b.size() - 100); }},
      {"tiny", "shorter than its header", [](std::vector<char>& b) { b.resize(100); }},
      {"magic", "no 'xclbin2' magic", [](std::vector<char>& b) { b[0] = 'X'; }},
      {"sections", "section count",
       [&](std::vector<char>& b) { const uint32_t n = 1u << 30; std::memcpy(&b[count_at], &n, 4); }},
      {"table", "section table runs past",
       [&](std::vector<char>& b) { const uint32_t n = 4000; std::memcpy(&b[count_at], &n, 4); }},
      {"offset", "lies outside the file",
       [&](std::vector<char>& b) {
         const uint64_t off = ~0ull - 8;
         std::memcpy(&b[first_section + offsetof(axlf_section_header, m_sectionOffset)], &off, 8);
       }},
      {"count", "claims",
       [&](std::vector<char>& b) {
         uint64_t off;
         std::memcpy(&off, &b[first_section + offsetof(axlf_section_header, m_sectionOffset)], 8);
         const int32_t n = 5000;  // the first section is MEM_TOPOLOGY
         std::memcpy(&b[off], &n, 4);
       }},
  };
  (void)length_at;
  const size_t second_kind = first_section + sizeof(axlf_section_header) + offsetof(axlf_section_header, m_sectionKind);
  options.xclbin = variant([&](std::vector<char>& b) { const uint32_t kind = MEM_TOPOLOGY; std::memcpy(&b[second_kind], &kind, 4); },
                           "twice.xclbin");
  expect_throw<std::invalid_argument>([&] { edgemoe::fpga::XrtDevice d(options); }, "appears twice",
                                      "a checked section kind twice (XRT reads the first copy)");
  edgemoe::fpga::XclbinDescription regex_name;
  regex_name.kernel = "(a*)*b", regex_name.instance = "x_1";
  options.xclbin = write_xclbin(regex_name, "regex.xclbin");
  expect_throw<std::invalid_argument>([&] { edgemoe::fpga::XrtDevice d(options); }, "not an identifier",
                                      "a kernel name XRT would turn into a regex");
  for (const Case& c : cases) {
    options.xclbin = variant(c.change, c.name + ".xclbin");
    expect_throw<std::invalid_argument>([&] { edgemoe::fpga::XrtDevice d(options); }, c.needle, "xclbin " + c.name);
  }
  // Interface drift: a renamed argument, a scalar where a buffer is, a kernel of another name.
  edgemoe::fpga::XclbinDescription renamed;
  int x_arg = -1, num_images_arg = -1, buffers = 0;
  for (const auto& a : edgemoe_hls::kKernelInterface) {
    if (std::string(a.name) == "x") x_arg = int(renamed.args.size());
    if (std::string(a.name) == "num_images") num_images_arg = int(renamed.args.size());
    buffers += a.is_buffer;
    renamed.args.push_back({a.name, a.is_buffer});
  }
  renamed.args[size_t(x_arg)].name = "y";
  options.xclbin = write_xclbin(renamed, "renamed.xclbin");
  expect_throw<std::invalid_argument>([&] { edgemoe::fpga::XrtDevice d(options); },
                                      "argument " + std::to_string(x_arg) + " is 'y', expected 'x'", "renamed argument");
  edgemoe::fpga::XclbinDescription kinds = renamed;
  kinds.args[size_t(x_arg)].name = "x";
  kinds.args[size_t(num_images_arg)].is_buffer = true;  // num_images as a pointer
  kinds.buffer_banks.assign(size_t(buffers) + 1, 0);
  options.xclbin = write_xclbin(kinds, "kinds.xclbin");
  expect_throw<std::invalid_argument>([&] { edgemoe::fpga::XrtDevice d(options); },
                                      "'num_images' is a pointer", "scalar declared as a buffer");
  edgemoe::fpga::XclbinDescription other;
  other.kernel = "vadd", other.instance = "vadd_1";
  options.xclbin = write_xclbin(other, "vadd.xclbin");
  expect_throw<std::invalid_argument>([&] { edgemoe::fpga::XrtDevice d(options); },
                                      "has no kernel m3vit_backbone (it has: vadd)", "other kernel");
  // Option ranges.
  options.xclbin = good;
  options.device = -1;
  expect_throw<std::invalid_argument>([&] { edgemoe::fpga::XrtDevice d(options); }, "device must be >= 0", "device -1");
  options.device = 0;
  options.timeout_s = 0;
  expect_throw<std::invalid_argument>([&] { edgemoe::fpga::XrtDevice d(options); }, "timeout", "timeout 0");
}

}  // namespace

// test_fpga_noop WORKDIR checks|flow: "checks" needs no XRT device (record, timeout, xclbin
// checks happen before one is opened); "flow" needs XRT's noop shim, which Debian ships for amd64
// but not for arm64 (tests/cpp/CMakeLists.txt registers it only where the shim exists).
int main(int argc, char** argv) {
  if (argc != 3 || (std::string(argv[2]) != "checks" && std::string(argv[2]) != "flow")) {
    std::fprintf(stderr, "usage: %s WORKDIR checks|flow\n", argv[0]);
    return 2;
  }
  g_work = argv[1];
  std::filesystem::create_directories(g_work);
  const std::filesystem::path root = g_work / "xrt";
  std::filesystem::create_directories(root);
  if (!std::filesystem::exists(root / "lib")) std::filesystem::create_directory_symlink(EDGEMOE_XRT_LIBDIR, root / "lib");
  setenv("XILINX_XRT", root.c_str(), 1);
  setenv("XCL_EMULATION_MODE", "noop", 1);
  try {
    if (std::string(argv[2]) == "checks") {
      build_record_checks();
      timeout_checks();
      xrt_error_paths();
    } else {
      host_flow(tiny_config(), {{2, {0, 1, 2}}, {1, {1}}, {3, {2, 0}}, {2, {0, 0}}}, "tiny");
      bank_capacity_flow();
      host_flow(vit_t_config(), {{1, {0, 1}}, {1, {1}}}, "vit-t");
    }
  } catch (const std::exception& e) {
    expect(false, std::string("unexpected exception: ") + e.what());
  }
  return edgemoe_test::report();
}
