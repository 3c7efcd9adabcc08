// Single-pass LayerNorm against a two-pass double LayerNorm (eps 1e-6), for several widths and
// input statistics (offset means, small and large variances).
#include <cmath>
#include <vector>

#include "src/layernorm.h"
#include "tb_util.h"

using namespace edgemoe_hls;

int main() {
  tb::Rng rng(2);
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
      layer_norm(x.data(), dim, y.data(), dim, gamma.data(), beta.data(), rows, dim);
      double worst = 0;
      for (int r = 0; r < rows; ++r) {
        double m = 0, v = 0;
        for (int d = 0; d < dim; ++d) m += x[r * dim + d].to_double() / dim;
        for (int d = 0; d < dim; ++d) v += std::pow(x[r * dim + d].to_double() - m, 2) / dim;
        for (int d = 0; d < dim; ++d) {
          const double ref = (x[r * dim + d].to_double() - m) / std::sqrt(v + 1e-6) * gamma[d].to_double() + beta[d].to_double();
          worst = std::max(worst, std::abs(y[r * dim + d].to_double() - ref));
        }
      }
      // Bound: output roundings and rsqrt's 1.5e-7 relative error give ~4e-6 on |y| <~ 8; the
      // mean carries the truncation bias of D terms of 30 fraction bits, which the normalisation
      // divides by std: 4e-6 / std.
      char name[96];
      std::snprintf(name, sizeof name, "LayerNorm D=%d, std %.2g: max abs error", dim, scale);
      tb::bound(name, worst, 4e-6 + 4e-6 / scale);
    }
  }
  return tb::finish();
}
