// The unified linear unit: one T_in x T_out MAC array (weights stationary on chip, bias and GELU
// or ReLU fused) shared by Q/K/V, proj, dense MLPs, every expert's two layers, the patch embedding
// and the task heads' convolutions. A dataflow of reader -> MAC array -> writer; the reader takes
// rows in order, gathered through an expert's token queue, as image patches, or as convolution
// windows (window_reader.h); the writer stores, adds (residual), or scatters with a score-weighted
// accumulate (MoE combine).
//
// Schedule (kernels/README.md, "Schedules"): the MAC array is one flattened loop over
// (row group, output tile, input tile) at II = 1, a group being T_rows rows that share every weight
// read: R x T_out x T_in MACs per cycle from T_out x T_in weight banks. Each weight buffer has one
// bank per (o, i) lane, the row cache one bank per (row, input lane) (partitioned at the kernel top
// and below), so every cycle reads each bank once; each output's T_in products are summed along a
// DSP cascade (each DSP adds its product to its neighbour's P through PCIN), and one add per output
// accumulates the input tiles, reset on the first; bias and GELU of an output tile run in the same
// pipeline on its last one. Rows are independent, so the grouping changes no bits.
#pragma once

#include "access_check.h"
#include "fixed_math.h"
#include "layout.h"
#include "schedule.h"
#include "window_reader.h"

