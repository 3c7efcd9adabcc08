// The unified linear unit: one T_in x T_out MAC array (weights stationary on chip, bias and GELU
// fused) shared by Q/K/V, proj, dense MLPs, every expert's two layers and the patch embedding.
// A dataflow of reader -> MAC array -> writer; the reader takes rows in order, gathered through
// an expert's token queue, or as image patches; the writer stores, adds (residual), or scatters
// with a score-weighted accumulate (MoE combine).
//
// Schedule (kernels/README.md, "Schedules"): the MAC array is one flattened loop over
// (row group, output tile, input tile) at II = 1, a group being T_rows rows that share every weight
// read: R x T_out x T_in MACs per cycle from T_out x T_in weight banks. Each weight buffer has one
// bank per (o, i) lane, the row cache one bank per (row, input lane) (partitioned at the kernel top
// and below), so every cycle reads each bank once; each lane accumulates in its DSP's P register,
// reset on the first input tile; the adder tree, bias and GELU of an output tile run in the same
// pipeline on its last one. Rows are independent, so the grouping changes no bits.
#pragma once

#include "access_check.h"
#include "fixed_math.h"
#include "layout.h"
#include "schedule.h"

namespace edgemoe_hls {

static_assert((kTin & (kTin - 1)) == 0 && (kTout & (kTout - 1)) == 0,
              "MAC array lanes must be powers of two: tile indices are then shifts and masks, not dividers");
static_assert(kTin >= kWeightsPerWord,
              "a weight word's 28 lanes must land in 28 different input-lane banks (one write each per cycle)");

// One input tile of a row group, and one output tile of it (rows past the job's end are zero).
struct in_vec {
  mac_in_t v[kTrows][kTin];
};
struct out_vec {
  fm_t v[kTrows][kTout];
};
// Where each row of a group goes (-1: a padding row past the job's end).
struct dest_group {
  int row[kTrows];
};

// One on-chip weight buffer: tiles [out_tile * in_tiles + in_tile][o][i] and the bias by output
// tile. Separate arrays (not a struct) so the kernel top can partition each by name: dims o and i
// completely (one bank per MAC, depth kMaxWeightTiles), the bias by o.
typedef wt_t WeightTiles[kMaxWeightTiles][kTout][kTin];
typedef fm_t BiasTiles[kMaxOutTiles][kTout];
struct LinearShape {
  int out, in, out_tiles, in_tiles;
};
constexpr int kPing = 0, kPong = 1;
// The lanes of one activation word an output tile touches: all 16, or T_out when T_out < 16.
constexpr int kLanesPerWordTouch = kTout >= kWordElems ? kWordElems : kTout;
constexpr int kMaxWeightWords = kMaxLinearOut * ceil_div(kMaxLinearIn, kWeightsPerWord);  // of one matrix
constexpr int kMaxWeightPairs = ceil_div(kMaxWeightWords, kWeightPorts);

// Fetch a packed [out][in] matrix (layout.h: rows of 512-bit words, 28 weights each, the words
// alternating between the two weight ports) and its bias from DDR into a buffer, re-packed into
// tiles: a word pair per iteration (one word of each port, each port one burst), II = 2: each word
// is rotated onto the input-lane banks (kTin >= 28: its 28 lanes land in 28 different banks), so a
// bank takes at most one write per word, two per iteration. Padding lanes of ragged edge tiles are
// never written: their input lanes are zero (linear_reader) and their outputs never stored
// (linear_writer), so whatever a previous matrix left there contributes nothing.
inline void load_linear_weights(const weight_word_t* w_even, const weight_word_t* w_odd, long w_offset,
                                const fm_t* bias, int out, int in, WeightTiles tiles, BiasTiles bias_tiles,
                                LinearShape& shape) {
#pragma HLS INLINE off
  if (out <= 0) return;  // nothing to fetch (linear_step): the buffer keeps its matrix
  shape.out = out;
  shape.in = in;
  shape.out_tiles = ceil_div(out, kTout);
  shape.in_tiles = ceil_div(in, kTin);
  const int row_words = int(words_per_row(in)), words = out * row_words, pairs = ceil_div(words, kWeightPorts);
  const long first_pair = w_offset / kWeightPorts;  // matrices start at even words (layout.h)
  const int padded_out = shape.out_tiles * kTout;
  edgemoe_ledger::loop(edgemoe_ledger::kUnitWeights, pairs, kWeightPairII, kCopyDepth, edgemoe_ledger::burst(edgemoe_ledger::kPortWeights),
                       (long long)pairs * beat_bytes<weight_word_t>(), beat_bytes<weight_word_t>(), 0, 0,
                       edgemoe_ledger::burst(edgemoe_ledger::kPortWeightsOdd), (long long)pairs * beat_bytes<weight_word_t>(),
                       beat_bytes<weight_word_t>());
  int row = 0, word_in_row = 0, col_base = 0, tile_row = 0;  // tile_row = (row / kTout) * in_tiles
load_weights:
  for (int p = 0; p < upto<kMaxWeightPairs>(pairs); ++p) {
#pragma HLS PIPELINE II = kWeightPairII
#pragma HLS LOOP_TRIPCOUNT max = kMaxWeightPairs
    const weight_word_t pair[kWeightPorts] = {w_even[first_pair + p], w_odd[first_pair + p]};
    for (int k = 0; k < kWeightPorts; ++k) {
      if (p * kWeightPorts + k >= words) break;  // the padding word of an odd-sized matrix
      // Bank (input lane) b takes the word's lane l = (b - col_base) mod T_in when the word has one: a
      // rotation of the word onto the banks, so each bank is written by one statement per word.
      const int rotation = col_base & (kTin - 1);
      for (int b = 0; b < kTin; ++b) {
        const int l = (b - rotation) & (kTin - 1);
        const int col = col_base + l;
        if (l < kWeightsPerWord && col < in) tiles[tile_row + col / kTin][row % kTout][b] = weight_lane(pair[k], l);
      }
      col_base += kWeightsPerWord;
      if (++word_in_row == row_words) {
        word_in_row = 0;
        col_base = 0;
        if (++row % kTout == 0) tile_row += shape.in_tiles;
      }
    }
  }
  // The bias as one burst (out elements, unconditional), then the last tile's padding lanes zeroed
  // on chip.
  edgemoe_ledger::loop(edgemoe_ledger::kUnitWeights, out, kII, kCopyDepth, edgemoe_ledger::burst(edgemoe_ledger::kPortParams),
                       (long long)out * beat_bytes<fm_t>(), beat_bytes<fm_t>());
load_bias:
  for (int o = 0; o < upto<kMaxOutTiles * kTout>(out); ++o) {
#pragma HLS PIPELINE II = kII
#pragma HLS LOOP_TRIPCOUNT max = kMaxOutTiles * kTout
    bias_tiles[o / kTout][o % kTout] = bias[o];
  }
  for (int o = 0; o < kTout; ++o) {
#pragma HLS UNROLL
    if (out + o < padded_out) bias_tiles[(out + o) / kTout][(out + o) % kTout] = fm_t(0);
  }
}

enum ReadMode { kReadRows = 0, kReadGather = 1, kReadPatches = 2 };
enum WriteMode { kWriteStore = 0, kWriteAdd = 1, kWriteScatterWeighted = 2 };

// Which of the kernel's buffers a job reads and writes. A job names them (no pointers in the job):
// every buffer reaches the unit as its own argument, so its one instance serves every call and each
// pointer stays one m_axi bundle.
enum Source { kFromXn = 0, kFromHidden = 1, kFromImage = 2 };
enum Destination { kToQkv = 0, kToHidden = 1, kToX = 2 };
typedef short QueueTokens[EDGEMOE_MAX_EXPERTS][EDGEMOE_MAX_TOKENS];  // the MoE expert queues (moe.h)
typedef unit_t QueueScores[EDGEMOE_MAX_EXPERTS][EDGEMOE_MAX_TOKENS];

// What a linear job does. Strides and offsets are in elements.
struct LinearJob {
  int first_row, rows;  // rows [first_row, rows) of the job (first_row = 0 on hardware)
  ReadMode read_mode;
  Source src;
  int src_stride;
  int expert;  // kReadGather / kWriteScatterWeighted: the expert whose queue lists the rows
  int grid_h, grid_w, patch;  // kReadPatches: the image is [3][grid_h*patch][grid_w*patch]
  WriteMode write_mode;
  Destination dst;
  long dst_offset;
  int dst_stride;
  bool gelu;
  // For the cycle ledger: what the job is, and the m_axi bundles its source and destination are on.
  edgemoe_ledger::Unit unit;
  edgemoe_ledger::Port src_port, dst_port;
};

// A job of no rows: linear_step's fetch with nothing to overlap.
inline LinearJob no_linear_job() {
  LinearJob job = {0, 0, kReadRows, kFromXn, 0, 0, 0, 0, 0, kWriteStore, kToHidden, 0, 0, false,
                   edgemoe_ledger::kUnitWeights, edgemoe_ledger::kNoPort, edgemoe_ledger::kNoPort};
  return job;
}

// im2col without dividers: the offset of every patch column (channel, ky, kx) inside an image,
// relative to the patch's top-left pixel, built once per job by counting.
inline void patch_offsets(int patch, int width, int height, int in, int offsets[kMaxInTiles][kTin]) {
  int c = 0, ky = 0, kx = 0;
  edgemoe_ledger::loop(edgemoe_ledger::kUnitPatchEmbed, in, kII, kCopyDepth);
offsets_loop:
  for (int col = 0; col < upto<kMaxInTiles * kTin>(in); ++col) {
#pragma HLS PIPELINE II = kII
#pragma HLS LOOP_TRIPCOUNT max = kMaxInTiles * kTin
    offsets[col / kTin][col % kTin] = (c * height + ky) * width + kx;
    if (++kx == patch) {
      kx = 0;
      if (++ky == patch) {
        ky = 0;
        ++c;
      }
    }
  }
}

// Row r of the group starting at row g has its input tile t: the group's tile goes out once its
// last row is in, then the next tile, and after the last tile the next group.
inline void row_tile_done(int& r, int& t, int& g, int in_tiles, const in_vec& v, hls::stream<in_vec>& out) {
  if (++r < kTrows) return;
  r = 0;
  out.write(v);
  if (++t == in_tiles) {
    t = 0;
    g += kTrows;
  }
}

// Rows: one 512-bit word per iteration (II = 1) over (group, input tile, row of the group, word of
// the tile); a group's input tile is streamed once all its rows' words are in. Rows are whole words,
// so a word is inside `in` or wholly beyond it, where the lanes are zero; rows past the job's end
// are zero and never read. Patches: a row's tile of T_in single-byte pixels per iteration (II =
// T_in beats). One loop runs per job. On a group's first tile each row's source (the expert queue
// for a gather) is looked up once and kept; its destinations go to the writer as one record.
inline void linear_reader(const LinearJob& job, int in, int in_tiles, const pixel_t* images, const fm_word_t* xn,
                          const fm_word_t* hidden, const QueueTokens tokens, hls::stream<in_vec>& out,
                          hls::stream<dest_group>& dest_rows) {
  int offsets[kMaxInTiles][kTin];
#pragma HLS ARRAY_PARTITION variable = offsets dim = 2 complete
  const bool patches = job.read_mode == kReadPatches;
  const int width = job.grid_w * job.patch, height = job.grid_h * job.patch;
  if (patches) patch_offsets(job.patch, width, height, in, offsets);
  const int rows = job.rows - job.first_row, groups = ceil_div(rows, kTrows);
  const int expert = job.expert < 0 ? 0 : job.expert;
  const bool queued = job.read_mode == kReadGather || job.write_mode == kWriteScatterWeighted;
  edgemoe_ledger::region_process(0);
  if (patches)
    edgemoe_ledger::loop(job.unit, (long long)groups * in_tiles * kTrows, kReadPatchII, kCopyDepth, edgemoe_ledger::single_beat(job.src_port),
                         (long long)rows * in * beat_bytes<pixel_t>(), beat_bytes<pixel_t>());
  else
    edgemoe_ledger::loop(job.unit, (long long)groups * in_tiles * kTrows * kWordsPerInTile, kII, kCopyDepth,
                         edgemoe_ledger::single_beat(job.src_port), (long long)rows * in * beat_bytes<fm_t>(), beat_bytes<fm_word_t>());
  const int row_steps = patches ? 0 : groups * in_tiles * kTrows * kWordsPerInTile;
  const int patch_steps = patches ? groups * in_tiles * kTrows : 0;
  int g = job.first_row, t = 0, r = 0, half = 0;  // g: the group's first row
  int src_row[kTrows];
  long patch_origin[kTrows];
#pragma HLS ARRAY_PARTITION variable = src_row complete
#pragma HLS ARRAY_PARTITION variable = patch_origin complete
  dest_group dest;
  in_vec v;
  // Registers: a word lands in row r (a runtime index) at 16 lanes a cycle; unpartitioned, v would be
  // one memory taking 16 writes a cycle (II 8 on a dual-port bank).
#pragma HLS ARRAY_PARTITION variable = v.v dim = 0 complete
  for (int step = 0; step < upto<kMaxRowGroups * kMaxInTiles * kTrows * kWordsPerInTile>(row_steps); ++step) {
#pragma HLS PIPELINE II = kII
#pragma HLS LOOP_TRIPCOUNT max = kMaxRowGroups * kMaxInTiles * kTrows * kWordsPerInTile
    const bool real = g + r < job.rows;
    if (t == 0 && half == 0) {  // a row's first word: where it comes from, and where it goes
      const int token = real && queued ? int(tokens[expert][g + r]) : g + r;
      src_row[r] = job.read_mode == kReadGather ? token : g + r;
      dest.row[r] = !real ? -1 : job.write_mode == kWriteScatterWeighted ? token : g + r;
      if (r == kTrows - 1) dest_rows.write(dest);
    }
    const int col = (t * kWordsPerInTile + half) * kWordElems;
    const bool inside = real && col < in;
    fm_word_t word;
    if (inside) {
      const long at = ((long)src_row[r] * job.src_stride + col) / kWordElems;
      word = job.src == kFromHidden ? hidden[at] : xn[at];
    }
    for (int e = 0; e < kWordElems; ++e) v.v[r][half * kWordElems + e] = inside ? mac_in_t(word.v[e]) : mac_in_t(0);
    if (++half == kWordsPerInTile) {
      half = 0;
      row_tile_done(r, t, g, in_tiles, v, out);
    }
  }
  int px = 0, py = 0;  // the next patch; patch jobs are never split (run_linear), so they start at row 0
read_patches:
  for (int step = 0; step < upto<kMaxRowGroups * kMaxInTiles * kTrows>(patch_steps); ++step) {
#pragma HLS PIPELINE II = kReadPatchII
#pragma HLS LOOP_TRIPCOUNT max = kMaxRowGroups * kMaxInTiles * kTrows
    const bool real = g + r < job.rows;
    if (t == 0) {
      patch_origin[r] = (long)py * job.patch * width + (long)px * job.patch;
      dest.row[r] = real ? g + r : -1;
      if (r == kTrows - 1) dest_rows.write(dest);
      if (++px == job.grid_w) {
        px = 0;
        ++py;
      }
    }
    for (int i = 0; i < kTin; ++i) {
      const int col = t * kTin + i;
      v.v[r][i] = real && col < in ? mac_in_t(images[patch_origin[r] + offsets[t][i]]) : mac_in_t(0);
    }
    row_tile_done(r, t, g, in_tiles, v, out);
  }
}

// The MAC array: one flattened loop over (row group, output tile, input tile), II = 1.
inline void mac_array(const WeightTiles tiles, const BiasTiles bias_tiles, const LinearShape& shape, int rows,
                      bool gelu, edgemoe_ledger::Unit unit, hls::stream<in_vec>& in, hls::stream<out_vec>& out) {
  mac_in_t row_cache[kMaxInTiles][kTrows][kTin];
#pragma HLS ARRAY_PARTITION variable = row_cache dim = 2 complete
#pragma HLS ARRAY_PARTITION variable = row_cache dim = 3 complete
#pragma HLS BIND_STORAGE variable = row_cache type = ram_2p impl = lutram
  // Each MAC (one DSP48E2) accumulates its own lane in its 48-bit P register over the input tiles;
  // one adder tree per output sums the T_in lanes on the last one. Wrapping adds are associative,
  // so this equals a serial sum bit for bit.
  acc_t lane[kTrows][kTout][kTin];
#pragma HLS ARRAY_PARTITION variable = lane complete dim = 0
  const int in_tiles = shape.in_tiles, steps = ceil_div(rows, kTrows) * shape.out_tiles * in_tiles;
  edgemoe_ledger::region_process(1);
  edgemoe_ledger::loop(unit, steps, kII, kLinearDepth, edgemoe_ledger::kNoPort, 0, 1,
                       (long long)rows * shape.out * shape.in, kTrows * kTin * kTout);
  int ot = 0, it = 0, tile = 0;  // tile = ot * in_tiles + it, kept incrementally
mac_steps:
  for (int step = 0; step < upto<kMaxRowGroups * kMaxWeightTiles>(steps); ++step) {
#pragma HLS PIPELINE II = kII
#pragma HLS LOOP_TRIPCOUNT max = kMaxRowGroups * kMaxWeightTiles
    in_vec x;
    if (ot == 0) {  // a new group: its tiles arrive once and are cached for the other output tiles
      x = in.read();
      for (int r = 0; r < kTrows; ++r)
        for (int i = 0; i < kTin; ++i) row_cache[it][r][i] = x.v[r][i];
    } else {
      for (int r = 0; r < kTrows; ++r)
        for (int i = 0; i < kTin; ++i) x.v[r][i] = row_cache[it][r][i];
    }
    if (it == 0)
      for (int r = 0; r < kTrows; ++r)
        for (int o = 0; o < kTout; ++o)
          for (int i = 0; i < kTin; ++i) lane[r][o][i] = 0;
    for (int r = 0; r < kTrows; ++r)
      for (int o = 0; o < kTout; ++o)
        for (int i = 0; i < kTin; ++i) lane[r][o][i] += x.v[r][i] * tiles[tile][o][i];
    if (it == in_tiles - 1) {
      out_vec y;
      for (int o = 0; o < kTout; ++o) {
        const fm_t bias = bias_tiles[ot][o];  // one read of the bias bank for all rows
        for (int r = 0; r < kTrows; ++r) {
          acc_t acc = bias;
          for (int i = 0; i < kTin; ++i) acc += lane[r][o][i];
          y.v[r][o] = gelu ? edgemoe_hls::gelu(fm_t(acc)) : fm_t(acc);
        }
      }
      out.write(y);
    }
    ++tile;
    if (++it == in_tiles) {
      it = 0;
      if (++ot == shape.out_tiles) {
        ot = 0;
        tile = 0;
      }
    }
  }
}

// One output tile per iteration, T_out beats (store) or 2 T_out (add and scatter read the
// destination back); rows of a scatter are distinct tokens, so no two iterations touch one element.
// Two loops, one per kind, so each declares its own II; a job runs one of them.
inline void store_word(const LinearJob& job, long at, const fm_word_t& word, fm_word_t* qkv, fm_word_t* hidden,
                       fm_word_t* x) {
  if (job.dst == kToQkv) qkv[at] = word;
  else if (job.dst == kToHidden) hidden[at] = word;
  else x[at] = word;
}

// One row's output tile per iteration, over (group, output tile, row of the group). A tile is
// kWordsPerOutTile whole words (T_out >= 16) or part of one word (T_out < 16: each row's word is
// assembled over its tiles and written on the last). Add and scatter read each word back first
// (into x). Rows of a scatter are distinct tokens, so no two iterations touch one word; padding rows
// (-1) are skipped. Two loops, one per kind, so each declares its own II.
inline void linear_writer(const LinearJob& job, int out_dim, int out_tiles, fm_word_t* x, fm_word_t* qkv,
                          fm_word_t* hidden, const QueueScores scores, hls::stream<out_vec>& in,
                          hls::stream<dest_group>& dest_rows) {
  const int rows = job.rows - job.first_row, groups = ceil_div(rows, kTrows);
  const bool store = job.write_mode == kWriteStore;
  const int expert = job.expert < 0 ? 0 : job.expert;
  edgemoe_ledger::region_process(2);
  edgemoe_ledger::loop(job.unit, (long long)groups * out_tiles * kTrows, store ? kWriteStoreII : kWriteAccumulateII,
                       kCopyDepth + (store ? 0 : kMacDepth), edgemoe_ledger::single_beat(job.dst_port),
                       (long long)rows * out_dim * (store ? 1 : 2) * beat_bytes<fm_t>(), beat_bytes<fm_word_t>());
  const int store_steps = store ? groups * out_tiles * kTrows : 0, accumulate_steps = store ? 0 : groups * out_tiles * kTrows;
  int g = job.first_row, t = 0, r = 0;
  dest_group dest;
  out_vec y;
  fm_word_t pending[kTrows];  // T_out < 16: each row's word being assembled
#pragma HLS ARRAY_PARTITION variable = pending complete dim = 0
store_tiles:
  for (int step = 0; step < upto<kMaxRowGroups * kMaxOutTiles * kTrows>(store_steps); ++step) {
#pragma HLS PIPELINE II = kWriteStoreII
#pragma HLS LOOP_TRIPCOUNT max = kMaxRowGroups * kMaxOutTiles * kTrows
    if (t == 0 && r == 0) dest = dest_rows.read();
    if (r == 0) y = in.read();
    const int row = dest.row[r];
    const long row_word = (job.dst_offset + (long)row * job.dst_stride) / kWordElems;
    if (kTout >= kWordElems) {
      for (int w = 0; w < kWordsPerOutTile; ++w) {
        const int word = t * kWordsPerOutTile + w;
        if (row < 0 || word * kWordElems >= out_dim) continue;
        fm_word_t out;
        for (int e = 0; e < kWordElems; ++e) out.v[e] = y.v[r][(w * kWordElems + e) % kTout];
        store_word(job, row_word + word, out, qkv, hidden, x);
      }
    } else {
      const int lane0 = (t * kTout) % kWordElems;
      for (int o = 0; o < kTout; ++o) pending[r].v[(lane0 + o) % kWordElems] = y.v[r][o];
      if (row >= 0 && lane0 + kTout == kWordElems)
        store_word(job, row_word + (t * kTout) / kWordElems, pending[r], qkv, hidden, x);
    }
    if (++r == kTrows) {
      r = 0;
      if (++t == out_tiles) {
        t = 0;
        g += kTrows;
      }
    }
  }
  // DEPENDENCE proof: the loop reads a destination word back and writes it on the same bundle at
  // data-dependent addresses, so HLS would assume a read may follow a write to the same address and
  // serialise every iteration on an m_axi round trip. It cannot: (1) a job's rows are distinct -
  // the residual add writes rows first_row..rows-1 once each, and a scatter's rows are one expert
  // queue, where route_tokens appends a token at most once (its k picks are distinct experts); (2)
  // within a row, a word is read once, on its first tile, kept in pending[r], and written once, on
  // its last tile; no iteration reads a word after any iteration wrote it, and none writes it twice.
  // So no inter-iteration dependence exists through x. (Every add and scatter job targets x: the
  // writer reads back only x, so in the dataflow region qkv and hidden have one reader, the
  // reader, and one writer, this store loop.) The testbenches check the
  // claim access by access (access_check.h: kernel_linear, kernel_moe), and see a collision when a
  // queue lists a token twice.
  EDGEMOE_ACCESS_BEGIN();
accumulate_tiles:  // the residual add, or the MoE combine scattered by token (into x today)
  for (int step = 0; step < upto<kMaxRowGroups * kMaxOutTiles * kTrows>(accumulate_steps); ++step) {
#pragma HLS PIPELINE II = kWriteAccumulateII
#pragma HLS LOOP_TRIPCOUNT max = kMaxRowGroups * kMaxOutTiles * kTrows
#pragma HLS DEPENDENCE variable = x type = inter dependent = false
    if (t == 0 && r == 0) dest = dest_rows.read();
    if (r == 0) y = in.read();
    const int row = dest.row[r];
    const unit_t score = job.write_mode == kWriteScatterWeighted && row >= 0 ? scores[expert][g + r] : unit_t(0);
    const long row_word = (job.dst_offset + (long)row * job.dst_stride) / kWordElems;
    for (int w = 0; w < kWordsPerOutTile; ++w) {
      const int first = kTout >= kWordElems ? (t * kWordsPerOutTile + w) * kWordElems : t * kTout;
      if (row < 0 || first >= out_dim) continue;
      const long at = row_word + first / kWordElems;
      const int lane0 = first % kWordElems;
      fm_word_t& word = pending[r];
      if (lane0 == 0) {  // the word's first tile reads it back
        word = x[at];
        EDGEMOE_ACCESS(false, x, at);
      }
      for (int o = 0; o < kLanesPerWordTouch; ++o) {
        fm_t& d = word.v[(lane0 + o) % kWordElems];
        const fm_t value = y.v[r][(w * kWordElems + o) % kTout];
        if (job.write_mode == kWriteAdd) d = d + value;
        else d = d + score * value;  // the score multiplies the bias too, as FastMoE's combine
      }
      if (lane0 + kLanesPerWordTouch == kWordElems) {  // its last tile writes it
        x[at] = word;
        EDGEMOE_ACCESS(true, x, at);
      }
    }
    if (++r == kTrows) {
      r = 0;
      if (++t == out_tiles) {
        t = 0;
        g += kTrows;
      }
    }
  }
}

// Canonical dataflow: three processes, three single-producer single-consumer streams (tiles in,
// tiles out, and each row's destination from the reader to the writer, so only the reader reads
// the queue). The input stream holds a whole group's tiles, so the reader runs a group ahead of
// the MAC array's first output tile. xn and the image are only read (reader), qkv and x only written
// or read back (writer); `hidden` is read by the reader in one job (fc2) and written by the writer
// in another (fc1), never both in one job: if HLS orders the two processes for it, that dependence
// is false (check the csynth dataflow report).
inline void linear_unit(const WeightTiles tiles, const BiasTiles bias_tiles, const LinearShape& shape,
                        const LinearJob& job, const pixel_t* images, fm_word_t* x, const fm_word_t* xn,
                        fm_word_t* qkv, fm_word_t* hidden, const QueueTokens tokens, const QueueScores scores) {
#pragma HLS INLINE off
#pragma HLS DATAFLOW
  hls::stream<in_vec> rows_in("linear_rows_in");
  hls::stream<out_vec> rows_out("linear_rows_out");
  hls::stream<dest_group> dest_rows("linear_dest_rows");
#pragma HLS STREAM variable = rows_in depth = kMaxInTiles
  // A group's tile is T_rows x T_in x 27 bits wide and kMaxInTiles deep: LUTRAM (SRL), not BRAM.
#pragma HLS BIND_STORAGE variable = rows_in type = fifo impl = lutram
#pragma HLS STREAM variable = rows_out depth = 2
#pragma HLS STREAM variable = dest_rows depth = 4
  edgemoe_ledger::region_begin();
  linear_reader(job, shape.in, shape.in_tiles, images, xn, hidden, tokens, rows_in, dest_rows);
  mac_array(tiles, bias_tiles, shape, job.rows - job.first_row, job.gelu, job.unit, rows_in, rows_out);
  linear_writer(job, shape.out, shape.out_tiles, x, qkv, hidden, scores, rows_out, dest_rows);
  edgemoe_ledger::region_end(job.unit);
}

// Runs a job on the unit. In emulation a large job runs as two halves on two threads (rows are
// independent; an expert's queue holds each token once, so scattered halves never collide);
// not while the cycle ledger counts, which must see the one run the hardware makes.
inline void run_linear(const WeightTiles tiles, const BiasTiles bias_tiles, const LinearShape& shape,
                       const LinearJob& job, const pixel_t* images, fm_word_t* x, const fm_word_t* xn,
                       fm_word_t* qkv, fm_word_t* hidden, const QueueTokens tokens, const QueueScores scores) {
#ifdef EDGEMOE_EMU_PARALLEL
  if (job.rows - job.first_row >= 64 && job.read_mode != kReadPatches && !edgemoe_ledger::attached()) {
    LinearJob low = job, high = job;
    low.rows = high.first_row = job.first_row + (job.rows - job.first_row) / 2;
    emu_run_halves([&](int64_t part) {
      linear_unit(tiles, bias_tiles, shape, part == 0 ? low : high, images, x, xn, qkv, hidden, tokens, scores);
    });
    return;
  }
#endif
  linear_unit(tiles, bias_tiles, shape, job, images, x, xn, qkv, hidden, tokens, scores);
}

// One on-chip weight buffer: a matrix's tiles, its bias and its shape. The kernel has two, ping
// and pong, as two globals (m3vit_backbone.cpp: each partitioned by name, one bank per MAC lane),
// so a fetch into one and a job on the other touch different memories.
struct WeightBuffer {
  WeightTiles tiles;
  BiasTiles bias;
  LinearShape shape;
};

// Every linear job and every weight fetch of the kernel goes through here (one instance: the kernel
// top's ALLOCATION). A DATAFLOW region of two processes that share nothing, so they run at once:
// the job on one buffer (run_linear: the reader -> MAC array -> writer region, bundles act_in, act,
// scratch0-2) and the fetch of the next matrix into the other (bundles weights, weights_odd,
// params). Each buffer argument has one process (the job reads run_*, the fetch writes fetch_*),
// so there is no channel between them and the region takes as long as the slower one. out = 0: no
// fetch; rows = 0: no job.
inline void linear_step(const WeightTiles run_tiles, const BiasTiles run_bias, const LinearShape& run_shape,
                        const LinearJob& job, const pixel_t* images, fm_word_t* x, const fm_word_t* xn, fm_word_t* qkv,
                        fm_word_t* hidden, const QueueTokens tokens, const QueueScores scores,
                        const weight_word_t* weights, const weight_word_t* weights_odd, const fm_t* params,
                        long w_offset, long p_offset, int out, int in, WeightTiles fetch_tiles, BiasTiles fetch_bias,
                        LinearShape& fetch_shape) {
#pragma HLS INLINE off
#pragma HLS DATAFLOW
  edgemoe_ledger::region_begin();
  edgemoe_ledger::region_process(0);
  run_linear(run_tiles, run_bias, run_shape, job, images, x, xn, qkv, hidden, tokens, scores);
  edgemoe_ledger::region_process(1);
  load_linear_weights(weights, weights_odd, w_offset, params + p_offset, out, in, fetch_tiles, fetch_bias, fetch_shape);
  edgemoe_ledger::region_end(edgemoe_ledger::kUnitWeights);
}

// The job on buffer `run` (kPing or kPong, a constant at every call) while the next matrix is
// fetched into the other. Two calls of linear_step, one per role of the two buffers; both are its
// one instance, whose tile ports HLS connects to ping or pong through a 2:1 mux per MAC lane (on
// the read data; the fetch's write data is common to both, only its write enables differ: counted
// in schedule.h) - the same muxes a ping-pong (PIPO) channel has.
inline void step_on(WeightBuffer& ping, WeightBuffer& pong, int run, const LinearJob& job, const pixel_t* images,
                    fm_word_t* x, const fm_word_t* xn, fm_word_t* qkv, fm_word_t* hidden, const QueueTokens tokens,
                    const QueueScores scores, const weight_word_t* weights, const weight_word_t* weights_odd,
                    const fm_t* params, long w_offset, long p_offset, int out, int in) {
#pragma HLS INLINE
  if (run == kPing)
    linear_step(ping.tiles, ping.bias, ping.shape, job, images, x, xn, qkv, hidden, tokens, scores, weights, weights_odd,
                params, w_offset, p_offset, out, in, pong.tiles, pong.bias, pong.shape);
  else
    linear_step(pong.tiles, pong.bias, pong.shape, job, images, x, xn, qkv, hidden, tokens, scores, weights, weights_odd,
                params, w_offset, p_offset, out, in, ping.tiles, ping.bias, ping.shape);
}

}  // namespace edgemoe_hls
