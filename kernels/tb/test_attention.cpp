// Reordered attention (both passes) against double-precision softmax attention computed on the
// same quantised q, k, v; token counts around the slot count P (staggered refills, wrap, the last
// partial block), Edge-MoE's 129, and the 1,025 and 1,201 tokens emu runs for PASCAL and NYUD, where
// the sums are longest. Every bound is derived per row from the kernel's formats:
//   scores: fm_t(q.k) and its product with scale each truncate to fm_t: e_s = 2^-22 (1 + scale);
//           the running max is a kernel score: |max error| <= e_s.
//   exp:    |error| <= kExpRel e^x + 2^-24 (kExpRel = 2e-6, tb/test_fixed_math) at an argument
//           off by <= 2 e_s (score and max), so each p_j is off by p_j (kExpRel + 2 e_s) + 2^-24.
//   sum:    pass 1 rescales the running sum at each of the row's R running-max updates (the key
//           order is rotated: slot s starts at key s), multiplying every earlier term by one more
//           exp; each rescaled sum truncates to 24 fraction bits. Relative error of the sum:
//             rel_S = (R + 1) kExpRel + 2 e_s + (N + R) 2^-24 / S,
//           and 1/sum adds the reciprocal's 3e-7 (tb/test_fixed_math).
//   output: sum_j dp_j |v_j| / S + |o| (rel_S + 3e-7) + 2^-29 (acc >> e) + 2^-22 (fm_t).
// The measured error must stay within the bound on every row; the printed ratios show how tight.
#include <algorithm>
#include <cmath>
#include <vector>

#include "src/attention.h"
#include "tb_util.h"
#include "tb_weights.h"

using namespace edgemoe_hls;

