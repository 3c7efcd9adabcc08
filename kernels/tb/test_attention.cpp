// Reordered attention (both passes) against double-precision softmax attention computed on the
// same quantised q, k, v; several token counts around the slot count P (staggered refills, wrap,
// the last partial block), several head layouts. Also checks the single-pass softmax statistics.
#include <cmath>
#include <vector>

#include "src/attention.h"
#include "tb_util.h"

using namespace edgemoe_hls;

static void check(int n, int dim, int heads, unsigned seed) {
  tb::Rng rng(seed);
  const int hd = dim / heads;
  std::vector<fm_t> qkv(n * 3 * dim), out(n * dim), info(n * heads * kSoftmaxInfoWords);
  std::vector<fm_t> scores(scores_size(n, heads));
  for (auto& v : qkv) v = rng.normal(0, 1.5);
  const fm_t scale = 1.0 / std::sqrt(double(hd));
  run_attention(qkv.data(), scores.data(), info.data(), n, dim, heads, scale, out.data());
  double worst = 0, worst_max = 0, worst_sum = 0;
  std::vector<double> s(n);
  for (int h = 0; h < heads; ++h)
    for (int i = 0; i < n; ++i) {
      double m = -1e300, total = 0;
      for (int j = 0; j < n; ++j) {
        double dot = 0;
        for (int d = 0; d < hd; ++d)
          dot += qkv_t(qkv[i * 3 * dim + h * hd + d]).to_double() * qkv_t(qkv[j * 3 * dim + dim + h * hd + d]).to_double();
        s[j] = dot * scale.to_double();
        m = std::max(m, s[j]);
      }
      for (int j = 0; j < n; ++j) total += std::exp(s[j] - m);
      const fm_t* st = &info[(i * heads + h) * kSoftmaxInfoWords];
      worst_max = std::max(worst_max, std::abs(st[0].to_double() - m));
      worst_sum = std::max(worst_sum, std::abs(st[1].to_double() * std::ldexp(1.0, -st[2].to_int()) * total - 1.0));
      for (int d = 0; d < hd; ++d) {
        double o = 0;
        for (int j = 0; j < n; ++j) o += std::exp(s[j] - m) * qkv_t(qkv[j * 3 * dim + 2 * dim + h * hd + d]).to_double();
        worst = std::max(worst, std::abs(o / total - out[i * dim + h * hd + d].to_double()));
      }
    }
  char name[96];
  std::snprintf(name, sizeof name, "N=%d D=%d H=%d: running max, abs error", n, dim, heads);
  tb::bound(name, worst_max, 1e-6);
  std::snprintf(name, sizeof name, "N=%d D=%d H=%d: 1/sum, relative error", n, dim, heads);
  tb::bound(name, worst_sum, 1e-5);
  std::snprintf(name, sizeof name, "N=%d D=%d H=%d: output, max abs error", n, dim, heads);
  tb::bound(name, worst, 2e-5);
}

// The emulation's split of the heads over two threads computes exactly the single-call result.
static void check_head_split(int n, int dim, int heads) {
  tb::Rng rng(9);
  std::vector<fm_t> qkv(n * 3 * dim), a(n * dim), b(n * dim), info(n * heads * kSoftmaxInfoWords);
  std::vector<fm_t> scores(scores_size(n, heads));
  for (auto& v : qkv) v = rng.normal(0, 1.5);
  const fm_t scale = 0.125;
  attention_scores(qkv.data(), n, dim, heads, scale, scores.data(), info.data(), 0, heads);
  attention_values(qkv.data(), scores.data(), info.data(), n, dim, heads, a.data(), 0, heads);
  run_attention(qkv.data(), scores.data(), info.data(), n, dim, heads, scale, b.data());
  int differing = 0;
  for (int i = 0; i < n * dim; ++i) differing += !(a[i] == b[i]);
  tb::expect(differing == 0, "run_attention's head split is bit-identical to one call (H=" + std::to_string(heads) + ")");
}

int main() {
  std::printf("P = %d query rows in flight\n", kAttnP);
  check(1, 64, 1, 1);
  check(kAttnP - 1, 64, 2, 2);
  check(kAttnP, 64, 2, 3);
  check(kAttnP + 1, 128, 2, 4);
  check(3 * kAttnP + 2, 96, 3, 5);
  check(129, 192, 3, 6);  // Edge-MoE's token count
  check_head_split(37, 192, 3);
  check_head_split(21, 128, 2);
  return tb::finish();
}
