// The latency and resource model: runs a board's own build of the kernel (its MAC array, lanes and
// loops) in emulation on real images, with the cycle ledger attached, so every pipelined loop the
// hardware would run reports trip count x II + depth and its DDR/HBM traffic at that board's port
// widths and bandwidth (kernels/src/cycle_ledger.h). MoE load is the images' real routing. With
// `heads`, the task's head runs on the device too (its stages are rows kHeadStage + k); without,
// the backbone only (the heads then run on the host CPU).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/weights.h"

namespace edgemoe::emu {

struct LatencyRow {
  int stage;         // -1: patch embedding; 2b: block b's attention half; 2b + 1: its MLP or MoE half;
                     // edgemoe_ledger::kHeadStage + k: the head's stage k
  std::string unit;  // cycle_ledger.h's unit label
  int64_t cycles, compute_cycles, memory_cycles, bytes, macs, mac_slots, loop_runs;  // per image
  int64_t single_beat_bytes;  // of bytes, those a loop moves one transaction per beat
};

struct ResourceUse {
  std::string resource;  // DSP, BRAM36, URAM, LUT
  int64_t used, available;
};

struct LatencyEstimate {
  std::string board, device;
  int clock_mhz = 0;
  int64_t images = 0;
  std::vector<LatencyRow> rows;  // stage order, then unit order; empty cells left out
  int64_t total_cycles = 0;      // per image
  std::vector<ResourceUse> resources;
  std::vector<uint32_t> moe_trace;  // the last image's, as Model.moe_trace lays it out
};

// images: [batch, 3, H, W], normalised as edgemoe.preprocess makes them; the result is per image,
// the mean over the batch. Throws std::invalid_argument for an unknown board or
// a model the board's build cannot hold (naming the limit).
// clock_mhz: the kernel clock to model (0: the board's default, its config says why); memory
// bandwidth per cycle follows it, cycles per loop do not.
LatencyEstimate estimate_latency(const ModelConfig& config, std::shared_ptr<const ModelWeights> weights,
                                 const std::string& board, const float* images, int64_t batch, int64_t task_id,
                                 int num_threads, int clock_mhz = 0, bool heads = true);

// The kernel clocks the model accepts: a design of this size closes neither below nor above.
constexpr int kMinClockMhz = 50, kMaxClockMhz = 500;

}  // namespace edgemoe::emu
