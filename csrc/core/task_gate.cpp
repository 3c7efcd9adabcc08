#include "core/task_gate.h"

#include <cmath>

namespace edgemoe {

std::vector<float> task_gate_logit_bias(const ModelWeights& w, const ModelConfig& c, int64_t block, int64_t task_id) {
  const int64_t G = c.gate_task_dim, T = c.gate_num_tasks, D = c.embed_dim, E = c.num_experts;
  const int64_t one_hot = c.tasks[task_id].gate_index;
  const float* fc1 = w.get("backbone.gate_task_represent.fc1.weight").data.data();  // [G, T]
  const float* b1 = w.get("backbone.gate_task_represent.fc1.bias").data.data();
  const float* fc2 = w.get("backbone.gate_task_represent.fc2.weight").data.data();  // [G, G]
  const float* b2 = w.get("backbone.gate_task_represent.fc2.bias").data.data();
  const float* gamma = w.get("backbone.gate_task_represent.norm.weight").data.data();
  const float* beta = w.get("backbone.gate_task_represent.norm.bias").data.data();
  std::vector<double> h(G), f(G);
  for (int64_t g = 0; g < G; ++g) {
    const double v = fc1[g * T + one_hot] + b1[g];
    h[g] = 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)));
  }
  double mean = 0, var = 0;
  for (int64_t o = 0; o < G; ++o) {
    double s = b2[o];
    for (int64_t i = 0; i < G; ++i) s += double(fc2[o * G + i]) * h[i];
    f[o] = s;
    mean += s / G;
  }
  for (int64_t o = 0; o < G; ++o) var += (f[o] - mean) * (f[o] - mean) / G;
  const double rstd = 1.0 / std::sqrt(var + kBackboneLayerNormEps);
  const float* task_rows = w.get(block_key(block, "mlp.gate.w_gate")).data.data() + D * E;  // rows D.. of [D+G, E]
  std::vector<float> bias(E, 0.f);
  for (int64_t g = 0; g < G; ++g) {
    const double feature = (f[g] - mean) * rstd * gamma[g] + beta[g];
    for (int64_t e = 0; e < E; ++e) bias[e] += float(feature * task_rows[g * E + e]);
  }
  return bias;
}

}  // namespace edgemoe
