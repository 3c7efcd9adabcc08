// The MoE layer: gate and patch reordering against a double golden model, queue order and
// unnormalised scores, each active expert fetched once (fc1 and fc2), inactive ones never, and the
// layer output against a double golden model of the same quantised weights that weights each
// expert by its *own* gate probabilities (never the kernel's). Bounds, derived from moe.h and
// linear.h's formats:
//   gate: logits are exact MAC sums truncated to fm_t (2^-22), so differences of two are off by
//         <= 2^-21; exp adds kExpRel relative + 2^-24 (tb/test_fixed_math); the sum of E terms is
//         exact in sum_t, so its relative error is <= kExpRel + E 2^-24; 1/sum adds 3e-7; the
//         product and shift truncate twice to unit_t (2 * 2^-24):
//           dp <= p (2 kExpRel + 2^-21 + E 2^-24 + 3e-7) + 3 * 2^-24
//   expert: fc1 sums are exact, truncated to fm_t (2^-22) before GELU (slope <= 1.13); GELU's
//         table is off by <= kGelu = 8e-6 (tb/test_fixed_math); its fm_t output feeds fc2 as mac_in_t
//         (18 fraction bits, 2^-18): each hidden value is off by <= kGelu + 1.13 2^-22 + 2^-22 + 2^-18,
//         and fc2's output by sum_i |w2_oi| times that, plus its fm_t truncation (2^-22).
//   output: per chosen expert, dp |y| + p dy + 2^-22 (the weighted value's fm_t truncation).
#include <cmath>
#include <string>
#include <vector>

#include "src/moe.h"
#include "access_check_tb.h"
#include "tb_util.h"
#include "tb_weights.h"

using namespace edgemoe_hls;

