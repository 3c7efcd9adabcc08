// Single-pass LayerNorm against a two-pass double LayerNorm (eps 1e-6), for several widths and
// input statistics (offset means, small and large variances). The bound is derived per row from
// the kernel's formats (layernorm.h), so it grows with D as the truncations it adds up do:
//   mean:  each c/D term (c = x - x_0) truncates to 30 fraction bits (< 2^-30), 1/D is 2^30/D
//          truncated (its error times sum c is < D |mu_d| 2^-30, mu_d = mean - x_0), and
//          mean = x_0 + mu_d truncates to fm_t (2^-22):
//            e_mean = D 2^-30 (1 + |mu_d|) + 2^-22
//   var (absolute): each c^2/D term is off by < (2^-30 + |c| 2^-30) |c| + 2^-38; mu_d^2 uses mu_d
//          truncated to 24 fraction bits and carries the mean's error; var and eps sit on var_t's
//          28 fraction bits:
//            e_var = D (2^-30 cmax (1 + cmax) + 2^-38) + 2 |mu_d| (2^-24 + e_mean) + 2 * 2^-28
//   rsqrt: relative error < 3e-7 (bound of tb/test_fixed_math) plus e_var / (2 sigma^2)
//   y:     |gamma| (e_mean / sigma + |y_hat| r) + (|gamma| + 2) 2^-22 (normalised, gamma
//          product and beta add rounded to fm_t)
// The check is the measured error against this sum, row by row, and the bound must come within 50x
// of some row (so it still says something; truncations average half an LSB, and the worst-case
// sums above are reached at random by no row, least at D = 768, where the ratio is ~30). An eps of 1e-5 instead of 1e-6 moves rows
// with sigma = 0.05 by ~1e-3 relative and fails it.
#include <algorithm>
#include <cmath>
#include <vector>

#include "src/layernorm.h"
#include "tb_util.h"
#include "tb_weights.h"

using namespace edgemoe_hls;

int main() {
  tb::Rng rng(2);
  const double lsb30 = std::ldexp(1.0, -30), lsb22 = std::ldexp(1.0, -22);
  for (int dim : {64, 192, 384, 768}) {
    if (dim > EDGEMOE_MAX_DIM) continue;
    for (double scale : {0.05, 1.0, 20.0}) {
      const int rows = 9;
      std::vector<fm_t> x(rows * dim), y(rows * dim), gamma(dim), beta(dim);
      for (auto& v : gamma) v = rng.normal(1, 0.2);
      for (auto& v : beta) v = rng.normal(0, 0.2);
      for (int r = 0; r < rows; ++r) {
        const double mean = rng.normal(0, 2);
        for (int d = 0; d < dim; ++d) x[r * dim + d] = mean + scale * rng.normal();
      }
      layer_norm(tb::words(x), tb::words(y), gamma.data(), beta.data(), rows, dim);
      double gmax = 0;
      for (auto& g : gamma) gmax = std::max(gmax, std::abs(g.to_double()));
      double worst_ratio = 0, worst = 0, worst_bound = 0, tightest = 1e300;
      for (int r = 0; r < rows; ++r) {
        double m = 0, v = 0, cmax = 0;
        const double x0 = x[r * dim].to_double();
        for (int d = 0; d < dim; ++d) m += x[r * dim + d].to_double() / dim;
        for (int d = 0; d < dim; ++d) v += std::pow(x[r * dim + d].to_double() - m, 2) / dim;
        for (int d = 0; d < dim; ++d) cmax = std::max(cmax, std::abs(x[r * dim + d].to_double() - x0));
        const double sigma = std::sqrt(v + 1e-6), mu_d = std::abs(m - x0);
        const double e_mean = dim * lsb30 * (1 + mu_d) + lsb22;
        const double e_var = dim * (lsb30 * cmax * (1 + cmax) + std::ldexp(1.0, -38)) +
                             2 * mu_d * (std::ldexp(1.0, -24) + e_mean) + 2 * std::ldexp(1.0, -28);
        const double rel = 3e-7 + e_var / (2 * sigma * sigma);
        double row_err = 0, yhat_max = 0;
        for (int d = 0; d < dim; ++d) {
          const double yhat = (x[r * dim + d].to_double() - m) / sigma;
          const double ref = yhat * gamma[d].to_double() + beta[d].to_double();
          row_err = std::max(row_err, std::abs(y[r * dim + d].to_double() - ref));
          yhat_max = std::max(yhat_max, std::abs(yhat));
        }
        const double bound = gmax * (e_mean / sigma + yhat_max * rel) + (gmax + 2) * lsb22;
        if (row_err / bound > worst_ratio) worst_ratio = row_err / bound;
        if (row_err > worst) worst = row_err, worst_bound = bound;
        tightest = std::min(tightest, bound / std::max(row_err, 1e-12));
      }
      char name[96];
      std::snprintf(name, sizeof name, "LayerNorm D=%d, std %.2g: worst row error / its bound", dim, scale);
      std::printf("  (max abs error %.3g, that row's bound %.3g)\n", worst, worst_bound);
      tb::bound(name, worst_ratio, 1.0);
      std::snprintf(name, sizeof name, "LayerNorm D=%d, std %.2g: bound within 50x of some row", dim, scale);
      tb::expect(tightest <= 50, name);
    }
  }
  return tb::finish();
}
