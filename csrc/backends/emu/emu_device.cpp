#include "backends/emu/emu_device.h"

#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>

#include "backends/accel/accel_backend.h"
#include "src/m3vit_backbone.h"

namespace edgemoe::emu {

namespace {
// The kernel keeps its on-chip buffers in static storage: one compute unit, one caller at a time.
std::mutex g_compute_unit;
}  // namespace

accel::BufferId EmuDevice::allocate(size_t bytes) {
  buffers_.emplace_back((bytes + 7) / 8, 0);
  sizes_.push_back(bytes);
  return accel::BufferId(buffers_.size() - 1);
}

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

void EmuDevice::run(const accel::KernelArgs& a) {
  using namespace edgemoe_hls;
  auto ptr = [&](accel::BufferId id) { return at(id, 0, 0); };
  fm_t scale;
  scale.range() = uint32_t(a.attn_scale_raw);
  std::lock_guard<std::mutex> lock(g_compute_unit);
  m3vit_backbone(reinterpret_cast<const pixel_t*>(ptr(a.images)), reinterpret_cast<const wt_t*>(ptr(a.weights)),
                 reinterpret_cast<const fm_t*>(ptr(a.params)), reinterpret_cast<fm_t*>(ptr(a.x)),
                 reinterpret_cast<fm_t*>(ptr(a.xn)), reinterpret_cast<fm_t*>(ptr(a.qkv)),
                 reinterpret_cast<fm_t*>(ptr(a.hidden)), reinterpret_cast<fm_t*>(ptr(a.scores)),
                 reinterpret_cast<fm_t*>(ptr(a.softmax_info)), reinterpret_cast<ap_uint<32>*>(ptr(a.trace)),
                 a.num_images, a.dim, a.heads, a.grid_h, a.grid_w, a.patch, a.depth, a.mlp_hidden, a.experts,
                 a.expert_hidden, a.top_k, a.num_tasks, a.moe_mask, a.task, scale, a.embed, a.first_stage,
                 a.last_stage);
}

std::unique_ptr<Backend> make_emu_backend(const ModelConfig& config, std::shared_ptr<const ModelWeights> weights,
                                          int num_threads) {
  return std::make_unique<accel::AccelBackend>("emu", std::make_unique<EmuDevice>(), config, std::move(weights),
                                               num_threads);
}

BackendInfo probe_emu_backend() { return {"emu", true, ""}; }

}  // namespace edgemoe::emu