namespace {

WeightBuffer g_ping, g_pong;
ExpertQueues g_queues;
LineBuffer g_line;

// One MoE block (block 0) of `m` for `task`. Expert `shunned` never wins (its gate row strongly
// negative against positive tokens); expert `favoured`, if any, wins every token (strongly positive)
// and the next expert is every token's second choice.
void check_layer(const ModelDims& m, int task, unsigned seed, int shunned, int favoured, const std::string& label) {
  std::printf("--- %s: %d tokens, %d experts, top-%d\n", label.c_str(), tokens(m), m.experts, m.top_k);
  tb::Rng rng(seed);
  const int n = tokens(m), D = m.dim, E = m.experts, Hm = m.expert_hidden;
  std::vector<weight_word_t> weights(weights_size(m));
  std::vector<fm_t> params(params_size(m));
  for (auto& word : weights)
    for (int lane = 0; lane < kWeightsPerWord; ++lane) set_weight_lane(word, lane, rng.normal(0, 0.12));
  // The read side the kernels use against the format's definition, lane by lane.
  int lane_errors = 0;
  for (const auto& word : weights)
    for (int lane = 0; lane < kWeightsPerWord; ++lane)
      lane_errors += weight_lane(word, lane).range() != tb::unpack_lane(word, lane).range();
  tb::expect(lane_errors == 0, label + ": weight_lane reads every lane as the packed format defines it");
  for (auto& v : params) v = rng.normal(0, 0.1);
  std::vector<fm_t> xn(n * D), x(n * D, fm_t(0)), hidden(n * Hm);
  for (auto& v : xn) v = std::abs(rng.normal(0.5, 1));
  for (int d = 0; d < D && shunned >= 0; ++d) tb::set_weight_at(weights, w_gate(m, 0, task), D, shunned, d, -0.5);
  // ... and the runner-up decisively second, so that no token's top-k sits near a tie.
  for (int d = 0; d < D && favoured >= 0; ++d) {
    tb::set_weight_at(weights, w_gate(m, 0, task), D, favoured, d, 0.5);
    for (int e = 0; e < E; ++e)
      if (e != favoured) tb::set_weight_at(weights, w_gate(m, 0, task), D, e, d, e == (favoured + 1) % E ? 0.25 : -0.25);
  }
  std::vector<uint32_t> trace_words(3 * E);
  std::vector<ap_uint<32>> trace(3 * E);
  const tb::WeightPorts ports = tb::split_ports(weights);
  moe_layer(nullptr, tb::words(x), tb::words(xn), nullptr, tb::words(hidden), n, m, 0, task, ports.even.data(),
            ports.odd.data(), params.data(), g_ping, g_pong, g_queues, g_line, trace.data());

  // Golden routing and output.
  std::vector<int> count(E, 0);
  constexpr double kExpRel = 2e-6, kGelu = 8e-6;
  const double lsb22 = std::ldexp(1.0, -22), lsb24 = std::ldexp(1.0, -24), lsb18 = std::ldexp(1.0, -18);
  std::vector<double> expected(n * D, 0.0), out_bound(n * D, 0.0);
  double score_ratio = 0;
  int routing_mismatches = 0, queue_order_errors = 0;
  std::vector<int> seen(E, 0);
  double worst_score = 0;
  for (int t = 0; t < n; ++t) {
    std::vector<double> logit(E), p(E);
    double mx = -1e300, total = 0;
    for (int e = 0; e < E; ++e) {
      double s = params[p_gate_bias(m, 0, task) + e].to_double();
      for (int d = 0; d < D; ++d) s += mac_in_t(xn[t * D + d]).to_double() * tb::weight_at(weights, w_gate(m, 0, task), D, e, d).to_double();
      logit[e] = s;
      mx = std::max(mx, s);
    }
    for (int e = 0; e < E; ++e) total += (p[e] = std::exp(logit[e] - mx));
    for (int e = 0; e < E; ++e) p[e] /= total;
    std::vector<bool> taken(E, false);
    for (int j = 0; j < m.top_k; ++j) {
      int best = -1;
      for (int e = 0; e < E; ++e)
        if (!taken[e] && (best < 0 || p[e] > p[best])) best = e;
      taken[best] = true;
      ++count[best];
      // the kernel's queue for `best` must list this token next
      const int slot = seen[best]++;
      if (slot >= g_queues.length[best] || g_queues.token[best][slot] != t) {
        ++queue_order_errors;
        continue;
      }
      const double dp = p[best] * (2 * kExpRel + 2 * lsb22 + E * lsb24 + 3e-7) + 3 * lsb24;
      worst_score = std::max(worst_score, std::abs(g_queues.score[best][slot].to_double() - p[best]));
      score_ratio = std::max(score_ratio, std::abs(g_queues.score[best][slot].to_double() - p[best]) / dp);
      // expert output on the quantised weights
      std::vector<double> h(Hm);
      for (int o = 0; o < Hm; ++o) {
        double s = params[p_expert_bias1(m, 0, best) + o].to_double();
        for (int d = 0; d < D; ++d) s += mac_in_t(xn[t * D + d]).to_double() * tb::weight_at(weights, w_expert_fc1(m, 0, best), D, o, d).to_double();
        h[o] = 0.5 * s * (1 + std::erf(s / std::sqrt(2.0)));
      }
      const double dh = kGelu + 1.13 * lsb22 + lsb22 + lsb18;
      for (int o = 0; o < D; ++o) {
        double s = params[p_expert_bias2(m, 0, best) + o].to_double(), w2_abs = 0;
        for (int i = 0; i < Hm; ++i) {
          const double w = tb::weight_at(weights, w_expert_fc2(m, 0, best), Hm, o, i).to_double();
          s += h[i] * w;
          w2_abs += std::abs(w);
        }
        expected[t * D + o] += p[best] * s;  // the golden model's own probability
        out_bound[t * D + o] += dp * std::abs(s) + p[best] * (w2_abs * dh + lsb22) + lsb22;
      }
    }
  }
  // The host's replay (gate_token, what traces report for emu/fpga) reproduces the kernel's queues bit
  // for bit: the same tokens, scores and order, picks best first.
  int replay_errors = 0;
  {
    std::vector<wt_t> gate(E * D);
    for (int e = 0; e < E; ++e)
      for (int d = 0; d < D; ++d) gate[e * D + d] = tb::weight_at(weights, w_gate(m, 0, task), D, e, d);
    std::vector<int> slot(E, 0);
    for (int t = 0; t < n; ++t) {
      unit_t prob[EDGEMOE_MAX_EXPERTS];
      int pick[EDGEMOE_MAX_TOP_K];
      gate_token(&xn[t * D], gate.data(), &params[p_gate_bias(m, 0, task)], D, E, m.top_k, prob, pick);
      for (int j = 0; j < m.top_k; ++j) {
        const int e = pick[j], at = slot[e]++;
        if (j > 0 && prob[e].to_double() > prob[pick[j - 1]].to_double()) ++replay_errors;
        if (at >= g_queues.length[e] || g_queues.token[e][at] != t ||
            g_queues.score[e][at].to_double() != prob[e].to_double())
          ++replay_errors;
      }
    }
    for (int e = 0; e < E; ++e) replay_errors += slot[e] != g_queues.length[e];
  }
  tb::expect(replay_errors == 0, "the host's gate replay (gate_token) reproduces the kernel's queues bit for bit");
  for (int e = 0; e < E; ++e) routing_mismatches += std::abs(int(trace[e].to_uint()) - count[e]);
  tb::expect(routing_mismatches == 0, "per-expert token counts equal the golden top-k routing");
  tb::expect(queue_order_errors == 0, "each queue lists its tokens in token order");
  std::printf("gate scores (softmax over all experts, not renormalised): max abs error %.3g\n", worst_score);
  tb::bound("gate scores: worst error / its derived bound", score_ratio, 1.0);
  if (shunned >= 0)
    tb::expect(count[shunned] == 0 && trace[shunned].to_uint() == 0, label + ": the shunned expert receives no token");
  if (favoured >= 0)  // every token queued for one expert: its queue holds the maximum token count
    tb::expect(count[favoured] == n && int(trace[favoured].to_uint()) == n && g_queues.length[favoured] == n,
               label + ": all " + std::to_string(n) + " tokens queued for the favoured expert");
  int active = 0;
  for (int e = 0; e < E; ++e) {
    const unsigned tokens_e = trace[e].to_uint(), fc1 = trace[E + e].to_uint(), fc2 = trace[2 * E + e].to_uint();
    active += tokens_e > 0;
    tb::expect(tokens_e > 0 ? (fc1 == 1 && fc2 == 1) : (fc1 == 0 && fc2 == 0),
               "expert " + std::to_string(e) + ": weights fetched once if active, never if not");
  }
  std::printf("%d of %d experts active\n", active, E);
  double worst = 0, peak = 0, ratio = 0;
  for (int i = 0; i < n * D; ++i) {
    const double err = std::abs(x[i].to_double() - expected[i]);
    worst = std::max(worst, err);
    peak = std::max(peak, std::abs(expected[i]));
    ratio = std::max(ratio, err / out_bound[i]);
  }
  std::printf("MoE output: max abs error %.3g (output peak %.3g)\n", worst, peak);
  tb::bound(label + ": MoE output: worst error / its derived bound", ratio, 1.0);
}

}  // namespace

int main() {
  // A model of depth 1, 8 experts, top-2, 2 tasks.
  check_layer({64, 2, 3, 5, 16, 1, 0, 8, 48, 2, 2, 1u}, 1, 3, 5, -1, "8 experts");
  // The largest token count the build takes (EDGEMOE_MAX_TOKENS, one grid row of it), every token
  // for one expert: a queue one slot short of the maximum loses (or overruns with) the last token.
  check_layer({32, 2, 1, EDGEMOE_MAX_TOKENS - 1, 16, 1, 0, 4, 32, 2, 2, 1u}, 0, 5, -1, 2, "max tokens to one expert");
  // The combine read each word of x once and then wrote it once, for every access
  // (src/access_check.h; linear.h read_residual, write_rows).
  tb::expect(tb::checked_accesses() > 0 && tb::collisions() == 0,
             "the MoE combine touches no word of x after the job wrote it");
  return tb::finish();
}
