#include "backends/emu/latency_model.h"

#include <stdexcept>

#include "backends/accel/accel_backend.h"
#include "backends/emu/board_builds.h"
#include "backends/emu/emu_device.h"

namespace edgemoe::emu {

namespace {

const char* const kUnitLabels[] = {
#define EDGEMOE_UNIT_LABEL(id, label) label,
    EDGEMOE_LEDGER_UNITS(EDGEMOE_UNIT_LABEL)
#undef EDGEMOE_UNIT_LABEL
};

std::string known_boards() {
  std::string s;
  for (const std::string& b : board_build_names()) s += (s.empty() ? "" : ", ") + b;
  return s;
}

}  // namespace

LatencyEstimate estimate_latency(const ModelConfig& config, std::shared_ptr<const ModelWeights> weights,
                                 const std::string& board, const float* images, int64_t batch, int64_t task_id,
                                 int num_threads, int clock_mhz, bool heads) {
  const KernelBuild* build = find_board_build(board);
  if (!build) throw std::invalid_argument("board: unknown board '" + board + "' (known: " + known_boards() + ")");
  if (batch < 1) throw std::invalid_argument("images: at least one image is needed");
  if (task_id < 0 || task_id >= int64_t(config.tasks.size())) throw std::invalid_argument("task index out of range");
  if (clock_mhz != 0 && (clock_mhz < kMinClockMhz || clock_mhz > kMaxClockMhz))
    throw std::invalid_argument("clock_mhz: a kernel clock between " + std::to_string(kMinClockMhz) + " and " +
                                std::to_string(kMaxClockMhz) + " MHz, got " + std::to_string(clock_mhz));
  edgemoe_ledger::BoardModel facts{};
  build->board_model(&facts);
  const int clock = clock_mhz != 0 ? clock_mhz : facts.clock_mhz;
  if (clock <= 0) throw std::invalid_argument("board: '" + board + "' models no board (it has no clock)");

  auto ledger = std::make_unique<edgemoe_ledger::Ledger>();
  accel::AccelBackend backend(std::string("estimate:") + board, std::make_unique<EmuDevice>(*build, ledger.get()),
                              config, std::move(weights), num_threads, heads);
  *ledger = edgemoe_ledger::Ledger{};  // forget the build query the backend made
  // Bytes per 1000 kernel cycles at this clock: a port moves at most its width per cycle and its
  // bandwidth per second; all ports together the device's bandwidth.
  const long long port_by_bandwidth = facts.port_mbps * 1000 / clock;
  const long long port_by_width = 1000LL * facts.port_width_bytes;
  for (int p = 0; p < edgemoe_ledger::kPortCount; ++p)
    ledger->ports[p] = {port_by_width < port_by_bandwidth ? port_by_width : port_by_bandwidth, facts.read_latency,
                        facts.outstanding[p]};
  ledger->device_bytes_per_kcycle = facts.device_mbps * 1000 / clock;

  if (heads) {
    std::vector<float> out(size_t(batch) * config.tasks[size_t(task_id)].out_channels * config.image_h() * config.image_w());
    backend.forward(images, batch, {task_id}, {out.data()});
  } else {
    std::vector<float> features(size_t(batch) * config.num_tokens() * config.embed_dim);
    backend.backbone(images, batch, {task_id}, {features.data()});
  }

  LatencyEstimate e;
  e.board = board;
  e.device = facts.device ? facts.device : "";
  e.clock_mhz = clock;
  e.images = batch;
  for (int row = 0; row < edgemoe_ledger::kMaxStageRows; ++row)
    for (int u = 0; u < edgemoe_ledger::kUnitCount; ++u) {
      const edgemoe_ledger::Cell& c = ledger->cells[row][u];
      if (c.loop_runs == 0) continue;
      LatencyRow r{row - 1,          kUnitLabels[u],  c.cycles / batch, c.compute_cycles / batch,
                   c.memory_cycles / batch, c.bytes / batch, c.macs / batch, c.mac_slots / batch,
                   c.loop_runs / batch, c.single_beat_bytes / batch};
      e.total_cycles += r.cycles;
      e.rows.push_back(r);
    }
  e.resources = {{"DSP", facts.dsp, facts.device_dsp},
                 {"BRAM36", facts.bram36, facts.device_bram36},
                 {"URAM", facts.uram, facts.device_uram},
                 {"LUT", facts.lut, facts.device_lut}};
  // A multi-SLR device: each SLR's share (the board config's floorplan) against what it leaves the kernel.
  for (int slr = 0; facts.slrs > 1 && slr < facts.slrs && slr < 3; ++slr) {
    const std::string at = " SLR" + std::to_string(slr);
    e.resources.push_back({"DSP" + at, facts.slr_dsp[slr], facts.slr_device_dsp[slr]});
    e.resources.push_back({"BRAM36" + at, facts.slr_bram36[slr], facts.slr_device_bram36[slr]});
    e.resources.push_back({"URAM" + at, facts.slr_uram[slr], facts.slr_device_uram[slr]});
    e.resources.push_back({"LUT" + at, facts.slr_lut[slr], facts.slr_device_lut[slr]});
  }
  backend.moe_trace(task_id, &e.moe_trace);
  return e;
}

}  // namespace edgemoe::emu
