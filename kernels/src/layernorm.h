// Single-pass LayerNorm: one sweep accumulates d/D and d^2/D for d = x - x_0 (shifting by the row's
// first element keeps E[d^2] - E[d]^2 free of cancellation when |mean| >> std), then
// y = (x - mean) * rsqrt(var + eps) * gamma + beta. eps = 1e-6 (M3ViT's backbone and heads).
#pragma once

#include "fixed_math.h"
#include "schedule.h"
#include "word_streams.h"

namespace edgemoe_hls {

// `dim` elements of `src` into banks [d / 16][d % 16]: one burst (affine, unconditional, the loop's
// own bound).
inline void load_param_row(const fm_t* src, fm_t dst[kMaxDimWords][kWordElems], int dim) {
#pragma HLS INLINE
  edgemoe_ledger::loop(edgemoe_ledger::kUnitLayerNorm, dim, kII, kCopyDepth,
                       edgemoe_ledger::burst(edgemoe_ledger::kPortParams), (long long)dim * beat_bytes<fm_t>(),
                       beat_bytes<fm_t>());
load_param_row:
  for (int d = 0; d < upto<EDGEMOE_MAX_DIM>(dim); ++d) {
#pragma HLS PIPELINE II = kII
#pragma HLS LOOP_TRIPCOUNT max = EDGEMOE_MAX_DIM
    dst[d / kWordElems][d % kWordElems] = src[d];
  }
}

// `rows` packed rows of `dim` features from src (x, bundle act) as one burst.
inline void read_norm_rows(const fm_word_t* src, int rows, int dim, hls::stream<fm_word_t>& words) {
#pragma HLS INLINE off
  edgemoe_ledger::region_process(0);
  burst_words_in(src, rows * (dim / kWordElems), edgemoe_ledger::kUnitLayerNorm, edgemoe_ledger::kPortAct, words);
}

// The normalised rows to dst (xn, bundle scratch0) as one burst.
inline void write_norm_rows(fm_word_t* dst, int rows, int dim, hls::stream<fm_word_t>& words) {
#pragma HLS INLINE off
  edgemoe_ledger::region_process(2);
  burst_words_out(dst, rows * (dim / kWordElems), edgemoe_ledger::kUnitLayerNorm, edgemoe_ledger::kPortScratch0, words);
}

// One flattened pass over (row, word), one row behind for the output: iteration (r, w) adds the 16
// features of word w of row r to row r's sums (exact sums: any order gives the same bits) and sends
// word w of y[r - 1]; at w = 0 row r - 1's sums are complete and its mean and 1/sqrt(var + eps) are
// formed (deeper pipeline, same II). Rows alternate between two buffers.
inline void normalise_words(const fm_t gamma[kMaxDimWords][kWordElems], const fm_t beta[kMaxDimWords][kWordElems],
                            ap_ufixed<25, -5> inv_dim, int rows, int dim, hls::stream<fm_word_t>& in,
                            hls::stream<fm_word_t>& out) {
#pragma HLS INLINE off
  const var_t eps = 1e-6;
  fm_t row_buf[2][kMaxDimWords][kWordElems];
#pragma HLS ARRAY_PARTITION variable = row_buf dim = 3 complete
#if EDGEMOE_SMALL_MEMORIES_IN_LUTS
#pragma HLS BIND_STORAGE variable = row_buf type = ram_2p impl = lutram
#else
#pragma HLS BIND_STORAGE variable = row_buf type = ram_2p impl = bram
#endif
  // An iteration writes buffer r & 1 and reads buffer (r - 1) & 1: never the same element.
#pragma HLS DEPENDENCE variable = row_buf type = intra dependent = false
  ap_fixed<50, 12> sum = 0;    // sum of d/D
  ap_fixed<62, 24> sumsq = 0;  // sum of d^2/D
  fm_t shift = 0, mean = 0;
  unit_t mant = 0;
  int exp2 = 0;
  const int words = dim / kWordElems;
  edgemoe_ledger::region_process(1);
  edgemoe_ledger::loop(edgemoe_ledger::kUnitLayerNorm, (long long)(rows + 1) * words, kII, kLayerNormDepth + kReciprocalDepth);
  int r = 0, w = 0;
rows_loop:
  for (int i = 0; i < upto<(EDGEMOE_MAX_TOKENS + 1) * kMaxDimWords>((rows + 1) * words); ++i) {
#pragma HLS PIPELINE II = kII
#pragma HLS LOOP_TRIPCOUNT max = (EDGEMOE_MAX_TOKENS + 1) * kMaxDimWords
    if (w == 0 && r > 0) {  // row r - 1's statistics
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
      const fm_word_t word = in.read();
      if (w == 0) shift = word.v[0];
      ap_fixed<50, 12> word_sum = 0;
      ap_fixed<62, 24> word_sumsq = 0;
      for (int e = 0; e < kWordElems; ++e) {
        row_buf[r & 1][w][e] = word.v[e];
        const ap_fixed<32, 11> centred = word.v[e] - shift;
        const ap_fixed<32, 2> scaled = centred * inv_dim;  // |d/D| < 2 for D >= 64 and |d| < 1024
        word_sum += scaled;
        word_sumsq += ap_fixed<56, 18>(scaled * centred);
      }
      sum += word_sum;
      sumsq += word_sumsq;
    }
    if (r > 0) {
      fm_word_t y;
      for (int e = 0; e < kWordElems; ++e) {
        const fm_diff_t centred = row_buf[(r - 1) & 1][w][e] - mean;
        const ap_fixed<58, 12> scaled = centred * mant;
        const fm_t normalised = exp2 >= 0 ? fm_t(scaled >> exp2) : fm_t(scaled << -exp2);
        y.v[e] = fm_t(fm_t(normalised * gamma[w][e]) + beta[w][e]);
      }
      out.write(y);
    }
    if (++w == words) {
      w = 0;
      ++r;
    }
  }
}

// Canonical dataflow: read (burst) -> normalise -> write (burst), one stream each way; src and dst
// are different bundles, each touched by one process.
inline void normalise_rows(const fm_word_t* src, fm_word_t* dst, const fm_t gamma[kMaxDimWords][kWordElems],
                           const fm_t beta[kMaxDimWords][kWordElems], ap_ufixed<25, -5> inv_dim, int rows, int dim) {
#pragma HLS INLINE off
#pragma HLS DATAFLOW
  hls::stream<fm_word_t> words_in("norm_words_in"), words_out("norm_words_out");
#pragma HLS STREAM variable = words_in depth = 4
#pragma HLS STREAM variable = words_out depth = 4
  edgemoe_ledger::region_begin();
  read_norm_rows(src, rows, dim, words_in);
  normalise_words(gamma, beta, inv_dim, rows, dim, words_in, words_out);
  write_norm_rows(dst, rows, dim, words_out);
  edgemoe_ledger::region_end(edgemoe_ledger::kUnitLayerNorm);
}

// src is x (bundle act), dst is xn (bundle scratch0), both `rows` packed rows of `dim` features in
// 512-bit words (dim is a multiple of 16).
inline void layer_norm(const fm_word_t* src, fm_word_t* dst, const fm_t* gamma_ddr, const fm_t* beta_ddr, int rows,
                       int dim) {
#pragma HLS INLINE off
  fm_t gamma[kMaxDimWords][kWordElems], beta[kMaxDimWords][kWordElems];
#pragma HLS ARRAY_PARTITION variable = gamma dim = 2 complete
#pragma HLS ARRAY_PARTITION variable = beta dim = 2 complete
#if EDGEMOE_SMALL_MEMORIES_IN_LUTS
#pragma HLS BIND_STORAGE variable = gamma type = ram_2p impl = lutram
#pragma HLS BIND_STORAGE variable = beta type = ram_2p impl = lutram
#else
#pragma HLS BIND_STORAGE variable = gamma type = ram_2p impl = bram
#pragma HLS BIND_STORAGE variable = beta type = ram_2p impl = bram
#endif
  // One burst each, gamma then beta (two streams interleaved on one bundle in one loop would not burst).
  load_param_row(gamma_ddr, gamma, dim);
  load_param_row(beta_ddr, beta, dim);
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
  edgemoe_ledger::loop(edgemoe_ledger::kUnitLayerNorm, 25, 1, 0);  // the rolled restoring division
  normalise_rows(src, dst, gamma, beta, inv_dim, rows, dim);
}

}  // namespace edgemoe_hls