namespace edgemoe_hls {

static_assert((kTin & (kTin - 1)) == 0 && (kTout & (kTout - 1)) == 0,
              "MAC array lanes must be powers of two: tile indices are then shifts and masks, not dividers");
static_assert(kTin >= kWeightsPerWord,
              "a weight word's 28 lanes must land in 28 different input-lane banks (one write each per cycle)");


// One on-chip weight buffer: tiles [out_tile * in_tiles + in_tile][o][i] and the bias by output
// tile. Separate arrays (not a struct) so the kernel top can partition each by name: dims o and i
// completely (one bank per MAC, depth kMaxWeightTiles), the bias by o.
typedef wt_t WeightTiles[kMaxWeightTiles][kTout][kTin];
typedef fm_t BiasTiles[kMaxOutTiles][kTout];
// A Winograd convolution's buffer holds its terms' matrices (load_linear_weights), term j's output
// tile ot at tile (j out_tiles + ot) in_tiles; out is then each term's rows (the output channels).
struct LinearShape {
  int out, in, out_tiles, in_tiles;
};
constexpr int kPing = 0, kPong = 1;
// Words of one matrix: the backbone's largest, or a head convolution's pass (its tiles fit a buffer).
constexpr int kMaxWeightWords = max2(kMaxLinearOut * ceil_div(kMaxLinearIn, kWeightsPerWord),
                                     kTout * kMaxWeightTiles * ceil_div(kTin, kWeightsPerWord));
constexpr int kMaxWeightPairs = ceil_div(kMaxWeightWords, kWeightPorts);

// Fetch a packed [out][in] matrix (layout.h: rows of 512-bit words, 28 weights each, the words
// alternating between the two weight ports) and its bias from DDR into a buffer, re-packed into
// tiles: a word pair per iteration (one word of each port, each port one burst), II = 2: each word
// is rotated onto the input-lane banks (kTin >= 28: its 28 lanes land in 28 different banks), so a
// bank takes at most one write per word, two per iteration. Padding lanes of ragged edge tiles are
// never written: their input lanes are zero (assemble_tiles) and their outputs never sent
// (collect_rows), so whatever a previous matrix left there contributes nothing.
#ifdef EDGEMOE_EMU_EXACT_MAC
// Emulation: load_linear_weights' tiles (the same lanes written), word by word with each lane at
// its constant position instead of rotated onto the banks.
inline void emu_unpack_weights(const weight_word_t* w_even, const weight_word_t* w_odd, long first_pair, int words,
                               int row_words, int in, int in_tiles, int first_tile, WeightTiles tiles) {
  int word_row = 0, word_col = 0;  // the word's matrix row and its first column
  for (int wi = 0; wi < upto<kMaxWeightPairs * kWeightPorts>(words); ++wi) {
#pragma HLS LOOP_TRIPCOUNT max = kMaxWeightPairs * kWeightPorts
    const weight_word_t& word = (wi % kWeightPorts == 0 ? w_even : w_odd)[first_pair + wi / kWeightPorts];
    const int tile_base = first_tile + (word_row / kTout) * in_tiles, bank_row = word_row % kTout;
    for (int l = 0; l < kWeightsPerWord; ++l) {
      const int col = word_col + l;
      if (col < in) tiles[tile_base + col / kTin][bank_row][col % kTin] = weight_lane(word, l);
    }
    word_col += kWeightsPerWord;
    if (word_col >= row_words * kWeightsPerWord) {
      word_col = 0;
      ++word_row;
    }
  }
}
#endif

// A Winograd convolution's `terms` matrices are `term_words` apart in DDR: each term one burst of
// its rows, its tiles from tile j out_tiles in_tiles on.
inline void load_linear_weights(const weight_word_t* w_even, const weight_word_t* w_odd, long w_offset,
                                const fm_t* params, long bias_offset, int out, int in, WeightTiles tiles,
                                BiasTiles bias_tiles, LinearShape& shape, int terms = 1, long term_words = 0) {
#pragma HLS INLINE off
  if (out <= 0) return;  // nothing to fetch (linear_step): the buffer keeps its matrix
#ifdef EDGEMOE_EMU_EXACT_MAC
  ap_host::weights_written<in_vec>();  // the emulated MAC array's converted copies are stale from here
#endif
  shape.out = out;
  shape.in = in;
  shape.out_tiles = ceil_div(out, kTout);
  shape.in_tiles = ceil_div(in, kTin);
  const int row_words = int(words_per_row(in)), words = out * row_words, pairs = ceil_div(words, kWeightPorts);
  const int padded_out = shape.out_tiles * kTout;
load_terms:
  for (int term = 0; term < kWinogradTerms; ++term) {
    if (term >= terms) break;
    // Matrices and terms start at even words (layout.h: rows of a term are a multiple of 16).
    const long first_pair = (w_offset + term * term_words) / kWeightPorts;
    const int first_tile = term * shape.out_tiles * shape.in_tiles;
    int hardware_pairs = pairs;  // the pipelined loop's trip count (emulation: none, when unpacked faster)
#ifdef EDGEMOE_EMU_EXACT_MAC
    if (!edgemoe_ledger::attached()) {
      emu_unpack_weights(w_even, w_odd, first_pair, words, row_words, in, shape.in_tiles, first_tile, tiles);
      hardware_pairs = 0;
    }
#endif
    edgemoe_ledger::loop(edgemoe_ledger::kUnitWeights, pairs, kWeightPairII, kCopyDepth, edgemoe_ledger::burst(edgemoe_ledger::kPortWeights),
                         (long long)pairs * beat_bytes<weight_word_t>(), beat_bytes<weight_word_t>(), 0, 0,
                         edgemoe_ledger::burst(edgemoe_ledger::kPortWeightsOdd), (long long)pairs * beat_bytes<weight_word_t>(),
                         beat_bytes<weight_word_t>());
    int row = 0, word_in_row = 0, col_base = 0, tile_row = first_tile;  // tile_row = first_tile + (row / kTout) * in_tiles
  load_weights:
    for (int p = 0; p < upto<kMaxWeightPairs>(hardware_pairs); ++p) {
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
  }
  // The bias as one burst (out elements, unconditional), then the last tile's padding lanes zeroed
  // on chip.
  edgemoe_ledger::loop(edgemoe_ledger::kUnitWeights, out, kII, kCopyDepth, edgemoe_ledger::burst(edgemoe_ledger::kPortParams),
                       (long long)out * beat_bytes<fm_t>(), beat_bytes<fm_t>());
load_bias:
  for (int o = 0; o < upto<kMaxOutTiles * kTout>(out); ++o) {
#pragma HLS PIPELINE II = kII
#pragma HLS LOOP_TRIPCOUNT max = kMaxOutTiles * kTout
    bias_tiles[o / kTout][o % kTout] = params[bias_offset + o];
  }
  for (int o = 0; o < kTout; ++o) {
#pragma HLS UNROLL
    if (out + o < padded_out) bias_tiles[(out + o) / kTout][(out + o) % kTout] = fm_t(0);
  }
}

// A scatter row's token, from the reader to the writer (a type of this namespace: its stream's
// code is then compiled per ISA build, never shared between them; tests/cpp isa_symbols).
struct dest_token {
  short token;
};
// A scatter row's token goes to both ends of the writer side: the residual reader (which reads x's
// row there) and the writer (which writes it back), one stream each.
inline void send_token(short token, hls::stream<dest_token>& to_reader, hls::stream<dest_token>& to_writer) {
  dest_token d;
  d.token = token;
  to_reader.write(d);
  to_writer.write(d);
}

enum ReadMode { kReadRows = 0, kReadGather = 1, kReadPatches = 2, kReadWindows = 3 };
enum WriteMode { kWriteStore = 0, kWriteAdd = 1, kWriteScatterWeighted = 2 };

// Which of the kernel's buffers a job reads and writes. A job names them (no pointers in the job):
// every buffer reaches the unit as its own argument, so its one instance serves every call and each
// pointer stays one m_axi bundle.
enum Source { kFromXn = 0, kFromHidden = 1, kFromImage = 2, kFromQkv = 3 };
enum Destination { kToQkv = 0, kToHidden = 1, kToX = 2 };
typedef short QueueTokens[EDGEMOE_MAX_EXPERTS][EDGEMOE_MAX_TOKENS];  // the MoE expert queues (moe.h)
typedef unit_t QueueScores[EDGEMOE_MAX_EXPERTS][EDGEMOE_MAX_TOKENS];

// What a linear job does. Rows are packed: a source row is `in` elements, a destination row `out`
// (whole 512-bit words each), so rows read or written in order are one contiguous region.
// Stores go to qkv or hidden; adds and scatters to x.
struct LinearJob {
  int first_row, rows;  // rows [first_row, rows) of the job (first_row = 0 on hardware)
  ReadMode read_mode;
  Source src;
  int expert;  // kReadGather / kWriteScatterWeighted: the expert whose queue lists the rows
  int grid_h, grid_w, patch;  // kReadPatches: the image is [3][grid_h*patch][grid_w*patch] bytes ...
  long image_byte;            // ... starting at this byte of the images buffer
  WriteMode write_mode;
  Destination dst;
  long dst_offset;  // elements before the destination's row 0 (a whole number of words)
  bool gelu;
  // For the cycle ledger: what the job is, and the m_axi bundles its source and destination are on.
  edgemoe_ledger::Unit unit;
  edgemoe_ledger::Port src_port, dst_port;
  // kReadWindows: the convolution's input map and window (window_reader.h); rows are the pixels of
  // output row window.out_row. The task heads' epilogue: ReLU, saturating to fm_t's range.
  WindowShape window;
  bool relu;
};

// A job of no rows: linear_step's fetch with nothing to overlap.
inline LinearJob no_linear_job() {
  LinearJob job = {0, 0, kReadRows, kFromXn, 0, 0, 0, 0, 0, kWriteStore, kToHidden, 0, false,
                   edgemoe_ledger::kUnitWeights, edgemoe_ledger::kNoPort, edgemoe_ledger::kNoPort, no_window(), false};
  return job;
}

// Activation words of the longest row a job reads or writes, and of a whole job.
constexpr int kMaxRowWords = ceil_div(max2(kMaxLinearIn, kMaxLinearOut), kWordElems);
constexpr int kMaxJobWords = EDGEMOE_MAX_TOKENS * kMaxRowWords;
// The reader's and the writer's group phases: a group's words or tiles, whichever is more, for
// every group and one more.
constexpr int kMaxRunsPerRow = max2(kMaxRowWords, 3 * kMaxPatch);  // words, or patch rows of a patch
constexpr int kMaxAssembleSteps = (kMaxRowGroups + 1) * max2(kTrows * kMaxRunsPerRow, kMaxInTiles);
// A Winograd job's groups are pair groups of 2 T_rows pixels, each output tile in two halves (rows
// half T_rows + k), so the writer's store holds kCollectRows rows.
constexpr int kMaxCollectSteps =
    (kMaxRowGroups + 1) * max2(kCollectRows * kMaxRowWords, kEpilogueSides * kMaxOutTiles);

// `total` words of src from `base` (a burst: address base + i) into `words`; it counts rows (r)
// and words (w) beside the address, and on a row's first word a scatter's token goes to the
// residual reader and the writer (stream writes: the m_axi access stays unconditional). Called once
// per source, so each source has a loop of its own and only one runs per job.
inline void read_rows_in_order(const fm_word_t* src, long base, int total, int row_words, bool scatter,
                               const QueueTokens tokens, int expert, int first_row, edgemoe_ledger::Unit unit,
                               edgemoe_ledger::Port port, hls::stream<fm_word_t>& words, hls::stream<dest_token>& to_reader,
                               hls::stream<dest_token>& to_writer) {
#pragma HLS INLINE
  edgemoe_ledger::loop(unit, total, kII, kCopyDepth, edgemoe_ledger::burst(port),
                       (long long)total * beat_bytes<fm_word_t>(), beat_bytes<fm_word_t>());
  int r = 0, w = 0;
read_rows_in_order:
  for (int i = 0; i < upto<kMaxJobWords>(total); ++i) {
#pragma HLS PIPELINE II = kII
#pragma HLS LOOP_TRIPCOUNT max = kMaxJobWords
    if (scatter && w == 0) send_token(tokens[expert][first_row + r], to_reader, to_writer);
    words.write(src[base + i]);
    if (++w == row_words) {
      w = 0;
      ++r;
    }
  }
}

// The words of a job's rows, in row order. Rows read in order are one contiguous region of xn or
// hidden: one loop per source, address base + i, unconditional, so each is a burst (HLS splits it
// into max_read_burst_length beats with num_read_outstanding requests in flight); only one of them
// runs per job. Rows gathered through an expert's queue are one row of words per token: single
// beats. A scatter's destination tokens go to the writer as its rows are read, so only this process
// reads the queue.
// Patches: each patch row (P <= 16 pixels of one channel and image row, contiguous in the image)
// travels as one word's first P lanes, in im2col column order (channel, ky): an iteration reads the
// image word holding it, and the next one when it straddles a word boundary (II = 2); the addresses
// follow the patch, so single beats (one or two per patch row: 3P or 6P per patch).
// Windows: the convolution reader (window_reader.h) loads the input rows the job is the first to
// need from its source (xn, qkv or hidden: one load call each, so each bundle keeps its own burst
// loops) and sends the windows as tiles straight to the MAC array.
inline void load_window_rows(const LinearJob& job, const fm_word_t* xn, const fm_word_t* qkv, const fm_word_t* hidden,
                             LineBuffer& lb) {
#pragma HLS INLINE
  const bool windows = job.read_mode == kReadWindows;
  const int first = first_new_row(job.window), count = windows && !job.window.loaded ? new_rows(job.window) : 0;
  load_map_rows(xn, job.window, first, job.src == kFromXn ? count : 0, lb, job.unit, job.src_port);
  load_map_rows(qkv, job.window, first, job.src == kFromQkv ? count : 0, lb, job.unit, job.src_port);
  load_map_rows(hidden, job.window, first, job.src == kFromHidden ? count : 0, lb, job.unit, job.src_port);
}

// A 3x3 window job run as Winograd's pairs (emit_pairs): only on builds with kHeadWinograd, a
// compile-time constant, so no other build has the pairs' hardware.
inline bool winograd_job(const LinearJob& job) {
  return kHeadWinograd && job.read_mode == kReadWindows && job.window.winograd;
}

// A window job's tiles for the MAC array (windows: the job's, else none): Winograd's pairs or the
// direct windows, one of the two emitters running.
inline void emit_window_tiles(const LinearJob& job, bool windows, int in, const LineBuffer& lb,
                              hls::stream<in_vec>& window_tiles) {
#pragma HLS INLINE
  const bool pairs = windows && winograd_job(job);
  TapTable taps;
#pragma HLS ARRAY_PARTITION variable = taps dim = 2 complete
  const int window_in_tiles = windows && !pairs ? ceil_div(in, kTin) : 0;
  fill_tap_table(job.window, window_in_tiles, job.unit, taps);
  emit_windows(job.window, job.first_row, window_in_tiles > 0 ? job.rows : job.first_row, window_in_tiles, lb, taps,
               job.unit, window_tiles);
  if (kHeadWinograd)
    emit_pairs(job.window, job.first_row, pairs ? job.rows : job.first_row, ceil_div(in, kTin), lb, job.unit,
               window_tiles);
}

#ifdef EDGEMOE_EMU_EXACT_MAC
// Emulation without a cycle ledger: a window job's rows go from the line buffer straight into the
// exact MAC array (ap_host::window_rows, window_pairs), not through emit_windows' tiles.
inline bool emu_reads_line_buffer(const LinearJob& job) {
  return job.read_mode == kReadWindows && !edgemoe_ledger::attached();
}
#endif

inline void fetch_rows(const LinearJob& job, int in, const pixel_word_t* images, const fm_word_t* xn,
                       const fm_word_t* qkv, const fm_word_t* hidden, const QueueTokens tokens, LineBuffer& lb,
                       hls::stream<fm_word_t>& words, hls::stream<in_vec>& window_tiles,
                       hls::stream<dest_token>& to_reader, hls::stream<dest_token>& to_writer) {
#pragma HLS INLINE off
  namespace ledger = edgemoe_ledger;
  const int rows = job.rows - job.first_row, row_words = in / kWordElems;
  const long base = (long)job.first_row * row_words;
  const bool in_order = job.read_mode == kReadRows;
  const int xn_words = in_order && job.src == kFromXn ? rows * row_words : 0;
  const int hidden_words = in_order && job.src == kFromHidden ? rows * row_words : 0;
  const int gather_words = job.read_mode == kReadGather ? rows * row_words : 0;
  const bool scatter = job.write_mode == kWriteScatterWeighted;
  const int expert = job.expert < 0 ? 0 : job.expert;
  ledger::region_process(0);
  read_rows_in_order(xn, base, xn_words, row_words, scatter, tokens, expert, job.first_row, job.unit, job.src_port, words,
                     to_reader, to_writer);
  read_rows_in_order(hidden, base, hidden_words, row_words, scatter, tokens, expert, job.first_row, job.unit, job.src_port,
                     words, to_reader, to_writer);
  int r = 0, w = 0;
  ledger::loop(job.unit, gather_words, kII, kCopyDepth, ledger::single_beat(job.src_port),
               (long long)gather_words * beat_bytes<fm_word_t>(), beat_bytes<fm_word_t>());
  long row_base = 0;
read_gathered_rows:
  for (int i = 0; i < upto<kMaxJobWords>(gather_words); ++i) {
#pragma HLS PIPELINE II = kII
#pragma HLS LOOP_TRIPCOUNT max = kMaxJobWords
    if (w == 0) {
      const short token = tokens[expert][job.first_row + r];
      row_base = (long)token * row_words;
      if (scatter) send_token(token, to_reader, to_writer);
    }
    words.write(xn[row_base + w]);
    if (++w == row_words) {
      w = 0;
      ++r;
    }
  }
  const int P = job.patch, width = job.grid_w * P;
  const long plane = (long)job.grid_h * P * width;
  const int patch_runs = job.read_mode == kReadPatches ? rows * 3 * P : 0;
  // A patch row never straddles a word when P divides 64 (then every patch row starts at a multiple
  // of P, images included, as 3 H W is a multiple of P^2); otherwise count the worst case.
  const long long patch_beats = (long long)patch_runs * (kPixelsPerWord % (P > 0 ? P : 1) == 0 ? 1 : 2);
  ledger::loop(job.unit, patch_runs, kPatchRunII, kCopyDepth, ledger::single_beat(job.src_port),
               patch_beats * beat_bytes<pixel_word_t>(), beat_bytes<pixel_word_t>());
  long origin = job.image_byte, at = job.image_byte;  // the patch's top-left byte, the patch row's
  int c = 0, ky = 0, px = 0;  // patch jobs are never split (run_linear): they start at patch 0
read_patch_rows:
  for (int i = 0; i < upto<EDGEMOE_MAX_TOKENS * 3 * kMaxPatch>(patch_runs); ++i) {
#pragma HLS PIPELINE II = kPatchRunII
#pragma HLS LOOP_TRIPCOUNT max = EDGEMOE_MAX_TOKENS * 3 * kMaxPatch
    const long word_index = at / kPixelsPerWord;
    const int offset = int(at % kPixelsPerWord);
    const pixel_word_t first = images[word_index];
    pixel_word_t second = first;
    if (offset + P > kPixelsPerWord) second = images[word_index + 1];
    fm_word_t run;
    for (int e = 0; e < kWordElems; ++e) {
      const int k = offset + e;
      const pixel_t pixel = k < kPixelsPerWord ? pixel_of(first, k) : pixel_of(second, k - kPixelsPerWord);
      run.v[e] = e < P ? fm_t(pixel) : fm_t(0);
    }
    words.write(run);
    at += width;  // the next image row of the patch, then the next channel, then the next patch
    if (++ky == P) {
      ky = 0;
      at += plane - (long)P * width;
      if (++c == 3) {
        c = 0;
        origin += P;
        if (++px == job.grid_w) {
          px = 0;
          origin += (long)(P - 1) * width;
        }
        at = origin;
      }
    }
  }
  bool windows = job.read_mode == kReadWindows;
  load_window_rows(job, xn, qkv, hidden, lb);
#ifdef EDGEMOE_EMU_EXACT_MAC
  if (emu_reads_line_buffer(job)) windows = false;  // the emulated MAC array reads the line buffer itself
#endif
  emit_window_tiles(job, windows, in, lb, window_tiles);
}

// The MAC array's input: each group's tiles (T_rows rows x T_in lanes), from runs of a row's
// columns in order: activation words (16 columns) or patch rows (P columns, im2col order). One loop
// of phases, one per group and one more; in phase g, iteration j stores run j of group g into one
// half of a double-buffered group store and sends tile j of group g - 1 from the other half, so the
// runs arrive at one a cycle while the tiles go out. The store is partitioned by row and lane
// (LUTRAM banks, the half an address bit): a run is rotated onto the lane banks as the weight
// loader does (<= 16 <= T_in consecutive columns: different lanes), writing each bank at most
// once, and a tile reads every bank once: one write and one read per bank a cycle. Lanes past `in`
// and rows past the job's end are sent as zero, so nothing a previous group left there counts.
inline void assemble_tiles(const LinearJob& job, int in, int in_tiles, hls::stream<fm_word_t>& runs,
                           hls::stream<in_vec>& out) {
#pragma HLS INLINE off
  mac_in_t group[2][kMaxInTiles][kTrows][kTin];
#pragma HLS ARRAY_PARTITION variable = group dim = 3 complete
#pragma HLS ARRAY_PARTITION variable = group dim = 4 complete
#pragma HLS BIND_STORAGE variable = group type = ram_s2p impl = lutram
  // An iteration writes half g & 1 and reads half (g - 1) & 1: never the same element.
#pragma HLS DEPENDENCE variable = group type = intra dependent = false
  const bool patches = job.read_mode == kReadPatches;
  const int run_width = patches ? job.patch : kWordElems;
  const int runs_per_row = patches ? 3 * job.patch : in / kWordElems;
  const int rows = job.rows - job.first_row, groups = ceil_div(rows, kTrows);
  const int phase = max2(kTrows * runs_per_row, in_tiles);
  // A window job's tiles bypass it (fetch_rows sends them to the MAC array).
  const int steps = rows > 0 && job.read_mode != kReadWindows ? (groups + 1) * phase : 0;
  edgemoe_ledger::region_process(1);
  edgemoe_ledger::loop(job.unit, steps, kII, kCopyDepth);
  int g = 0, j = 0, r = 0, k = 0, col0 = 0;  // k: the run within row r, starting at column col0
assemble_rows:
  for (int step = 0; step < upto<kMaxAssembleSteps>(steps); ++step) {
#pragma HLS PIPELINE II = kII
#pragma HLS LOOP_TRIPCOUNT max = kMaxAssembleSteps
    if (g < groups && r < kTrows && g * kTrows + r < rows) {
      const fm_word_t run = runs.read();
      const int rotation = col0 & (kTin - 1);
      for (int b = 0; b < kTin; ++b) {
        const int l = (b - rotation) & (kTin - 1);
        if (l < run_width) group[g & 1][(col0 + l) / kTin][r][b] = mac_in_t(run.v[l % kWordElems]);
      }
    }
    if (g > 0 && j < in_tiles) {
      in_vec x;
      for (int rr = 0; rr < kTrows; ++rr)
        for (int i = 0; i < kTin; ++i) {
          const bool inside = (g - 1) * kTrows + rr < rows && j * kTin + i < in;
          x.v[rr][i] = inside ? group[(g - 1) & 1][j][rr][i] : mac_in_t(0);
        }
      out.write(x);
    }
    col0 += run_width;
    if (++k == runs_per_row) {
      k = 0;
      col0 = 0;
      ++r;
    }
    if (++j == phase) {
      j = 0;
      r = 0;
      k = 0;
      col0 = 0;
      ++g;
    }
  }
}

// The MAC array: one flattened loop over (row group, output tile, input tile), II = 1.
// The heads' epilogue: ReLU, saturating to fm_t's largest value (an accumulator is wider than fm_t;
// the backbone's other outputs keep fm_t's wrap-around, which their measured ranges never reach).
inline fm_t relu_saturated(acc_t acc) {
  typedef ap_fixed<fm_t::width, fm_t::iwidth, AP_TRN, AP_SAT> fm_saturating_t;
  return acc < acc_t(0) ? fm_t(0) : fm_t(fm_saturating_t(acc));
}
// An output's epilogue: GELU (fc1), ReLU (the heads' convolutions) or none.
inline fm_t mac_output(acc_t acc, bool gelu, bool relu) {
  return gelu ? edgemoe_hls::gelu(fm_t(acc)) : relu ? relu_saturated(acc) : fm_t(acc);
}

// A window job's tiles come from the convolution reader (fetch_rows) instead of assemble_tiles; the
// row cache is deep enough for a 3x3 window's K, or a pair group's four terms (kMaxCachedInTiles).
// A Winograd job (emit_pairs) walks (pair group, output tile, term, input tile): its rows are T_rows
// pixel pairs, each term's sums go into the pair's two outputs, 2 y0 = M0 + M1 + M2 and
// 2 y1 = M1 - M2 - M3, in registers per (row, output lane) (each term's last input tile adds once:
// a one-add recurrence), halved exactly on the last term (each is twice an integer sum), with bias
// and ReLU; the pair group's 2 T_rows pixels leave as two output tiles, the second in the next
// iteration (never a last tile: a term takes >= 3 input tiles) and one more iteration at the end.
inline void mac_array(const WeightTiles tiles, const BiasTiles bias_tiles, const LinearShape& shape, const LinearJob& job,
                      hls::stream<in_vec>& in, hls::stream<in_vec>& window_tiles, hls::stream<out_vec>& out
#ifdef EDGEMOE_EMU_EXACT_MAC
                      , const LineBuffer& lb
#endif
) {
#pragma HLS INLINE off
  const int rows = job.rows - job.first_row;
  const bool gelu = job.gelu, relu = job.relu, streamed = job.read_mode == kReadWindows;
  const bool winograd = winograd_job(job);  // constant false without kHeadWinograd
  const edgemoe_ledger::Unit unit = job.unit;
  mac_in_t row_cache[kMaxCachedInTiles][kTrows][kTin];
#pragma HLS ARRAY_PARTITION variable = row_cache dim = 2 complete
#pragma HLS ARRAY_PARTITION variable = row_cache dim = 3 complete
// One port writes (a group's first output tile) or reads (the others): simple dual port.
#pragma HLS BIND_STORAGE variable = row_cache type = ram_s2p impl = lutram
  // Per output, a step's T_in products are summed along a chain of DSP48E2s, each adding its product
  // to the previous one's P (the PCIN cascade, a register a lane: the later lanes' operands wait in
  // pipeline registers, SRLs), and one add per output accumulates the chains over the input tiles
  // (`sum`, reset on the first). No fabric adder tree: a chain is in the DSPs' own adders
  // (EXPRESSION_BALANCE off keeps it a chain, not a tree). Wrapping adds are associative, so this
  // equals a serial sum bit for bit.
  acc_t sum[kTrows][kTout];
#pragma HLS ARRAY_PARTITION variable = sum complete dim = 0
  acc_t twice_y[2][kTrows][kTout];  // a Winograd pair's 2 y0, 2 y1
#pragma HLS ARRAY_PARTITION variable = twice_y complete dim = 0
  const int terms = winograd ? kWinogradTerms : 1, in_tiles = shape.in_tiles;
  const int groups = winograd ? ceil_div(ceil_div(rows, 2), kTrows) : ceil_div(rows, kTrows);
  const int mac_steps = groups * shape.out_tiles * terms * in_tiles;
  const int steps = mac_steps + (winograd && mac_steps > 0 ? 1 : 0);
  const int term_tiles = shape.out_tiles * in_tiles;  // weight tiles between terms (once per job)
  edgemoe_ledger::region_process(2);
  const long long useful_macs = winograd ? (long long)ceil_div(rows, 2) * terms * shape.out * shape.in
                                         : (long long)rows * shape.out * shape.in;
  edgemoe_ledger::loop(unit, steps, kII, kLinearDepth, edgemoe_ledger::kNoPort, 0, 1, useful_macs, kTrows * kTin * kTout);
#ifdef EDGEMOE_EMU_EXACT_MAC
  // Emulation: the same exact sums, reduced to acc_t's width as the lanes' wrapping adds do
  // (hls_host/exact_mac.h), when no cycle ledger is counting this loop.
  static_assert(acc_t::width - acc_t::iwidth == (mac_in_t::width - mac_in_t::iwidth) + (wt_t::width - wt_t::iwidth),
                "the sums are in units of acc_t's LSB");
  static_assert(acc_t::kLazyWrap, "acc_t wraps (AP_WRAP): one wrap of the exact sum equals the lanes' wrapping adds");
  static_assert(mac_in_t::width <= 32 && wt_t::width <= 32, "operands of 32 bits or fewer hold canonical raw bits (.V)");
  if (!edgemoe_ledger::attached()) {
    const auto finish = [&](int, int ot, const int64_t (&sums)[kTrows][kTout]) {
      out_vec y;
      for (int o = 0; o < kTout; ++o) {
        const fm_t bias = bias_tiles[ot][o];
        for (int r = 0; r < kTrows; ++r) {
          acc_t sum;
          sum.V = ap_host::wrap<acc_t::width, true>(sums[r][o]);
          acc_t acc = bias;
          acc += sum;
          y.v[r][o] = mac_output(acc, gelu, relu);
        }
      }
      out.write(y);
    };
    if (emu_reads_line_buffer(job)) {
      // The rows straight from the line buffer (hls_host/exact_mac.h), not through the emitters' tiles.
      const auto window_rows = [&](int first_group, int count, auto* a, int K) {
        ap_host::window_rows<kTrows, kWordElems>(job.window, job.first_row, job.rows, lb, first_group, count, a, K);
      };
      const auto window_pairs = [&](int first_pair, int count, auto* a, int lda) {
        ap_host::window_pairs<kTrows, kWordElems>(job.window, job.first_row, lb, first_pair, count, a, lda);
      };
      // Winograd's F(2, 3) for its jobs (the pair groups' tiles in the pipelined loop's order); the
      // direct rows for the others. Neither has called finish when its scratch memory cannot be had.
      if (winograd ? ap_host::exact_conv3_rows<kTrows, kTout, kTin, acc_t::width, in_vec>(window_pairs, tiles, groups, rows, in_tiles,
                                                                             shape.out_tiles, job.window.channels, finish)
                   : ap_host::exact_mac_rows<kTrows, kTout, kTin, in_vec>(window_rows, tiles, ceil_div(rows, kTrows),
                                                                          in_tiles, shape.out_tiles, finish))
        return;
      // No scratch memory at all: fetch_rows sent no tiles (emu_reads_line_buffer), so this process
      // emits them for the pipelined loop below.
      emit_window_tiles(job, true, shape.in, lb, window_tiles);
    } else if (ap_host::exact_mac_array<kTrows, kTout, kTin, in_vec>(in, tiles, groups, in_tiles, shape.out_tiles,
                                                                     finish)) {
      return;
    }
  }
#endif
  // tile = term term_tiles + ot in_tiles + it and the row cache's cached = term in_tiles + it, kept
  // incrementally (no multipliers in the loop).
  int ot = 0, term = 0, it = 0, term_base = 0, ot_base = 0, cached = 0;
  out_vec pending;  // a Winograd pair group's second output tile, sent in the next iteration
  bool has_pending = false;
mac_steps:
  for (int step = 0; step < upto<kMaxRowGroups * kMaxWeightTiles + 1>(steps); ++step) {
#pragma HLS PIPELINE II = kII
#pragma HLS LOOP_TRIPCOUNT max = kMaxRowGroups * kMaxWeightTiles + 1
#pragma HLS EXPRESSION_BALANCE off
    const bool real = step < mac_steps;  // false: a Winograd job's last iteration, sending only
    in_vec x;
    if (ot == 0 && real) {  // a new group: its tiles arrive once and are cached for the other output tiles
      x = streamed ? window_tiles.read() : in.read();
      for (int r = 0; r < kTrows; ++r)
        for (int i = 0; i < kTin; ++i) row_cache[cached][r][i] = x.v[r][i];
    } else {
      for (int r = 0; r < kTrows; ++r)
        for (int i = 0; i < kTin; ++i) x.v[r][i] = row_cache[cached][r][i];
    }
    if (it == 0)
      for (int r = 0; r < kTrows; ++r)
        for (int o = 0; o < kTout; ++o) sum[r][o] = 0;
    const int tile = term_base + ot_base + it;
    for (int r = 0; r < kTrows; ++r)
      for (int o = 0; o < kTout; ++o) {
        acc_t chain = 0;  // the cascade: lane i's DSP adds its product to lane i - 1's P
#pragma HLS BIND_OP variable = chain op = add impl = dsp
        for (int i = 0; i < kTin; ++i) chain += x.v[r][i] * tiles[tile][o][i];
        sum[r][o] += chain;  // accumulating over the input tiles (a fabric add, counted in schedule.h)
      }
    const bool last_tile = real && it == in_tiles - 1;
    if (winograd && last_tile)
      for (int r = 0; r < kTrows; ++r)
        for (int o = 0; o < kTout; ++o) {
          // 2 y0 = M0 + M1 + M2, 2 y1 = M1 - M2 - M3
          if (term == 0) twice_y[0][r][o] = 0;
          if (term == 0) twice_y[1][r][o] = 0;
          if (term < 3) twice_y[0][r][o] += sum[r][o];
          if (term == 1) twice_y[1][r][o] += sum[r][o];
          if (term >= 2) twice_y[1][r][o] -= sum[r][o];
        }
    out_vec y;
    bool send = false;
    if (has_pending) {
      y = pending;
      send = true;
      has_pending = false;
    } else if (last_tile && (!winograd || term == kWinogradTerms - 1)) {
      for (int o = 0; o < kTout; ++o) {
        const fm_t bias = bias_tiles[ot][o];  // one read of the bias bank for all rows
        for (int side = 0; side < kEpilogueSides; ++side)
          for (int k = 0; k < kTrows; ++k) {
            // Winograd: pixel side T_rows + k of the pair group, pair (side T_rows + k) / 2.
            const int pixel = side * kTrows + k, r = pixel / 2;
            acc_t acc = bias;
            if (!winograd) acc += sum[k][o];
            else acc += twice_y[pixel % 2][r][o] >> 1;  // exact: twice an integer sum
            if (side == 0) y.v[k][o] = mac_output(acc, gelu, relu);
            else pending.v[k][o] = relu ? relu_saturated(acc) : fm_t(acc);  // Winograd only: no GELU for it
          }
      }
      send = true;
      has_pending = winograd;
    }
    if (send) out.write(y);
    ++cached;
    if (++it == in_tiles) {
      it = 0;
      term_base += term_tiles;
      if (++term == terms) {
        term = 0;
        term_base = 0;
        cached = 0;
        ot_base += in_tiles;
        if (++ot == shape.out_tiles) {
          ot = 0;
          ot_base = 0;
        }
      }
    }
  }
}

// A scatter's tokens in flight from fetch_rows to read_residual and to write_rows (linear_unit: at
// most three groups and a row), with room to spare.
constexpr int kDestTokensDepth = 8 * kTrows;

// The MAC array's output tiles back into words in row order, for the writer: the reader's phases
// mirrored. In phase g, iteration j stores tile j of group g into one half of a double-buffered
// group store and sends word j of group g - 1 (its real rows only) from the other. The store is
// [half][tile][row][lane group][lane]: lanes in groups of min(T_out, 16), so a word (16 lanes)
// reads each of its lanes from a bank whose lane index is the word's constant element e. T_out >= 16:
// the word is lane group w mod (T_out / 16) of tile w / (T_out / 16), a 2:1 (or wider) choice of bank
// per lane, each read once; T_out < 16: the word spans 16 / T_out tiles, which the cyclic partition
// of the tile dimension puts in different banks, one read each. A tile writes every (row, lane) bank
// once: one write and one read per bank a cycle.
constexpr int kOutLaneGroup = kTout >= kWordElems ? kWordElems : kTout;
constexpr int kOutLaneGroups = kTout / kOutLaneGroup;
inline void collect_rows(const LinearJob& job, int out_dim, int out_tiles, hls::stream<out_vec>& in,
                         hls::stream<fm_word_t>& words) {
#pragma HLS INLINE off
  fm_t group[2][kMaxOutTiles][kCollectRows][kOutLaneGroups][kOutLaneGroup];
#if EDGEMOE_LINEAR_TOUT < 16
#pragma HLS ARRAY_PARTITION variable = group dim = 2 cyclic factor = kTilesPerWord
#endif
#pragma HLS ARRAY_PARTITION variable = group dim = 3 complete
#pragma HLS ARRAY_PARTITION variable = group dim = 4 complete
#pragma HLS ARRAY_PARTITION variable = group dim = 5 complete
#pragma HLS BIND_STORAGE variable = group type = ram_s2p impl = lutram
  // An iteration writes half g & 1 and reads half (g - 1) & 1: never the same element.
#pragma HLS DEPENDENCE variable = group type = intra dependent = false
  const bool pairs = winograd_job(job);
  const int group_rows = pairs ? kPairGroupPixels : kTrows, halves = pairs ? 2 : 1;
  const int rows = job.rows - job.first_row, groups = ceil_div(rows, group_rows), row_words = out_dim / kWordElems;
  const int phase = max2(group_rows * row_words, halves * out_tiles);
  const int steps = rows > 0 ? (groups + 1) * phase : 0;
  edgemoe_ledger::region_process(3);
  edgemoe_ledger::loop(job.unit, steps, kII, kCopyDepth);
  int g = 0, j = 0, tile = 0, half = 0, r = 0, w = 0;  // tile j's output tile and half, as counters
collect_steps:
  for (int step = 0; step < upto<kMaxCollectSteps>(steps); ++step) {
#pragma HLS PIPELINE II = kII
#pragma HLS LOOP_TRIPCOUNT max = kMaxCollectSteps
    if (g < groups && j < halves * out_tiles) {
      const out_vec y = in.read();
      for (int rr = 0; rr < kTrows; ++rr)
        for (int o = 0; o < kTout; ++o)
          group[g & 1][tile][half * kTrows + rr][o / kOutLaneGroup][o % kOutLaneGroup] = y.v[rr][o];
      if (++half == halves) {
        half = 0;
        ++tile;
      }
    }
    if (g > 0 && r < group_rows && (g - 1) * group_rows + r < rows) {
      fm_word_t word;
      for (int e = 0; e < kWordElems; ++e) {
        const int t = kTout >= kWordElems ? w / kOutLaneGroups : w * kTilesPerWord + e / kTout;
        const int lane_group = kTout >= kWordElems ? w % kOutLaneGroups : 0;
        const int lane = kTout >= kWordElems ? e : e % kTout;
        word.v[e] = group[(g - 1) & 1][t][r][lane_group][lane];
      }
      words.write(word);
    }
    if (++w == row_words) {
      w = 0;
      ++r;
    }
    if (++j == phase) {
      j = 0;
      tile = 0;
      half = 0;
      r = 0;
      w = 0;
      ++g;
    }
  }
}

// Where a job's output rows go: `rows` packed rows of `row_words` words (`total` in all) from word
// `base` of the destination, or, for a scatter, each at its token's row (token_row).
struct DestRows {
  int rows, row_words, total;
  long base;
};
inline DestRows dest_rows_of(const LinearJob& job, int out_dim) {
  DestRows d;
  d.rows = job.rows - job.first_row;
  d.row_words = out_dim / kWordElems;
  d.total = d.rows * d.row_words;
  d.base = job.dst_offset / kWordElems + (long)job.first_row * d.row_words;
  return d;
}
inline long token_row(const LinearJob& job, const DestRows& d, dest_token token) {
  return job.dst_offset / kWordElems + (long)token.token * d.row_words;
}

// What the residual add and the MoE combine add to: x's rows the job writes, read ahead of the
// writer (one reader of x, lexically before its one writer: every word is read before it is written
// back, so no loop reads and writes x). The add's rows are one region, address base + i (a burst);
// a scatter's rows are the tokens', single beats. Stores read nothing.
inline void read_residual(const LinearJob& job, int out_dim, const fm_word_t* x, hls::stream<dest_token>& tokens,
                          hls::stream<fm_word_t>& residual) {
#pragma HLS INLINE off
  namespace ledger = edgemoe_ledger;
  const DestRows d = dest_rows_of(job, out_dim);
  const long base = d.base;
  const int add_words = job.write_mode == kWriteAdd ? d.total : 0;
  const int scatter_words = job.write_mode == kWriteScatterWeighted ? d.total : 0;
  const long long word_bytes = beat_bytes<fm_word_t>();
  ledger::region_process(4);
  EDGEMOE_ACCESS_BEGIN();
  ledger::loop(job.unit, add_words, kII, kCopyDepth, ledger::burst(job.dst_port), add_words * word_bytes, word_bytes);
read_residual_rows:
  for (int i = 0; i < upto<kMaxJobWords>(add_words); ++i) {
#pragma HLS PIPELINE II = kII
#pragma HLS LOOP_TRIPCOUNT max = kMaxJobWords
    residual.write(x[base + i]);
    EDGEMOE_ACCESS(false, x, base + i);
  }
  ledger::loop(job.unit, scatter_words, kII, kCopyDepth, ledger::single_beat(job.dst_port), scatter_words * word_bytes,
               word_bytes);
  int w = 0;
  long row_base = 0;
read_scattered_rows:
  for (int i = 0; i < upto<kMaxJobWords>(scatter_words); ++i) {
#pragma HLS PIPELINE II = kII
#pragma HLS LOOP_TRIPCOUNT max = kMaxJobWords
    if (w == 0) row_base = token_row(job, d, tokens.read());
    residual.write(x[row_base + w]);
    EDGEMOE_ACCESS(false, x, row_base + w);
    if (++w == d.row_words) w = 0;
  }
}

// `total` words from `words` to dst from `base` (a burst: address base + i). Called once per
// destination, so each has a loop of its own and only one runs per job.
inline void store_rows_in_order(fm_word_t* dst, long base, int total, edgemoe_ledger::Unit unit,
                                edgemoe_ledger::Port port, hls::stream<fm_word_t>& words) {
#pragma HLS INLINE
  edgemoe_ledger::loop(unit, total, kII, kCopyDepth, edgemoe_ledger::burst(port),
                       (long long)total * beat_bytes<fm_word_t>(), beat_bytes<fm_word_t>());
store_rows_in_order:
  for (int i = 0; i < upto<kMaxJobWords>(total); ++i) {
#pragma HLS PIPELINE II = kII
#pragma HLS LOOP_TRIPCOUNT max = kMaxJobWords
    dst[base + i] = words.read();
  }
}

// The job's output words, in row order, to DDR; only writes. A store (to qkv or hidden) and the
// residual add (to x: the word the residual reader read, plus the output) cover one contiguous
// region, address base + i: bursts, one loop per destination, one of them runs per job. A scatter
// goes to each row's token: single beats. The testbenches record every access of the add and the
// scatter (access_check.h): each word of x is read once and then written once per job, which a
// queue listing a token twice would break.
inline void write_rows(const LinearJob& job, int out_dim, fm_word_t* x, fm_word_t* qkv, fm_word_t* hidden,
                       const QueueScores scores, hls::stream<fm_word_t>& words, hls::stream<fm_word_t>& residual,
                       hls::stream<dest_token>& tokens) {
#pragma HLS INLINE off
  namespace ledger = edgemoe_ledger;
  const DestRows d = dest_rows_of(job, out_dim);
  const long base = d.base;
  const int total = d.total;
  const bool store = job.write_mode == kWriteStore;
  const int qkv_words = store && job.dst == kToQkv ? total : 0;
  const int hidden_words = store && job.dst == kToHidden ? total : 0;
  const int add_words = job.write_mode == kWriteAdd ? total : 0;
  const int scatter_words = job.write_mode == kWriteScatterWeighted ? total : 0;
  const int expert = job.expert < 0 ? 0 : job.expert;
  const long long word_bytes = beat_bytes<fm_word_t>();
  ledger::region_process(5);
  store_rows_in_order(qkv, base, qkv_words, job.unit, job.dst_port, words);
  store_rows_in_order(hidden, base, hidden_words, job.unit, job.dst_port, words);
  ledger::loop(job.unit, add_words, kII, kCopyDepth, ledger::burst(job.dst_port), add_words * word_bytes, word_bytes);
add_rows:
  for (int i = 0; i < upto<kMaxJobWords>(add_words); ++i) {
#pragma HLS PIPELINE II = kII
#pragma HLS LOOP_TRIPCOUNT max = kMaxJobWords
    fm_word_t word = residual.read();
    const fm_word_t y = words.read();
    for (int e = 0; e < kWordElems; ++e) word.v[e] = word.v[e] + y.v[e];
    x[base + i] = word;
    EDGEMOE_ACCESS(true, x, base + i);
  }
  ledger::loop(job.unit, scatter_words, kII, kCopyDepth + kMacDepth, ledger::single_beat(job.dst_port),
               scatter_words * word_bytes, word_bytes);
  int r = 0, w = 0;
  long row_base = 0;
  unit_t score = 0;
scatter_rows:
  for (int i = 0; i < upto<kMaxJobWords>(scatter_words); ++i) {
#pragma HLS PIPELINE II = kII
#pragma HLS LOOP_TRIPCOUNT max = kMaxJobWords
    if (w == 0) {  // a row's first word: its token and score
      row_base = token_row(job, d, tokens.read());
      score = scores[expert][job.first_row + r];
    }
    fm_word_t word = residual.read();
    const fm_word_t y = words.read();
    for (int e = 0; e < kWordElems; ++e) word.v[e] = word.v[e] + score * y.v[e];  // the score weighs the bias too, as FastMoE's combine
    x[row_base + w] = word;
    EDGEMOE_ACCESS(true, x, row_base + w);
    if (++w == d.row_words) {
      w = 0;
      ++r;
    }
  }
}

// Canonical dataflow: six processes, each stream with one producer and one consumer:
// fetch_rows -> assemble_tiles -> mac_array -> collect_rows -> write_rows, read_residual ->
// write_rows (x's rows the add or scatter adds to), and a scatter's tokens from fetch_rows (the
// queue's only reader) to read_residual and to write_rows. Each m_axi bundle has one reader and one
// writer, the reader lexically first: the image, xn and hidden are read by fetch_rows (hidden only
// when fc2 reads it; fc1 writes it through write_rows in another job: if HLS orders the two
// processes for it, that dependence is false - check the csynth dataflow report), x by
// read_residual; qkv, hidden and x written by write_rows. rows_in holds a whole group's tiles, so
// the reader runs a group ahead of the MAC array's first output tile. Tokens: the writer takes
// group g's while collect_rows sends group g, which it does while taking group g + 1's tiles from
// the MAC array, which got them from assemble_tiles while it took group g + 2's words: fetch_rows
// is then at most three groups and a FIFO of words ahead of the writer, and the residual reader at
// most its FIFO ahead of the writer, so both token streams stay within kDestTokensDepth (no
// deadlock).
inline void linear_unit(const WeightTiles tiles, const BiasTiles bias_tiles, const LinearShape& shape,
                        const LinearJob& job, const pixel_word_t* images, fm_word_t* x, const fm_word_t* xn,
                        fm_word_t* qkv, fm_word_t* hidden, const QueueTokens tokens, const QueueScores scores,
                        LineBuffer& lb) {
#pragma HLS INLINE off
#pragma HLS DATAFLOW
  hls::stream<fm_word_t> words_in("linear_words_in");
  hls::stream<in_vec> rows_in("linear_rows_in");
  hls::stream<in_vec> window_tiles("linear_window_tiles");
  hls::stream<out_vec> rows_out("linear_rows_out");
  hls::stream<fm_word_t> words_out("linear_words_out");
  hls::stream<fm_word_t> residual("linear_residual");
  hls::stream<dest_token> reader_tokens("linear_reader_tokens"), writer_tokens("linear_writer_tokens");
#pragma HLS STREAM variable = words_in depth = 4
#pragma HLS STREAM variable = rows_in depth = kMaxInTiles
  // A group's tile is T_rows x T_in x 27 bits wide and kMaxInTiles deep: LUTRAM (SRL) where the
  // board is short of BRAM, else BRAM (schedule.h, EDGEMOE_SMALL_MEMORIES_IN_LUTS).
#if EDGEMOE_SMALL_MEMORIES_IN_LUTS
#pragma HLS BIND_STORAGE variable = rows_in type = fifo impl = lutram
#else
#pragma HLS BIND_STORAGE variable = rows_in type = fifo impl = bram
#endif
#pragma HLS STREAM variable = window_tiles depth = 2
#pragma HLS STREAM variable = rows_out depth = 2
#pragma HLS STREAM variable = words_out depth = 4
#pragma HLS STREAM variable = residual depth = 4
#pragma HLS STREAM variable = reader_tokens depth = kDestTokensDepth
#pragma HLS STREAM variable = writer_tokens depth = kDestTokensDepth
  edgemoe_ledger::region_begin();
  fetch_rows(job, shape.in, images, xn, qkv, hidden, tokens, lb, words_in, window_tiles, reader_tokens, writer_tokens);
  assemble_tiles(job, shape.in, shape.in_tiles, words_in, rows_in);
  mac_array(tiles, bias_tiles, shape, job, rows_in, window_tiles, rows_out
#ifdef EDGEMOE_EMU_EXACT_MAC
            , lb
#endif
  );
  collect_rows(job, shape.out, shape.out_tiles, rows_out, words_out);
  read_residual(job, shape.out, x, reader_tokens, residual);
  write_rows(job, shape.out, x, qkv, hidden, scores, words_out, residual, writer_tokens);
  edgemoe_ledger::region_end(job.unit);
}

// Runs a job on the unit. In emulation a large job runs as two halves on two threads (rows are
// independent; an expert's queue holds each token once, so scattered halves never collide);
// not while the cycle ledger counts, which must see the one run the hardware makes.
inline void run_linear(const WeightTiles tiles, const BiasTiles bias_tiles, const LinearShape& shape,
                       const LinearJob& job, const pixel_word_t* images, fm_word_t* x, const fm_word_t* xn,
                       fm_word_t* qkv, fm_word_t* hidden, const QueueTokens tokens, const QueueScores scores,
                       LineBuffer& lb) {
#pragma HLS INLINE off
#ifdef EDGEMOE_EMU_PARALLEL
  // A window job's K is 9 C_in: a row of 8 pixels is worth its two threads already.
  const int fewest = job.read_mode == kReadWindows ? 4 * kTrows : 64;
  if (job.rows - job.first_row >= fewest && job.read_mode != kReadPatches && !edgemoe_ledger::attached()) {
    LinearJob low = job, high = job;
    // A window job splits at a group boundary (the reader's groups start at multiples of T_rows, a
    // Winograd job's pair groups at multiples of 2 T_rows), after its rows are loaded: the halves
    // then only read the line buffer.
    const int half = (job.rows - job.first_row) / 2;
    low.rows = high.first_row = job.first_row + (job.read_mode == kReadWindows ? half - half % kPairGroupPixels : half);
    if (job.read_mode == kReadWindows) {
      load_window_rows(job, xn, qkv, hidden, lb);
      low.window.loaded = high.window.loaded = true;
    }
    emu_run_halves([&](int64_t part) {
      linear_unit(tiles, bias_tiles, shape, part == 0 ? low : high, images, x, xn, qkv, hidden, tokens, scores, lb);
    });
    return;
  }
#endif
  linear_unit(tiles, bias_tiles, shape, job, images, x, xn, qkv, hidden, tokens, scores, lb);
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
                        const LinearJob& job, const pixel_word_t* images, fm_word_t* x, const fm_word_t* xn, fm_word_t* qkv,
                        fm_word_t* hidden, const QueueTokens tokens, const QueueScores scores,
                        const weight_word_t* weights, const weight_word_t* weights_odd, const fm_t* params,
                        long w_offset, long p_offset, int out, int in, WeightTiles fetch_tiles, BiasTiles fetch_bias,
                        LinearShape& fetch_shape, LineBuffer& lb, int terms, long term_words) {
#pragma HLS INLINE off
#pragma HLS DATAFLOW
  edgemoe_ledger::region_begin();
  edgemoe_ledger::region_process(0);
  run_linear(run_tiles, run_bias, run_shape, job, images, x, xn, qkv, hidden, tokens, scores, lb);
  edgemoe_ledger::region_process(1);
  load_linear_weights(weights, weights_odd, w_offset, params, p_offset, out, in, fetch_tiles, fetch_bias, fetch_shape,
                      terms, term_words);
  edgemoe_ledger::region_end(edgemoe_ledger::kUnitWeights);
}

// The job on buffer `run` (kPing or kPong, a constant at every call) while the next matrix is
// fetched into the other (a Winograd convolution's: `terms` matrices `term_words` apart). Two calls
// of linear_step, one per role of the two buffers; both are its
// one instance, whose tile ports HLS connects to ping or pong through a 2:1 mux per MAC lane (on
// the read data; the fetch's write data is common to both, only its write enables differ: counted
// in schedule.h) - the same muxes a ping-pong (PIPO) channel has.
inline void step_on(WeightBuffer& ping, WeightBuffer& pong, int run, const LinearJob& job, const pixel_word_t* images,
                    fm_word_t* x, const fm_word_t* xn, fm_word_t* qkv, fm_word_t* hidden, const QueueTokens tokens,
                    const QueueScores scores, const weight_word_t* weights, const weight_word_t* weights_odd,
                    const fm_t* params, long w_offset, long p_offset, int out, int in, LineBuffer& lb, int terms = 1,
                    long term_words = 0) {
#pragma HLS INLINE
  if (run == kPing)
    linear_step(ping.tiles, ping.bias, ping.shape, job, images, x, xn, qkv, hidden, tokens, scores, weights, weights_odd,
                params, w_offset, p_offset, out, in, pong.tiles, pong.bias, pong.shape, lb, terms, term_words);
  else
    linear_step(pong.tiles, pong.bias, pong.shape, job, images, x, xn, qkv, hidden, tokens, scores, weights, weights_odd,
                params, w_offset, p_offset, out, in, ping.tiles, ping.bias, ping.shape, lb, terms, term_words);
}

}  // namespace edgemoe_hls
