// The unified linear unit: one T_in x T_out MAC array (weights stationary on chip, bias and GELU
// fused) shared by Q/K/V, proj, dense MLPs, every expert's two layers and the patch embedding.
// A dataflow of reader -> MAC array -> writer; the reader takes rows in order, gathered through
// an expert's token queue, or as image patches; the writer stores, adds (residual), or scatters
// with a score-weighted accumulate (MoE combine).
#pragma once

#include "fixed_math.h"

namespace edgemoe_hls {

constexpr int kTin = EDGEMOE_LINEAR_TIN;
constexpr int kTout = EDGEMOE_LINEAR_TOUT;
constexpr int ceil_div(int a, int b) { return (a + b - 1) / b; }
constexpr int max2(int a, int b) { return a > b ? a : b; }
constexpr int max3(int a, int b, int c) { return max2(max2(a, b), c); }

constexpr int kMaxLinearOut = max3(3 * EDGEMOE_MAX_DIM, EDGEMOE_MAX_MLP_HIDDEN, EDGEMOE_MAX_EXPERT_HIDDEN);
constexpr int kMaxLinearIn = max3(EDGEMOE_MAX_MLP_HIDDEN, EDGEMOE_MAX_EXPERT_HIDDEN,
                                  EDGEMOE_MAX_PATCH_IN > EDGEMOE_MAX_DIM ? EDGEMOE_MAX_PATCH_IN : EDGEMOE_MAX_DIM);
constexpr int kMaxOutTiles = ceil_div(kMaxLinearOut, kTout);
constexpr int kMaxInTiles = ceil_div(kMaxLinearIn, kTin);
// The largest matrix: max over qkv (3D x D), MLP (Hd x D and D x Hd), experts (Hm x D, D x Hm), patch (D x 3P^2).
constexpr int tiles(int out, int in) { return ceil_div(out, kTout) * ceil_div(in, kTin); }
constexpr int kMaxWeightTiles =
    max3(max3(tiles(3 * EDGEMOE_MAX_DIM, EDGEMOE_MAX_DIM), tiles(EDGEMOE_MAX_MLP_HIDDEN, EDGEMOE_MAX_DIM),
              tiles(EDGEMOE_MAX_DIM, EDGEMOE_MAX_MLP_HIDDEN)),
         max2(tiles(EDGEMOE_MAX_EXPERT_HIDDEN, EDGEMOE_MAX_DIM), tiles(EDGEMOE_MAX_DIM, EDGEMOE_MAX_EXPERT_HIDDEN)),
         tiles(EDGEMOE_MAX_DIM, EDGEMOE_MAX_PATCH_IN));

struct in_vec {
  mac_in_t v[kTin];
};
struct out_vec {
  fm_t v[kTout];
};

// One on-chip weight buffer (ping or pong): tiles [out_tile * in_tiles + in_tile][o][i].
struct LinearWeights {
  wt_t w[kMaxWeightTiles][kTout][kTin];
  fm_t bias[kMaxOutTiles][kTout];
  int out, in, out_tiles, in_tiles;
};

// Fetch a row-major [out][in] matrix and its bias from DDR into a buffer, re-packed into tiles.
inline void load_linear_weights(const wt_t* w, const fm_t* bias, int out, int in, LinearWeights& buf) {
  buf.out = out;
  buf.in = in;
  buf.out_tiles = ceil_div(out, kTout);
  buf.in_tiles = ceil_div(in, kTin);
load_rows:
  for (int row = 0; row < kMaxLinearOut; ++row) {
    if (row >= out) break;
  load_cols:
    for (int col = 0; col < kMaxLinearIn; ++col) {
#pragma HLS PIPELINE II = 1
      if (col >= in) break;
      buf.w[(row / kTout) * buf.in_tiles + col / kTin][row % kTout][col % kTin] = w[(long)row * in + col];
    }
  }
  // Zero the padding of ragged edge tiles, so padded lanes contribute nothing.
pad_rows:
  for (int row = 0; row < kMaxOutTiles * kTout; ++row) {
    if (row >= buf.out_tiles * kTout) break;
  pad_cols:
    for (int col = 0; col < kMaxInTiles * kTin; ++col) {
#pragma HLS PIPELINE II = 1
      if (col >= buf.in_tiles * kTin) break;
      if (row >= out || col >= in) buf.w[(row / kTout) * buf.in_tiles + col / kTin][row % kTout][col % kTin] = 0;
    }
  }
load_bias:
  for (int o = 0; o < kMaxOutTiles * kTout; ++o) {
#pragma HLS PIPELINE II = 1
    if (o >= buf.out_tiles * kTout) break;
    buf.bias[o / kTout][o % kTout] = o < out ? bias[o] : fm_t(0);
  }
}

enum ReadMode { kReadRows = 0, kReadGather = 1, kReadPatches = 2 };
enum WriteMode { kWriteStore = 0, kWriteAdd = 1, kWriteScatterWeighted = 2 };

// Where a linear job reads and writes. Strides are in elements.
struct LinearJob {
  int first_row, rows;  // rows [first_row, rows) of the job (first_row = 0 on hardware)
  ReadMode read_mode;
  const fm_t* src;
  int src_stride;
  const short* queue;  // gather/scatter row indices (MoE)
  const pixel_t* image;  // kReadPatches: [3][grid_h*patch][grid_w*patch]
  int grid_h, grid_w, patch;
  WriteMode write_mode;
  fm_t* dst;
  int dst_stride;
  const unit_t* scores;  // kWriteScatterWeighted
  bool gelu;
};

inline void linear_reader(const LinearJob& job, int in, int in_tiles, hls::stream<in_vec>& out) {
read_rows:
  for (int r = job.first_row; r < upto<EDGEMOE_MAX_TOKENS>(job.rows); ++r) {
    const int row = job.read_mode == kReadGather ? int(job.queue[r]) : r;
  read_tiles:
    for (int t = 0; t < kMaxInTiles; ++t) {
#pragma HLS PIPELINE II = 1
      if (t >= in_tiles) break;
      in_vec v;
      for (int i = 0; i < kTin; ++i) {
        const int col = t * kTin + i;
        if (col >= in) {
          v.v[i] = 0;
        } else if (job.read_mode == kReadPatches) {
          // column = (channel, ky, kx) as Conv2d weights; row = patch index in row-major order
          const int c = col / (job.patch * job.patch), ky = (col / job.patch) % job.patch, kx = col % job.patch;
          const int py = row / job.grid_w, px = row % job.grid_w;
          const int width = job.grid_w * job.patch;
          const int height = job.grid_h * job.patch;
          v.v[i] = job.image[((long)c * height + py * job.patch + ky) * width + px * job.patch + kx];
        } else {
          v.v[i] = job.src[(long)row * job.src_stride + col];
        }
      }
      out.write(v);
    }
  }
}

inline void mac_array(const LinearWeights& wb, int rows, bool gelu, hls::stream<in_vec>& in, hls::stream<out_vec>& out) {
  in_vec row_cache[kMaxInTiles];
mac_rows:
  for (int r = 0; r < EDGEMOE_MAX_TOKENS; ++r) {
    if (r >= rows) break;
  cache_row:
    for (int t = 0; t < kMaxInTiles; ++t) {
      if (t >= wb.in_tiles) break;
      row_cache[t] = in.read();
    }
  out_tiles:
    for (int ot = 0; ot < kMaxOutTiles; ++ot) {
      if (ot >= wb.out_tiles) break;
      // Each MAC (one DSP48E2) accumulates its own lane in its 48-bit P register over the input
      // tiles; one adder tree per output sums the T_in lanes at the end. Wrapping adds are
      // associative, so this equals a serial sum bit for bit.
      acc_t lane[kTout][kTin];
#pragma HLS ARRAY_PARTITION variable = lane complete dim = 0
      for (int o = 0; o < kTout; ++o)
        for (int i = 0; i < kTin; ++i) lane[o][i] = 0;
    in_tiles:
      for (int it = 0; it < upto<kMaxInTiles>(wb.in_tiles); ++it) {
#pragma HLS PIPELINE II = 1
        const wt_t(&tile)[kTout][kTin] = wb.w[ot * wb.in_tiles + it];
        const in_vec& x = row_cache[it];
        for (int o = 0; o < kTout; ++o)
          for (int i = 0; i < kTin; ++i) lane[o][i] += x.v[i] * tile[o][i];
      }
      acc_t acc[kTout];
#pragma HLS ARRAY_PARTITION variable = acc complete
      for (int o = 0; o < kTout; ++o) {
        acc[o] = wb.bias[ot][o];
        for (int i = 0; i < kTin; ++i) acc[o] += lane[o][i];
      }
      out_vec y;
      for (int o = 0; o < kTout; ++o) y.v[o] = gelu ? edgemoe_hls::gelu(fm_t(acc[o])) : fm_t(acc[o]);
      out.write(y);
    }
  }
}

inline void linear_writer(const LinearJob& job, int out_dim, int out_tiles, hls::stream<out_vec>& in) {
write_rows:
  for (int r = job.first_row; r < upto<EDGEMOE_MAX_TOKENS>(job.rows); ++r) {
    const int row = job.write_mode == kWriteScatterWeighted ? int(job.queue[r]) : r;
    const unit_t score = job.write_mode == kWriteScatterWeighted ? job.scores[r] : unit_t(0);
  write_tiles:
    for (int t = 0; t < kMaxOutTiles; ++t) {
#pragma HLS PIPELINE II = 1
      if (t >= out_tiles) break;
      const out_vec y = in.read();
      for (int o = 0; o < kTout; ++o) {
        const int col = t * kTout + o;
        if (col >= out_dim) continue;
        fm_t& d = job.dst[(long)row * job.dst_stride + col];
        if (job.write_mode == kWriteStore) d = y.v[o];
        else if (job.write_mode == kWriteAdd) d = d + y.v[o];
        else d = d + score * y.v[o];  // the score multiplies the bias too, as FastMoE's combine
      }
    }
  }
}

inline void linear_unit(const LinearWeights& wb, const LinearJob& job) {
#pragma HLS DATAFLOW
  hls::stream<in_vec> rows_in("linear_rows_in");
  hls::stream<out_vec> rows_out("linear_rows_out");
#pragma HLS STREAM variable = rows_in depth = 4
#pragma HLS STREAM variable = rows_out depth = 4
  linear_reader(job, wb.in, wb.in_tiles, rows_in);
  mac_array(wb, job.rows - job.first_row, job.gelu, rows_in, rows_out);
  linear_writer(job, wb.out, wb.out_tiles, rows_out);
}

// Runs a job on the unit. In emulation a large job runs as two halves on two threads (rows are
// independent; an expert's queue holds each token once, so scattered halves never collide).
inline void run_linear(const LinearWeights& wb, const LinearJob& job) {
#ifdef EDGEMOE_EMU_PARALLEL
  if (job.rows - job.first_row >= 64) {
    LinearJob low = job, high = job;
    low.rows = high.first_row = job.first_row + (job.rows - job.first_row) / 2;
#pragma omp parallel sections num_threads(2)
    {
#pragma omp section
      linear_unit(wb, low);
#pragma omp section
      linear_unit(wb, high);
    }
    return;
  }
#endif
  linear_unit(wb, job);
}

}  // namespace edgemoe_hls
