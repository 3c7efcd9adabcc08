// The convolution reader of the linear unit (kernels/README.md, "Task heads"): a 3x3 (or 1x1)
// convolution with padding is a GEMM whose rows are output pixels and whose K = taps x C_in
// columns are the window's pixels in (ky, kx, channel) order, the order the host packs conv
// weights in. The input map's rows go into a line buffer once (bursts); each output row's windows
// are then read from it, tile by tile, straight into the MAC array.
//
// A map in DDR is `slices` planes of [H][W][C_s] fm_t (HWC per plane): a convolution too large for
// one weight buffer runs as passes over slices of its output channels, each pass storing its plane
// with one burst; the next reader loads a row from every plane. A map of one slice is plain HWC,
// which the token grid after the head's LayerNorm already is (rows of tokens are pixels).
//
// Schedule. A job is one output row y (W pixels <= EDGEMOE_MAX_TOKENS). The loader brings in the
// input rows the job is the first to need (rows 0 and 1 for y = 0, row y + 1 after; row y for a
// 1x1) into slot row mod 3, one burst per (row, plane). The emitter is one flattened loop over
// (group of T_rows pixels, input tile) at II = 1: each iteration reads, per pixel of the group,
// the kWordsPerInTile words of its tile from the line buffer and sends one in_vec, which the MAC
// array caches for its other output tiles (its row cache holds a window's K = 9 C_in:
// kMaxCachedInTiles). The buffer's pixel dimension is partitioned cyclically by T_rows: a group's
// pixels (x, x+1, x+2 for one tap) fall in different banks, and the tile's second word (possibly the
// next tap) reads each bank at most once more: <= 2 reads per bank per cycle, the dual-port limit.
#pragma once

#include "layout.h"
#include "mac_vectors.h"