namespace {
SoftmaxTable g_info;  // the attention unit's on-chip row statistics
constexpr double kExpRel = 2e-6;
constexpr double kRecipRel = 3e-7;

// q, k, v as the attention unit sees them, computed here without ap_fixed: q_t keeps 16 fraction
// bits (floor) and saturates at [-128, 128 - 2^-16]; kv_t rounds to 12 fraction bits (half up) and
// saturates at [-32, 32 - 2^-12] (AP_SAT), so a wrapping or truncating kv_t fails the bounds.
double clamp_to(double x, double lo, double hi) { return std::min(std::max(x, lo), hi); }
double q_operand(fm_t v) {
  const double lsb = std::ldexp(1.0, -16);
  return std::floor(clamp_to(v.to_double(), -128.0, 128.0 - lsb) / lsb) * lsb;
}
double kv_operand(fm_t v) {
  const double lsb = std::ldexp(1.0, -12);
  return clamp_to(std::floor(v.to_double() / lsb + 0.5) * lsb, -32.0, 32.0 - lsb);
}

// saturate: v entries beyond +-32 (every 5th), and q entries beyond +-128 in each head's first dim on
// every third row (with that dim of k kept small, so that scores stay inside fm_t).
void check(int n, int dim, int heads, unsigned seed, bool saturate = false) {
  tb::Rng rng(seed);
  const int hd = dim / heads;
  std::vector<fm_t> qkv(size_t(n) * 3 * dim), out(size_t(n) * dim);
  for (auto& v : qkv) v = rng.normal(0, 1.5);
  int saturated = 0;
  if (saturate) {
    for (int i = 0; i < n; ++i)
      for (int h = 0; h < heads; ++h) {
        fm_t* row = &qkv[size_t(i) * 3 * dim];
        if (i % 3 == 0) row[h * hd] = (i % 2 ? -1 : 1) * rng.uniform(130, 400), ++saturated;
        row[dim + h * hd] = rng.normal(0, 0.05);
        for (int d = 0; d < hd; d += 5) row[2 * dim + h * hd + d] = (d % 2 ? -1 : 1) * rng.uniform(33, 400), ++saturated;
      }
  }
  const fm_t scale = 1.0 / std::sqrt(double(hd));
  run_attention(tb::words(qkv), n, dim, heads, scale, tb::words(out), g_info);
  const double lsb22 = std::ldexp(1.0, -22), lsb24 = std::ldexp(1.0, -24), lsb29 = std::ldexp(1.0, -29);
  const double e_s = lsb22 * (1 + scale.to_double());
  double ratio_max = 0, ratio_sum = 0, ratio_out = 0, err_out = 0, err_sum = 0;
  std::vector<double> s(n), p(n), q(hd), v(size_t(n) * hd);
  for (int h = 0; h < heads; ++h) {
    for (int j = 0; j < n; ++j)
      for (int d = 0; d < hd; ++d) v[size_t(j) * hd + d] = kv_operand(qkv[size_t(j) * 3 * dim + 2 * dim + h * hd + d]);
    for (int i = 0; i < n; ++i) {
      for (int d = 0; d < hd; ++d) q[d] = q_operand(qkv[size_t(i) * 3 * dim + h * hd + d]);
      double m = -1e300;
      for (int j = 0; j < n; ++j) {
        double dot = 0;
        for (int d = 0; d < hd; ++d) dot += q[d] * kv_operand(qkv[size_t(j) * 3 * dim + dim + h * hd + d]);
        s[j] = dot * scale.to_double();
        m = std::max(m, s[j]);
      }
      double S = 0;
      for (int j = 0; j < n; ++j) S += (p[j] = std::exp(s[j] - m));
      int updates = 0;  // running-max updates in the kernel's key order: i mod P, ..., n-1, 0, ...
      double running = -1e300;
      for (int t = 0; t < n; ++t) {
        const double sj = s[(i % kAttnP + t) % n];
        if (t > 0 && sj > running) ++updates;
        running = t == 0 ? sj : std::max(running, sj);
      }
      const double rel_S = (updates + 1) * kExpRel + 2 * e_s + (n + updates) * lsb24 / S;
      const RowSoftmax& st = g_info[i][h];
      ratio_max = std::max(ratio_max, std::abs(st.max.to_double() - m) / e_s);
      const double inv_err = std::abs(st.mant.to_double() * std::ldexp(1.0, -st.exp2) * S - 1.0);
      err_sum = std::max(err_sum, inv_err);
      ratio_sum = std::max(ratio_sum, inv_err / (rel_S + kRecipRel));
      for (int d = 0; d < hd; ++d) {
        double o = 0, dp_v = 0;
        for (int j = 0; j < n; ++j) {
          const double vj = v[size_t(j) * hd + d];
          o += p[j] * vj;
          dp_v += (p[j] * (kExpRel + 2 * e_s) + lsb24) * std::abs(vj);
        }
        o /= S;
        const double bound = dp_v / S + std::abs(o) * (rel_S + kRecipRel) + lsb29 + lsb22;
        const double err = std::abs(o - out[size_t(i) * dim + h * hd + d].to_double());
        err_out = std::max(err_out, err);
        ratio_out = std::max(ratio_out, err / bound);
      }
    }
  }
  char name[112];
  if (saturate) tb::expect(saturated > 0, "the saturation case has operands beyond q_t's and kv_t's ranges");
  std::printf("%sN=%d D=%d H=%d: max errors: 1/sum %.3g relative, output %.3g absolute\n", saturate ? "saturating q, v: " : "", n, dim,
              heads, err_sum,
              err_out);
  std::snprintf(name, sizeof name, "N=%d D=%d H=%d: running max error / e_s", n, dim, heads);
  tb::bound(name, ratio_max, 1.0);
  std::snprintf(name, sizeof name, "N=%d D=%d H=%d: 1/sum error / its bound (worst row)", n, dim, heads);
  tb::bound(name, ratio_sum, 1.0);
  std::snprintf(name, sizeof name, "N=%d D=%d H=%d: output error / its bound (worst row)", n, dim, heads);
  tb::bound(name, ratio_out, 1.0);
}

// The emulation's split of the row blocks over two threads computes exactly what one thread does
// (the cycle ledger, attached, turns the split off).
void check_block_split(int n, int dim, int heads) {
  tb::Rng rng(9);
  std::vector<fm_t> qkv(n * 3 * dim), a(n * dim), b(n * dim);
  for (auto& v : qkv) v = rng.normal(0, 1.5);
  const fm_t scale = 0.125;
  static edgemoe_ledger::Ledger ledger;
  edgemoe_ledger::active() = &ledger;
  run_attention(tb::words(qkv), n, dim, heads, scale, tb::words(a), g_info);
  edgemoe_ledger::active() = nullptr;
  run_attention(tb::words(qkv), n, dim, heads, scale, tb::words(b), g_info);
  int differing = 0;
  for (int i = 0; i < n * dim; ++i) differing += !(a[i] == b[i]);
  tb::expect(differing == 0, "run_attention's block split is bit-identical to one thread (H=" + std::to_string(heads) + ")");
}
}  // namespace

int main() {
  std::printf("P = %d query rows in flight\n", kAttnP);
  check(1, 64, 1, 1);
  check(kAttnP - 1, 64, 2, 2);
  check(kAttnP, 64, 2, 3);
  check(kAttnP + 1, 128, 2, 4);
  check(3 * kAttnP + 2, 96, 3, 5);
  check(129, 192, 3, 6);  // Edge-MoE's token count
  check(37, 128, 2, 10, /*saturate=*/true);
  if (EDGEMOE_MAX_TOKENS >= 1201) {
    check(1025, 128, 2, 7);  // PASCAL 512x512 (two ViT-S heads' worth of dims)
    check(1201, 128, 2, 8);  // NYUD 480x640, the emulation build's maximum
  }
  check_block_split(37, 192, 3);
  check_block_split(21, 128, 2);
  return tb::finish();
}
