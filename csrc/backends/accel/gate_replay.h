// The kernel's MoE gate replayed on the host (kernels/src/moe.h gate_token, the function the
// hardware's route_tokens runs per token), for traces: the device keeps no probabilities.
#pragma once

#include <cstdint>
#include <vector>

#include "src/formats.h"

namespace edgemoe::accel {

struct GateReplay {
  std::vector<float> probs;    // [tokens, experts]
  std::vector<int64_t> picks;  // [tokens, top_k], best first
};

// Throws std::invalid_argument when the host's replay (sized by the emulation build's maxima) cannot
// hold a model of this width, expert count and top-k; every board build's maxima are within them.
void check_gate_replay_bounds(int dim, int experts, int top_k);

// xn: [tokens, dim] the normalised tokens the gate read; the gate matrix [experts][dim] as packed
// words (layout.h), word w at (w & 1 ? odd : even)[w / 2]; bias: [experts] logit offsets.
GateReplay replay_gate(const edgemoe_hls::fm_t* xn, long tokens, const edgemoe_hls::weight_word_t* even,
                       const edgemoe_hls::weight_word_t* odd, const edgemoe_hls::fm_t* bias, int dim, int experts,
                       int top_k);

}  // namespace edgemoe::accel
