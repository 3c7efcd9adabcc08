// Single-pass LayerNorm: one sweep accumulates d/D and d^2/D for d = x - x_0 (shifting by the row's
// first element keeps E[d^2] - E[d]^2 free of cancellation when |mean| >> std), then
// y = (x - mean) * rsqrt(var + eps) * gamma + beta. eps = 1e-6 (M3ViT's backbone and heads).
#pragma once

#include "fixed_math.h"
#include "schedule.h"

namespace edgemoe_hls {

// src is x (bundle act), dst is xn (bundle scratch0): one read and one write per cycle on two bundles.
inline void layer_norm(const fm_t* src, int src_stride, fm_t* dst, int dst_stride, const fm_t* gamma_ddr,
                       const fm_t* beta_ddr, int rows, int dim) {
  namespace ledger = edgemoe_ledger;
  fm_t gamma[EDGEMOE_MAX_DIM], beta[EDGEMOE_MAX_DIM];
  ledger::loop(ledger::kUnitLayerNorm, dim, kTwoReadsII, kCopyDepth, ledger::kPortParams,
               2LL * dim * beat_bytes<fm_t>(), beat_bytes<fm_t>());
load_params:
  for (int d = 0; d < EDGEMOE_MAX_DIM; ++d) {
#pragma HLS PIPELINE II = kTwoReadsII
    if (d >= dim) break;
    gamma[d] = gamma_ddr[d];
    beta[d] = beta_ddr[d];
  }
  // 1/dim with 30 fraction bits (dim >= 64 keeps it below 2^-5): restoring division 2^30 / dim.
  ap_ufixed<25, -5> inv_dim = 0;
  {
    ap_uint<40> rem = ap_uint<40>(1) << 30;
    ap_uint<25> q = 0;
  divide:
    for (int bit = 24; bit >= 0; --bit) {
      const ap_uint<40> step = ap_uint<40>(dim) << bit;
      if (rem >= step) {
        rem = rem - step;
        q = q + (ap_uint<25>(1) << bit);
      }
    }
    inv_dim.range() = q.range();
  }
  ledger::loop(ledger::kUnitLayerNorm, 25, 1, 0);  // the rolled restoring division
  const var_t eps = 1e-6;
  // One flattened pass over (row, feature), one row behind for the output: iteration (r, d) adds
  // x[r][d] to row r's sums and writes y[r - 1][d]; at d = 0 row r - 1's sums are complete and its
  // mean and 1/sqrt(var + eps) are formed (deeper pipeline, same II). Rows alternate between two
  // buffers, so reading row r never touches the row being normalised.
  fm_t row_buf[2][EDGEMOE_MAX_DIM];
  ap_fixed<50, 12> sum = 0;    // sum of d/D
  ap_fixed<62, 24> sumsq = 0;  // sum of d^2/D
  fm_t shift = 0, mean = 0;
  unit_t mant = 0;
  int exp2 = 0;
  ledger::loop(ledger::kUnitLayerNorm, (long long)(rows + 1) * dim, kII, kLayerNormDepth + kReciprocalDepth,
               ledger::kPortAct, (long long)rows * dim * beat_bytes<fm_t>(), beat_bytes<fm_t>(), 0, 0,
               ledger::kPortScratch0, (long long)rows * dim * beat_bytes<fm_t>(), beat_bytes<fm_t>());
  int r = 0, d = 0;
rows_loop:
  for (int i = 0; i < upto<(EDGEMOE_MAX_TOKENS + 1) * EDGEMOE_MAX_DIM>((rows + 1) * dim); ++i) {
#pragma HLS PIPELINE II = kII
#pragma HLS LOOP_TRIPCOUNT max = (EDGEMOE_MAX_TOKENS + 1) * EDGEMOE_MAX_DIM
    if (d == 0 && r > 0) {  // row r - 1's statistics
      const ap_fixed<48, 12> mean_d = sum;
      mean = shift + mean_d;
      const ap_fixed<32, 8> mean_d_narrow = mean_d;  // |mean - x_0| < 128
      const ap_fixed<62, 24> mean_sq = mean_d_narrow * mean_d_narrow;
      const ap_fixed<63, 25> var_raw = sumsq - mean_sq;
      const var_t var = var_raw > ap_fixed<63, 25>(0) ? var_t(var_raw) : var_t(0);
      reciprocal_sqrt(var_t(var + eps), mant, exp2);
      sum = 0;
      sumsq = 0;
    }
    if (r < rows) {
      const fm_t v = src[(long)r * src_stride + d];
      row_buf[r & 1][d] = v;
      if (d == 0) shift = v;
      const ap_fixed<32, 11> centred = v - shift;
      const ap_fixed<32, 2> scaled = centred * inv_dim;  // |d/D| < 2 for D >= 64 and |d| < 1024
      sum += scaled;
      sumsq += ap_fixed<56, 18>(scaled * centred);
    }
    if (r > 0) {
      const fm_diff_t centred = row_buf[(r - 1) & 1][d] - mean;
      const ap_fixed<58, 12> scaled = centred * mant;
      const fm_t normalised = exp2 >= 0 ? fm_t(scaled >> exp2) : fm_t(scaled << -exp2);
      dst[(long)(r - 1) * dst_stride + d] = fm_t(fm_t(normalised * gamma[d]) + beta[d]);
    }
    if (++d == dim) {
      d = 0;
      ++r;
    }
  }
}

}  // namespace edgemoe_hls
