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
                                 int num_threads) {
  const KernelBuild* build = find_board_build(board);
  if (!build) throw std::invalid_argument("board: unknown board '" + board + "' (known: " + known_boards() + ")");
  if (batch < 1) throw std::invalid_argument("images: at least one image is needed");
  if (task_id < 0 || task_id >= int64_t(config.tasks.size())) throw std::invalid_argument("task index out of range");
  edgemoe_ledger::BoardModel facts{};
  build->board_model(&facts);

  auto ledger = std::make_unique<edgemoe_ledger::Ledger>();
  accel::AccelBackend backend(std::string("estimate:") + board, std::make_unique<EmuDevice>(*build, ledger.get()),
                              config, std::move(weights), num_threads);
  *ledger = edgemoe_ledger::Ledger{};  // forget the build query the backend made
  for (int p = 0; p < edgemoe_ledger::kPortCount; ++p) ledger->ports[p] = facts.ports[p];
  ledger->device_bytes_per_kcycle = facts.device_bytes_per_kcycle;

  std::vector<float> features(size_t(batch) * config.num_tokens() * config.embed_dim);
  backend.backbone(images, batch, {task_id}, {features.data()});

  LatencyEstimate e;
  e.board = board;
  e.device = facts.device ? facts.device : "";
  e.clock_mhz = facts.clock_mhz;
  e.images = batch;
  for (int row = 0; row < edgemoe_ledger::kMaxStageRows; ++row)
    for (int u = 0; u < edgemoe_ledger::kUnitCount; ++u) {
      const edgemoe_ledger::Cell& c = ledger->cells[row][u];
      if (c.loop_runs == 0) continue;
      LatencyRow r{row - 1,          kUnitLabels[u],  c.cycles / batch, c.compute_cycles / batch,
                   c.memory_cycles / batch, c.bytes / batch, c.macs / batch, c.mac_slots / batch,
                   c.loop_runs / batch};
      e.total_cycles += r.cycles;
      e.rows.push_back(r);
    }
  e.resources = {{"DSP", facts.dsp, facts.device_dsp},
                 {"BRAM36", facts.bram36, facts.device_bram36},
                 {"URAM", facts.uram, facts.device_uram},
                 {"LUT", facts.lut, facts.device_lut}};
  backend.moe_trace(task_id, &e.moe_trace);
  return e;
}

}  // namespace edgemoe::emu
