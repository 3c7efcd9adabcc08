// The whole backbone and each task's head on a seeded model that fits every board, printed as
// hashes of the output rows, the MoE trace and the head's output per task. Built once per configuration (emu, zcu102, u280); the ctest
// kernel_boards_bit_identical requires the three printouts to be equal, i.e. the emulation
// computes what each board's build computes, whatever its array sizes and maxima, and equal to
// board_bits.expected: a change of the kernels' bits is a decision a commit makes visibly. The
// model is drawn with tb::Rng::exact_normal, so the hashes are the same on every platform.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "src/attention.h"
#include "src/layout.h"
#include "src/m3vit_backbone.h"
#include "tb_util.h"
#include "tb_weights.h"

using namespace edgemoe_hls;

namespace {

uint64_t fnv1a(uint64_t hash, uint64_t word) {
  for (int byte = 0; byte < 8; ++byte) {
    hash ^= (word >> (8 * byte)) & 0xFF;
    hash *= 1099511628211ull;
  }
  return hash;
}

}  // namespace

int main() {
  // Edge-MoE's ViT-T at 128x256 (ZCU102's maxima), 4 blocks: dense, MoE, dense, MoE; two tasks.
  // Drawn in the direct layout; a build with Winograd heads gets the same taps re-packed (below).
  const ModelDims m = {192, 3, 8, 16, 16, 4, 768, 16, 384, 2, 2, 0b1010u, false};
  const int n = tokens(m), D = m.dim;
  // Heads of 32 channels (the built-in model's), 7 and 3 outputs (one padded word each).
  const int head_channels = 32, head_outs[2] = {7, 3};
  tb::Rng rng(11);
  std::vector<weight_word_t> weights(model_weights_size(m, head_channels));
  std::vector<fm_t> params(model_params_size(m, head_channels));
  // Scaled like a trained network: unit-variance activations, decisive gates.
  // The backbone's draws first (its hashes predate the heads), the heads' after the image's.
  for (long w = 0; w < weights_size(m); ++w)
    for (int lane = 0; lane < kWeightsPerWord; ++lane) set_weight_lane(weights[w], lane, rng.exact_normal(0, 1.0 / 14));
  for (long i = 0; i < params_size(m); ++i) params[i] = rng.exact_normal(0, 0.05);
  for (int i = 0; i < n * D; ++i) params[p_pos(m) + i] = rng.exact_normal(0, 0.5);
  for (int b = 0; b < m.depth; ++b) {
    for (int d = 0; d < D; ++d) {
      params[p_ln1(m, b) + d] = 1 + rng.exact_normal(0, 0.1);
      params[p_ln2(m, b) + d] = 1 + rng.exact_normal(0, 0.1);
    }
    if (!is_moe(m, b)) continue;
    for (int t = 0; t < m.num_tasks; ++t)
      for (int i = 0; i < m.experts * D; ++i) tb::set_weight_at(weights, w_gate(m, b, t), D, i / D, i % D, rng.exact_normal(0, 0.15));
  }
  std::vector<pixel_t> image(3L * m.grid_h * m.patch * m.grid_w * m.patch);
  for (auto& v : image) v.range() = uint64_t(rng.integer(0, 255));
  for (long w = weights_size(m); w < long(weights.size()); ++w)
    for (int lane = 0; lane < kWeightsPerWord; ++lane) set_weight_lane(weights[w], lane, rng.exact_normal(0, 1.0 / 14));
  for (long i = params_size(m); i < long(params.size()); ++i) params[i] = rng.exact_normal(0, 0.05);
  for (int t = 0; t < m.num_tasks; ++t)
    for (int d = 0; d < D; ++d) params[p_head_ln(m, head_channels, t) + d] = 1 + rng.exact_normal(0, 0.1);
  const std::vector<pixel_word_t> image_words = tb::pixel_words(image);

  std::vector<fm_t> x(n * D), xn(n * D), qkv(3 * n * D), hidden(n * m.mlp_hidden);
  std::vector<ap_uint<32>> trace(trace_size(m, 1));
  std::vector<fm_t> outputs(head_output_words(m, 16) * kWordElems);
  // The heads' scratch maps: conv_3's output (64 h x 64 w x C) and an upsampled map.
  hidden.resize(std::max(hidden.size(), size_t(64) * m.grid_h * m.grid_w * head_channels));
  qkv.resize(std::max(qkv.size(), size_t(64) * m.grid_h * m.grid_w * head_channels));
  bool tasks_differ = false, finite_spread = true;
  uint64_t first_task_hash = 0;
  const std::vector<weight_word_t> packed = kHeadWinograd ? tb::winograd_heads(weights, m, head_channels) : weights;
  if (packed.empty()) {
    std::printf("FAIL: a drawn head tap's Winograd term leaves wt_t's range\n");
    return 1;
  }
  const tb::WeightPorts ports = tb::split_ports(packed);
  // Twice: as the emulation runs (the MAC array and the weight fetch in a CPU's order), then with a
  // cycle ledger attached, which runs the pipelined loops Vitis synthesises; both must give the
  // same lines.
  std::string lines[2];
  for (int pipelined = 0; pipelined < 2; ++pipelined) {
    static edgemoe_ledger::Ledger ledger;
    edgemoe_ledger::active() = pipelined ? &ledger : nullptr;
    for (int task = 0; task < m.num_tasks; ++task) {
      m3vit_backbone(image_words.data(), ports.even.data(), ports.odd.data(), params.data(), tb::words(x), tb::words(xn), tb::words(qkv), tb::words(hidden),
                     tb::words(outputs), trace.data(), 1, D, m.heads, m.grid_h, m.grid_w, m.patch, m.depth,
                     m.mlp_hidden, m.experts, m.expert_hidden, m.top_k, m.num_tasks, m.moe_mask, task,
                     fm_t(0.125), 1, 0, 2 * m.depth, head_channels, head_outs[task], edgemoe_ledger::kHeadStages);
      uint64_t x_hash = 1469598103934665603ull, trace_hash = 1469598103934665603ull, head_hash = 1469598103934665603ull;
      double head_sq = 0;
      for (long i = 0; i < head_output_words(m, head_outs[task]) * kWordElems; ++i) {
        head_hash = fnv1a(head_hash, uint64_t(outputs[i].raw()));
        head_sq += outputs[i].to_double() * outputs[i].to_double();
      }
      finite_spread &= head_sq > 0;
      double sum_sq = 0;
      for (const fm_t& v : x) {
        x_hash = fnv1a(x_hash, uint64_t(v.raw()));
        sum_sq += v.to_double() * v.to_double();
      }
      for (const ap_uint<32>& v : trace) trace_hash = fnv1a(trace_hash, v.to_uint64());
      char line[160];
      std::snprintf(line, sizeof line, "task %d: output %016llx, moe trace %016llx, head %016llx\n", task,
                    (unsigned long long)x_hash, (unsigned long long)trace_hash, (unsigned long long)head_hash);
      lines[pipelined] += line;
      const double rms = std::sqrt(sum_sq / x.size());
      finite_spread &= rms > 0.1 && rms < 100;
      if (task == 0) first_task_hash = x_hash;
      else tasks_differ |= x_hash != first_task_hash;
    }
  }
  edgemoe_ledger::active() = nullptr;
  std::printf("%s", lines[0].c_str());
  tb::expect(lines[0] == lines[1], "the pipelined loops (a cycle ledger attached) compute the emulation's bits:\n" + lines[1]);
  // A comparison of hashes only means something if the output is a real activation.
  tb::expect(finite_spread, "backbone output RMS within (0.1, 100)");
  tb::expect(tasks_differ, "the two task gates give different outputs");
  std::printf("config %s, attention P %d\n", EDGEMOE_CFG_NAME, kAttnP);
  return tb::finish();
}