namespace edgemoe_hls {

// A word of the line buffer: 16 lanes (line_lane_t, 26 bits: 416 bits, where fm_t would take 512),
// converted (truncated, saturated) once as the row is loaded. The kernel top aggregates the array of
// them (AGGREGATE), so a word is one 416-bit memory word, not 16 arrays. A lane is a MAC lane
// (mac_in_t) one integer bit narrower, so that Winograd's d_a +- d_b is one (emit_pairs).
struct lane_word_t {
  line_lane_t v[kWordElems];
};
// The line buffer: three input rows (slot = row mod 3) of up to kMaxMapW pixels of up to
// kMaxMapChWords words; pixel x at [x / T_rows][x mod T_rows], the bank dimension partitioned
// completely (the kernel top), so every bank index in the code is a constant.
constexpr int kLinePixelGroups = ceil_div(kMaxMapW, kTrows);
struct LineBuffer {
  lane_word_t row[3][kLinePixelGroups][kTrows][kMaxMapChWords];
};
static_assert(kWordsPerInTile <= 2, "a tile's words read each line-buffer bank at most twice a cycle (dual port)");
static_assert(!kHeadWinograd || kWordsPerInTile == 2, "a Winograd tile is two channel words, one of each parity");
#if defined(EDGEMOE_BOARD_ZCU102) || defined(EDGEMOE_BOARD_U280)
static_assert(!kHeadWinograd || kTrows % 2 == 1,
              "Winograd's pairs hit each line-buffer bank once per operand only for an odd T_rows (emit_pairs)");
#endif

// A map word as line-buffer lanes (truncated, saturated).
inline lane_word_t to_lanes(const fm_word_t& word) {
  lane_word_t lanes;
  for (int e = 0; e < kWordElems; ++e) lanes.v[e] = line_lane_t(word.v[e]);
  return lanes;
}
// The next line-buffer position of a row being loaded: word c of pixel x = xg T_rows + xb, `words`
// words a pixel (counters: no dividers).
inline void next_line_word(int& xg, int& xb, int& c, int words) {
  if (++c == words) {
    c = 0;
    if (++xb == kTrows) {
      xb = 0;
      ++xg;
    }
  }
}

// x + d wrapped into [0, n) for |d| < n: a compare and an add, no divider.
inline int wrap_add(int x, int d, int n) {
  const int y = x + d;
  return y < 0 ? y + n : (y >= n ? y - n : y);
}

// What a convolution job reads: the input map, its geometry and the window.
struct WindowShape {
  int height, width;    // the input map (= the output map: stride 1, padding (kernel - 1) / 2)
  int channels;         // C_in, a multiple of 16
  int slices;           // planes the input map is stored in (each C_in / slices rounded up to words)
  int kernel;           // 3 or 1
  int out_row;          // the job's output row y
  long plane_words;     // words of one plane: H x W x (its channel words)
  bool loaded;          // the job's new rows are in the line buffer already (the emulation's split job)
  bool winograd;        // a 3x3 window as Winograd's F(2, 3) over pixel pairs (emit_pairs)
};

inline WindowShape no_window() {
  WindowShape w = {0, 0, 0, 0, 0, 0, 0, false, false};
  return w;
}

inline int slice_words(int channel_words, int slices, int s) {
  const int per = slice_stride_words(channel_words, slices);
  const int left = channel_words - s * per;
  return left < per ? (left > 0 ? left : 0) : per;
}

// Input rows [first, first + count) of the map at `src` into the line buffer, one burst per (row,
// plane): address base + i over the row's W x C_s words, unconditional. A source is read by its own
// call (the job's source or nothing), so each m_axi bundle keeps its own loops.
inline void load_map_rows(const fm_word_t* src, const WindowShape& s, int first, int count, LineBuffer& lb,
                          edgemoe_ledger::Unit unit, edgemoe_ledger::Port port) {
#pragma HLS INLINE
  const int cw_all = s.channels / kWordElems;
load_rows:
  for (int k = 0; k < 3; ++k) {
    if (k >= count) break;
    const int row = first + k;
    const int slot = row % 3;
  load_planes:
    for (int p = 0; p < kMaxMapSlices; ++p) {
      if (p >= s.slices) break;
      const int pw = slice_words(cw_all, s.slices, p), c0 = p * slice_stride_words(cw_all, s.slices);
      const int total = s.width * pw;
      const long base = (long)p * s.plane_words + (long)row * total;
      edgemoe_ledger::loop(unit, total, kII, kCopyDepth, edgemoe_ledger::burst(port),
                           (long long)total * beat_bytes<fm_word_t>(), beat_bytes<fm_word_t>());
      int xg = 0, xb = 0, c = 0;  // pixel x = xg T_rows + xb
    load_row_words:
      for (int i = 0; i < upto<kMaxMapW * kMaxMapChWords>(total); ++i) {
#pragma HLS PIPELINE II = kII
#pragma HLS LOOP_TRIPCOUNT max = kMaxMapW * kMaxMapChWords
        lb.row[slot][xg][xb][c0 + c] = to_lanes(src[base + i]);
        next_line_word(xg, xb, c, pw);
      }
    }
  }
}

// The rows job y needs first: 3x3: rows 0 and 1 (y = 0), else row y + 1 (if any); 1x1: row y.
inline int first_new_row(const WindowShape& s) { return s.kernel == 1 || s.out_row > 0 ? s.out_row + (s.kernel == 3 ? 1 : 0) : 0; }
inline int new_rows(const WindowShape& s) {
  if (s.kernel == 1) return 1;
  if (s.out_row == 0) return s.height > 1 ? 2 : 1;
  return s.out_row + 1 < s.height ? 1 : 0;
}

// A word position in a window row: tap (ky, kx) and the word c of its channels.
struct WindowWord {
  int ky, kx, c;
};
// `n` words further (n <= kWordsPerInTile; a tap holds at least one word, so at most n carries).
inline WindowWord advance(WindowWord w, int n, int channel_words, int kernel) {
  w.c += n;
  for (int k = 0; k < kWordsPerInTile; ++k) {
    if (w.c >= channel_words) {
      w.c -= channel_words;
      if (++w.kx == kernel) {
        w.kx = 0;
        ++w.ky;
      }
    }
  }
  return w;
}

// Where word q of input tile `it` comes from, the same for every pixel group: the tap's offsets
// (dy, dx in -1..1), its channel word and whether it lies inside K. A table per job, so the
// emitter's II = 1 loop reads its walk instead of carrying it.
struct TapWord {
  signed char dy, dx;
  bool inside_k;
  short c;
};
typedef TapWord TapTable[kMaxWindowInTiles][kWordsPerInTile];

// The walk over (ky, kx, channel word) carries ~5 dependent add/compare steps per tile: II 2.
inline void fill_tap_table(const WindowShape& s, int in_tiles, edgemoe_ledger::Unit unit, TapTable taps) {
#pragma HLS INLINE
  const int cw = s.channels / kWordElems, pad = (s.kernel - 1) / 2;
  edgemoe_ledger::loop(unit, in_tiles, kTapWalkII, kCopyDepth);
  WindowWord at = {0, 0, 0};
fill_taps:
  for (int it = 0; it < upto<kMaxWindowInTiles>(in_tiles); ++it) {
#pragma HLS PIPELINE II = kTapWalkII
#pragma HLS LOOP_TRIPCOUNT max = kMaxWindowInTiles
    for (int q = 0; q < kWordsPerInTile; ++q) {
      const WindowWord w = advance(at, q, cw, s.kernel);
      TapWord t;
      t.dy = (signed char)(w.ky - pad);
      t.dx = (signed char)(w.kx - pad);
      t.inside_k = w.ky < s.kernel;
      t.c = (short)(t.inside_k ? w.c : 0);
      taps[it][q] = t;
    }
    at = advance(at, kWordsPerInTile, cw, s.kernel);
  }
}

// The job's windows as MAC array tiles, in the MAC array's order: for each group of T_rows output
// pixels (first_row .. rows of row y; first_row a multiple of T_rows), every input tile. Pixels past
// the row's end, taps outside the map (zero padding) and words past K are zero. Per tile word, each
// bank b is read once, at the pixel of the group's tap span [x0 + dx, x0 + dx + T_rows) that lies in
// it, and the words are rotated onto the rows: the bank indices are constants, the addresses and the
// rotation (a T_rows:1 choice per row) runtime; wraps are compares, not dividers.
inline void emit_windows(const WindowShape& s, int first_row, int rows, int in_tiles, const LineBuffer& lb,
                         const TapTable taps, edgemoe_ledger::Unit unit, hls::stream<in_vec>& tiles) {
#pragma HLS INLINE
  const int pixels = rows - first_row, groups = ceil_div(pixels, kTrows);
  const int steps = groups * in_tiles;
  const int slot_y = s.out_row % 3;  // once per job
  edgemoe_ledger::loop(unit, steps, kII, kCopyDepth);
  int it = 0;
  int x0g = first_row / kTrows;  // the group's first pixel x0 = x0g T_rows (first_row: a multiple of T_rows)
emit_windows:
  for (int step = 0; step < upto<kMaxRowGroups * kMaxWindowInTiles>(steps); ++step) {
#pragma HLS PIPELINE II = kII
#pragma HLS LOOP_TRIPCOUNT max = kMaxRowGroups * kMaxWindowInTiles
    in_vec v;
    for (int q = 0; q < kWordsPerInTile; ++q) {
      const TapWord t = taps[it][q];
      const int slot = wrap_add(slot_y, t.dy, 3), iy = s.out_row + t.dy;
      const bool row_inside = t.inside_k && iy >= 0 && iy < s.height;
      lane_word_t bank_word[kTrows];
#pragma HLS ARRAY_PARTITION variable = bank_word complete dim = 0
      for (int b = 0; b < kTrows; ++b) {
        const int r = wrap_add(b, -t.dx, kTrows);  // the row whose pixel x0 + r + dx is in bank b
        const int carry = t.dx + r >= kTrows ? 1 : (t.dx + r < 0 ? -1 : 0);
        const int group = x0g + carry;
        const bool readable = row_inside && group >= 0 && group < kLinePixelGroups;
        bank_word[b] = lb.row[slot][readable ? group : 0][b][readable ? int(t.c) : 0];
      }
      for (int r = 0; r < kTrows; ++r) {
        const int ox = x0g * kTrows + r, ix = ox + t.dx;
        const bool inside = row_inside && ox < rows && ix >= 0 && ix < s.width;
        const lane_word_t& word = bank_word[wrap_add(r, t.dx, kTrows)];
        for (int e = 0; e < kWordElems; ++e) v.v[r][q * kWordElems + e] = inside ? mac_in_t(word.v[e]) : mac_in_t(0);
      }
    }
    tiles.write(v);
    if (++it == in_tiles) {
      it = 0;
      ++x0g;
    }
  }
}

// --- Winograd's F(2, 3) along window rows (conv_1..3 on builds with kHeadWinograd) -------------
// Output pixels x, x + 1 (a pair, x even from the job's first pixel) of one kernel row ky read the
// inputs d0..d3 at x - 1 .. x + 2; with G scaled by 2 every product is of integers:
//   M0 = (d0 - d2) 2 g0,  M1 = (d1 + d2)(g0 + g1 + g2),  M2 = (d2 - d1)(g0 - g1 + g2),  M3 = (d1 - d3) 2 g2
//   2 y(x) = M0 + M1 + M2,  2 y(x + 1) = M1 - M2 - M3
// Each M_j summed over (ky, channel) is a GEMM with K = 3 C whose rows are the pairs: term j's
// transformed inputs against its weights (layout.h packs them), 4 x 3 C MACs a pair where the
// direct window takes 2 x 9 C. The MAC array sums the terms (mac_array) and halves the sums,
// exactly, since each is twice an integer sum.
// Term j's operands: d_a and d_b of each pair, and whether it adds them.
inline int winograd_operand_a(int term) { return term == 0 ? 0 : term == 2 ? 2 : 1; }
inline int winograd_operand_b(int term) { return term == 0 || term == 1 ? 2 : term == 2 ? 1 : 3; }

// Pair group steps: for each group of T_rows pairs (2 T_rows pixels from first_row, a multiple of
// 2 T_rows), each term, each input tile. Tile it holds channel words 2 cp and 2 cp + 1 of kernel
// row ky (K in (ky, channel) order, channels a multiple of 32: kWinogradChannelMultiple), so word
// q of a tile is always of parity q; the kernel top partitions the line buffer's words by parity
// (cyclic 2) and its pixels by x mod T_rows. Pair r's operand pixel x0 + 2 r - 1 + off (off: a or b)
// falls in bank (2 r - 1 + off) mod T_rows: for an odd T_rows (a static_assert on the boards) the
// T_rows pairs hit every bank once per operand, so each (parity, bank) is read twice a cycle: once
// for d_a, once for d_b. Bank indices are constants, addresses and the pair a bank feeds runtime
// (T_rows:1 choices, as emit_windows rotates); operands outside the map (zero padding), pairs past
// the row's end and rows outside the map are zero. d_a +- d_b of two line lanes (+-128) fits a MAC
// lane (+-256) exactly.
inline void emit_pairs(const WindowShape& s, int first_row, int rows, int in_tiles, const LineBuffer& lb,
                       edgemoe_ledger::Unit unit, hls::stream<in_vec>& tiles) {
#pragma HLS INLINE
  const int pixels = rows - first_row, pair_groups = ceil_div(ceil_div(pixels, 2), kTrows);
  const int steps = pair_groups * kWinogradTerms * in_tiles;
  const int channel_pairs = s.channels / (2 * kWordElems);
  const int slot_y = s.out_row % 3;  // once per job
  edgemoe_ledger::loop(unit, steps, kII, kCopyDepth + 1);
  int it = 0, term = 0, ky = 0, cp = 0;
  int x0 = first_row, x0g = first_row / kTrows;  // the group's first pixel, x0 = x0g T_rows
pair_steps:
  for (int step = 0; step < upto<kMaxRowGroups * kWinogradTerms * kMaxWinogradInTiles>(steps); ++step) {
#pragma HLS PIPELINE II = kII
#pragma HLS LOOP_TRIPCOUNT max = kMaxRowGroups * kWinogradTerms * kMaxWinogradInTiles
    const int iy = s.out_row + ky - 1, slot = wrap_add(slot_y, ky - 1, 3);
    const bool row_inside = iy >= 0 && iy < s.height;
    const bool add = term == 1;
    lane_word_t operand[2][2][kTrows];  // [word q][d_a, d_b][pair]
#pragma HLS ARRAY_PARTITION variable = operand complete dim = 0
    bool inside[2][kTrows];  // [d_a, d_b][pair]
#pragma HLS ARRAY_PARTITION variable = inside complete dim = 0
    for (int o = 0; o < 2; ++o) {
      const int off = o == 0 ? winograd_operand_a(term) : winograd_operand_b(term);
      int bank_of[kTrows], group_of[kTrows];
#pragma HLS ARRAY_PARTITION variable = bank_of complete dim = 0
#pragma HLS ARRAY_PARTITION variable = group_of complete dim = 0
      for (int r = 0; r < kTrows; ++r) {
        int pos = 2 * r - 1 + off, carry = 0;  // in [-1, 2 T_rows + 2]: compares, no divider
        if (pos < 0) {
          pos += kTrows;
          carry = -1;
        }
        for (int k = 0; k < 3; ++k)
          if (pos >= kTrows) {
            pos -= kTrows;
            ++carry;
          }
        bank_of[r] = pos;
        group_of[r] = x0g + carry;
        const int x = x0 + 2 * r - 1 + off;
        inside[o][r] = row_inside && x0 + 2 * r < rows && x >= 0 && x < s.width;
      }
      for (int q = 0; q < 2; ++q) {
        const int c = 2 * cp + q;  // parity q: its own half of the partitioned words
        if (kTrows % 2 == 1) {
          // Each bank once: its pair's address (the one pair whose operand falls there).
          lane_word_t bank_word[kTrows];
#pragma HLS ARRAY_PARTITION variable = bank_word complete dim = 0
          for (int b = 0; b < kTrows; ++b) {
            int group = 0;
            for (int r = 0; r < kTrows; ++r)
              if (bank_of[r] == b) group = group_of[r];
            const bool readable = row_inside && group >= 0 && group < kLinePixelGroups;
            bank_word[b] = lb.row[slot][readable ? group : 0][b][c];
          }
          for (int r = 0; r < kTrows; ++r) operand[q][o][r] = bank_word[bank_of[r]];
        } else {
          // An even T_rows (the emulation build only: boards with kHeadWinograd have an odd one, a
          // static_assert above, and boards without it never call this): pairs share banks.
          for (int r = 0; r < kTrows; ++r) {
            const bool readable = row_inside && group_of[r] >= 0 && group_of[r] < kLinePixelGroups;
            operand[q][o][r] = lb.row[slot][readable ? group_of[r] : 0][bank_of[r]][c];
          }
        }
      }
    }
    in_vec v;
    for (int q = 0; q < 2; ++q)
      for (int r = 0; r < kTrows; ++r)
        for (int e = 0; e < kWordElems; ++e) {
          const mac_in_t da = inside[0][r] ? mac_in_t(operand[q][0][r].v[e]) : mac_in_t(0);
          const mac_in_t db = inside[1][r] ? mac_in_t(operand[q][1][r].v[e]) : mac_in_t(0);
          v.v[r][q * kWordElems + e] = add ? mac_in_t(da + db) : mac_in_t(da - db);
        }
    tiles.write(v);
    if (++it == in_tiles) {
      it = 0;
      ky = 0;
      cp = 0;
      if (++term == kWinogradTerms) {
        term = 0;
        x0 += kPairGroupPixels;
        x0g += 2;
      }
    } else if (++cp == channel_pairs) {
      cp = 0;
      ++ky;
    }
  }
}

}  // namespace edgemoe_hls
