// Unit tests of the CPU backend's hand-written kernels against naive double-precision models.
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/attention.h"
#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/elementwise.h"
#include "backends/cpu/isa/simd.h"  // this file's own ISA namespace (EDGEMOE_ISA_NS, CMakeLists.txt)
#include "expect.h"

using namespace edgemoe::cpu;
using namespace edgemoe::cpu::EDGEMOE_ISA_NS;

namespace {
using edgemoe_test::expect;
std::vector<float> random_vector(size_t n, unsigned seed, float scale = 1.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// Max relative error of the vector exp over [-87, 0] (sampled densely).
void test_exp() {
  double worst = 0;
  for (int i = 0; i < 2000000; i += kLanes) {
    vfloat x;
    for (int l = 0; l < kLanes; ++l) x[l] = -87.0f * static_cast<float>(i + l) / 2000000.f;
    const vfloat y = vexp_nonpositive(x);
    for (int l = 0; l < kLanes; ++l) {
      const double ref = std::exp(static_cast<double>(x[l]));
      worst = std::max(worst, std::abs(y[l] - ref) / ref);
    }
  }
  std::printf("vexp (%d lanes): max relative error %.3g over [-87, 0]\n", kLanes, worst);
  // Bound 1e-7: the polynomial's design error plus fp32 rounding of its Horner steps (measured
  // 7.9e-8, README "8e-8"); a polynomial one degree lower (~2e-6) or a float-only range reduction
  // fails it.
  expect(worst < 1e-7, "vexp relative error < 1e-7");
}

void test_attention(int64_t batch, int64_t tokens, int64_t dim, int64_t heads) {
  const int64_t hd = dim / heads;
  const auto qkv = random_vector(batch * tokens * 3 * dim, 7, 1.0f);
  std::vector<float> out(batch * tokens * dim);
  FusedAttention attn;
  attn.run(qkv.data(), batch, tokens, dim, heads, out.data(), 2);
  double worst = 0, peak = 0;
  std::vector<double> s(tokens);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < tokens; ++i) {
        const float* q = &qkv[(b * tokens + i) * 3 * dim + h * hd];
        double m = -1e300, sum = 0;
        for (int64_t j = 0; j < tokens; ++j) {
          const float* k = &qkv[(b * tokens + j) * 3 * dim + dim + h * hd];
          double dot = 0;
          for (int64_t d = 0; d < hd; ++d) dot += static_cast<double>(q[d]) * k[d];
          s[j] = dot / std::sqrt(static_cast<double>(hd));
          m = std::max(m, s[j]);
        }
        for (int64_t j = 0; j < tokens; ++j) sum += (s[j] = std::exp(s[j] - m));
        for (int64_t d = 0; d < hd; ++d) {
          double o = 0;
          for (int64_t j = 0; j < tokens; ++j) o += s[j] * qkv[(b * tokens + j) * 3 * dim + 2 * dim + h * hd + d];
          o /= sum;
          worst = std::max(worst, std::abs(o - out[(b * tokens + i) * dim + h * hd + d]));
          peak = std::max(peak, std::abs(o));
        }
      }
  const std::string name = "attention B" + std::to_string(batch) + " N" + std::to_string(tokens) + " D" +
                           std::to_string(dim) + " H" + std::to_string(heads);
  std::printf("%s: max abs error %.3g (peak %.3g)\n", name.c_str(), worst, peak);
  // Each output is a convex combination of v (|v| <= ~5 here) with fp32 weights: exp's relative
  // error (< 1e-7), the fp32 sum over N keys (~sqrt(N) * 6e-8 for these sign-mixed terms) and the
  // division give ~1e-7 * |v|max; measured 3-6e-7. Bound 2e-6 (relative to max(1, |o|max)).
  expect(worst <= 2e-6 * std::max(1.0, peak), name + " within 2e-6 of float64");
}

void test_upsample() {
  const int64_t H = 5, W = 3, C = 16;
  const auto src = random_vector(H * W * C, 3);
  std::vector<float> dst(4 * H * W * C);
  upsample2x_hwc(src.data(), dst.data(), 1, H, W, C, 2);
  double worst = 0;
  auto coord = [](int64_t o, int64_t n, int64_t* i0, int64_t* i1, double* l) {  // PyTorch's rule
    double s = (o + 0.5) / 2.0 - 0.5;
    if (s < 0) s = 0;
    *i0 = static_cast<int64_t>(s);
    *i1 = *i0 + (*i0 < n - 1 ? 1 : 0);
    *l = s - *i0;
  };
  for (int64_t oy = 0; oy < 2 * H; ++oy)
    for (int64_t ox = 0; ox < 2 * W; ++ox) {
      int64_t y0, y1, x0, x1;
      double ly, lx;
      coord(oy, H, &y0, &y1, &ly);
      coord(ox, W, &x0, &x1, &lx);
      for (int64_t c = 0; c < C; ++c) {
        auto at = [&](int64_t y, int64_t x) { return static_cast<double>(src[(y * W + x) * C + c]); };
        const double ref = (1 - ly) * ((1 - lx) * at(y0, x0) + lx * at(y0, x1)) + ly * ((1 - lx) * at(y1, x0) + lx * at(y1, x1));
        worst = std::max(worst, std::abs(ref - dst[((oy * 2 * W) + ox) * C + c]));
      }
    }
  expect(worst < 1e-6, "bilinear x2 matches the half-pixel rule");
}

void test_routing() {
  // 3 tokens, 4 experts, top-2: check queues, token order and unnormalised scores.
  const std::vector<float> logits = {0.f, 1.f, 2.f, 3.f, 3.f, 2.f, 1.f, 0.f, 1.f, 1.f, 5.f, 0.f};
  ExpertQueues q;
  route_tokens(logits.data(), 3, 4, 2, &q);
  // token 0 -> experts 3, 2; token 1 -> 0, 1; token 2 -> 2, then 0 (0 and 1 tie: lowest index wins)
  expect(q.offsets == std::vector<int64_t>({0, 2, 3, 5, 6}), "per-expert queue sizes");
  expect(q.rows == std::vector<int64_t>({1, 2, 1, 0, 2, 0}), "queues hold tokens in order");
  const double z = std::exp(0.) + std::exp(1.) + std::exp(2.) + std::exp(3.);
  expect(std::abs(q.scores[5] - std::exp(3.) / z) < 1e-6, "scores are softmax over all experts");
  double total = 0;
  for (float s : q.scores) total += s;
  expect(total < 3.0 - 0.1, "top-k scores are not renormalised");
}

// NaN logits (an overflowed activation) once made top-k pick no expert and index queue -1; the
// probabilities had a fixed 256-slot stack array. Every row must still get k distinct experts.
void test_routing_robustness() {
  const float nan = std::nanf("");
  const std::vector<float> logits = {nan, nan, nan, nan, 1.f, nan, 2.f, 0.f};
  ExpertQueues q;
  route_tokens(logits.data(), 2, 4, 3, &q);
  expect(q.offsets.back() == 6 && q.rows.size() == 6, "NaN rows still fill k queue slots each");
  bool in_range = true;
  for (size_t e = 0; e + 1 < q.offsets.size(); ++e) in_range &= q.offsets[e] <= q.offsets[e + 1];
  expect(in_range, "queue offsets are monotone with NaN logits");

  const int64_t experts = 1000;
  std::vector<float> wide(2 * experts, 0.f);
  wide[999] = 5.f;
  wide[experts + 700] = 5.f;
  route_tokens(wide.data(), 2, experts, 1, &q);
  expect(q.offsets[1000] - q.offsets[999] == 1 && q.offsets[701] - q.offsets[700] == 1,
         "routing over 1000 experts picks the largest logit");
}
}  // namespace

int main() {
  test_exp();
  test_attention(1, 129, 192, 3);
  test_attention(2, 37, 64, 2);
  test_attention(1, 70, 96, 2);  // head dim 48: generic path
  test_upsample();
  test_routing();
  test_routing_robustness();
  return edgemoe_test::report();
}
