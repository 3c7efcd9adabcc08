// exp, reciprocal, rsqrt and GELU over their whole input ranges, against double precision.
#include <cmath>

#include "src/fixed_math.h"
#include "tb_util.h"

using namespace edgemoe_hls;

int main() {
  double worst = 0, worst_rel = 0;
  const double lsb24 = std::ldexp(1.0, -24);
  for (long i = 0; i <= (1L << 22) * 32; i += 97) {  // every 97th fm LSB over [-32, 0]
    fm_diff_t x;
    x.range() = uint64_t(-i) & ((uint64_t(1) << 33) - 1);
    const double err = std::abs(exp_nonpositive(x).to_double() - std::exp(x.to_double()));
    worst = std::max(worst, err);
    // The error model the attention bounds use (tb/test_attention.cpp): the table interpolation is
    // relative to 2^f in [1, 2), the shift by 2^-n keeps it relative, the result truncates to
    // unit_t (2^-24): |error| <= kExpRel e^x + 2^-24.
    worst_rel = std::max(worst_rel, std::max(0.0, err - lsb24) / std::exp(x.to_double()));
  }
  tb::bound("exp(x), x in [-32, 0]: max abs error", worst, 1.5e-6);
  tb::bound("exp(x): max (|error| - 2^-24) / e^x  (kExpRel)", worst_rel, 2e-6);

  worst = 0;
  for (double v = 1.0; v < 4095.0; v = v * 1.000173 + 1e-7) {
    const sum_t x = v;
    unit_t mant;
    int e;
    reciprocal(x, mant, e);
    worst = std::max(worst, std::abs(mant.to_double() * std::ldexp(1.0, -e) * x.to_double() - 1.0));
  }
  tb::bound("1/x, x in [1, 4096): max relative error", worst, 3e-7);

  worst = 0;
  for (double v = 1e-8; v < 1e6; v *= 1.000173) {
    const var_t x = v;
    if (x == var_t(0)) continue;
    unit_t mant;
    int e;
    reciprocal_sqrt(x, mant, e);
    worst = std::max(worst, std::abs(mant.to_double() * std::ldexp(1.0, -e) * std::sqrt(x.to_double()) - 1.0));
  }
  tb::bound("1/sqrt(x), x in [2^-28, 2^20): max relative error", worst, 3e-7);

  worst = 0;
  double worst_at = 0;
  for (double v = -16.0; v <= 16.0; v += 1.0 / 4096) {
    const fm_t x = v;
    const double xd = x.to_double(), exact = 0.5 * xd * (1.0 + std::erf(xd / std::sqrt(2.0)));
    const double err = std::abs(gelu(x).to_double() - exact);
    if (err > worst) worst = err, worst_at = xd;
  }
  std::printf("  (GELU's worst error is at x = %.4f)\n", worst_at);
  tb::bound("GELU(x), x in [-16, 16]: max abs error vs exact erf GELU", worst, 8e-6);
  return tb::finish();
}
