// The MoE layer: gate and patch reordering against a double golden model, queue order and
// unnormalised scores, each active expert fetched once (fc1 and fc2), inactive ones never, and the
// layer output against a double golden model of the same quantised weights.
#include <cmath>
#include <vector>

#include "src/moe.h"
#include "tb_util.h"

using namespace edgemoe_hls;

static LinearWeights g_ping, g_pong;
static ExpertQueues g_queues;

int main() {
  tb::Rng rng(3);
  // One MoE block (block 0) in a model of depth 1, 8 experts, top-2, 2 tasks.
  ModelDims m = {64, 2, 3, 5, 16, 1, 0, 8, 48, 2, 2, 1u};
  const int n = tokens(m), D = m.dim, E = m.experts, Hm = m.expert_hidden, task = 1;
  std::vector<wt_t> weights(weights_size(m));
  std::vector<fm_t> params(params_size(m));
  for (auto& v : weights) v = rng.normal(0, 0.12);
  for (auto& v : params) v = rng.normal(0, 0.1);
  // Expert 5 never wins: its gate row for the task is strongly negative against positive tokens.
  std::vector<fm_t> xn(n * D), x(n * D, fm_t(0)), hidden(n * Hm);
  for (auto& v : xn) v = std::abs(rng.normal(0.5, 1));
  for (int d = 0; d < D; ++d) weights[w_gate(m, 0, task) + 5 * D + d] = -0.5;
  std::vector<uint32_t> trace_words(3 * E);
  std::vector<ap_uint<32>> trace(3 * E);
  moe_layer(xn.data(), x.data(), hidden.data(), n, m, 0, task, weights.data(), params.data(), g_ping, g_pong, g_queues,
            trace.data());

  // Golden routing and output.
  std::vector<int> count(E, 0);
  std::vector<double> expected(n * D, 0.0);
  int routing_mismatches = 0, queue_order_errors = 0;
  std::vector<int> seen(E, 0);
  double worst_score = 0;
  for (int t = 0; t < n; ++t) {
    std::vector<double> logit(E), p(E);
    double mx = -1e300, total = 0;
    for (int e = 0; e < E; ++e) {
      double s = params[p_gate_bias(m, 0, task) + e].to_double();
      for (int d = 0; d < D; ++d) s += mac_in_t(xn[t * D + d]).to_double() * weights[w_gate(m, 0, task) + e * D + d].to_double();
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
      worst_score = std::max(worst_score, std::abs(g_queues.score[best][slot].to_double() - p[best]));
      // expert output on the quantised weights
      std::vector<double> h(Hm);
      for (int o = 0; o < Hm; ++o) {
        double s = params[p_expert_bias1(m, 0, best) + o].to_double();
        for (int d = 0; d < D; ++d) s += mac_in_t(xn[t * D + d]).to_double() * weights[w_expert_fc1(m, 0, best) + o * D + d].to_double();
        h[o] = 0.5 * s * (1 + std::erf(s / std::sqrt(2.0)));
      }
      for (int o = 0; o < D; ++o) {
        double s = params[p_expert_bias2(m, 0, best) + o].to_double();
        for (int i = 0; i < Hm; ++i) s += h[i] * weights[w_expert_fc2(m, 0, best) + o * Hm + i].to_double();
        expected[t * D + o] += g_queues.score[best][slot].to_double() * s;
      }
    }
  }
  for (int e = 0; e < E; ++e) routing_mismatches += std::abs(int(trace[e].to_uint()) - count[e]);
  tb::expect(routing_mismatches == 0, "per-expert token counts equal the golden top-k routing");
  tb::expect(queue_order_errors == 0, "each queue lists its tokens in token order");
  tb::bound("gate scores (softmax over all experts, not renormalised): abs error", worst_score, 2e-6);
  tb::expect(count[5] == 0 && trace[5].to_uint() == 0, "expert 5 receives no token");
  int active = 0;
  for (int e = 0; e < E; ++e) {
    const unsigned tokens_e = trace[e].to_uint(), fc1 = trace[E + e].to_uint(), fc2 = trace[2 * E + e].to_uint();
    active += tokens_e > 0;
    tb::expect(tokens_e > 0 ? (fc1 == 1 && fc2 == 1) : (fc1 == 0 && fc2 == 0),
               "expert " + std::to_string(e) + ": weights fetched once if active, never if not");
  }
  std::printf("%d of %d experts active\n", active, E);
  double worst = 0, peak = 0;
  for (int i = 0; i < n * D; ++i) {
    worst = std::max(worst, std::abs(x[i].to_double() - expected[i]));
    peak = std::max(peak, std::abs(expected[i]));
  }
  tb::bound("MoE output (score-weighted sum of expert outputs): max abs error", worst, 2e-5);
  std::printf("  (output peak %.3g)\n", peak);
  return tb::finish();
}
