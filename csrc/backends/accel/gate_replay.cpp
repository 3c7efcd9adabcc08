// Compiled without warnings for HLS pragmas and loop labels: it includes kernel code.
#include "backends/accel/gate_replay.h"

#include <stdexcept>
#include <string>

#include "src/moe.h"

namespace edgemoe::accel {

void check_gate_replay_bounds(int dim, int experts, int top_k) {
  if (experts > EDGEMOE_MAX_EXPERTS || top_k > EDGEMOE_MAX_TOP_K || dim > EDGEMOE_MAX_DIM)
    throw std::invalid_argument("trace: width " + std::to_string(dim) + ", " + std::to_string(experts) +
                                " experts, top-" + std::to_string(top_k) + " exceed the host's gate replay bounds (" +
                                std::to_string(EDGEMOE_MAX_DIM) + ", " + std::to_string(EDGEMOE_MAX_EXPERTS) + ", " +
                                std::to_string(EDGEMOE_MAX_TOP_K) + ")");
}

GateReplay replay_gate(const edgemoe_hls::fm_t* xn, long tokens, const edgemoe_hls::weight_word_t* even,
                       const edgemoe_hls::weight_word_t* odd, const edgemoe_hls::fm_t* bias, int dim, int experts,
                       int top_k) {
  using namespace edgemoe_hls;
  check_gate_replay_bounds(dim, experts, top_k);
  const long row_words = words_per_row(dim);
  std::vector<wt_t> gate(static_cast<size_t>(experts) * dim);
  for (int e = 0; e < experts; ++e)
    for (int d = 0; d < dim; ++d) {
      const long w = e * row_words + d / kWeightsPerWord;
      gate[size_t(e) * dim + d] = weight_lane(w & 1 ? odd[w / 2] : even[w / 2], d % kWeightsPerWord);
    }
  GateReplay out;
  out.probs.resize(size_t(tokens) * experts);
  out.picks.resize(size_t(tokens) * top_k);
  for (long t = 0; t < tokens; ++t) {
    unit_t prob[EDGEMOE_MAX_EXPERTS];
    int pick[EDGEMOE_MAX_TOP_K];
    gate_token(xn + t * dim, gate.data(), bias, dim, experts, top_k, prob, pick);
    for (int e = 0; e < experts; ++e) out.probs[size_t(t) * experts + e] = float(prob[e].to_double());
    for (int j = 0; j < top_k; ++j) out.picks[size_t(t) * top_k + j] = pick[j];
  }
  return out;
}

}  // namespace edgemoe::accel
