// Emulation only, never synthesised (and never under Vitis's own headers): the MAC array's sums
// computed in the order a CPU runs fast, bit for bit what the pipelined loop gives (and, at the
// end, the convolution reader's rows and the heads' upsampling the same way).
//
// The hardware walks (row group, output tile, input tile) and reuses each weight for the group's
// T_rows rows only; a CPU doing the same streams the whole weight buffer per group through its
// caches and multiplies 64-bit integers. Here the job's input tiles (already all in the stream:
// emulation runs a dataflow region's processes one after the other) are taken in blocks of rows,
// and each output tile's weights (converted to double once per weight fetch) are reused by the
// whole block, as a GEMM micro-kernel does.
//
// Exactness: the operands are integers (the raw bits of mac_in_t and wt_t) of at most A_BITS and
// B_BITS bits (their types' widths), so a product is an integer of magnitude <= 2^(A_BITS + B_BITS
// - 2), and a sum of at most 2^(53 - A_BITS - B_BITS + 2) of them is at most 2^53: double holds
// every such value exactly, so each chunk's sum is exact whatever order the compiler adds in
// (vector lanes, fused multiply-adds). Chunks are summed in int64, exact for any K the kernel takes.
// The MAC array's 48-bit accumulation wraps, which commutes with addition: the caller reduces the
// exact sum to the accumulator's width and gets the pipelined loop's bits.
#pragma once

#include <atomic>
#include <mutex>
#include <type_traits>
#include <utility>
#include <cstdint>
#include <cstring>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <cstdlib>

namespace ap_host {
// Internal linkage: the kernel is compiled once per ISA into one program, and a shared (weak) copy
// of this code would run one ISA's instructions for every caller (tests/cpp isa_symbols).
namespace {

// Eight doubles, as the compiler's vector extension: one zmm with AVX-512, two ymm with AVX2.
constexpr int kVecLanes = 8;
// Accumulators the micro-kernel keeps in registers: enough independent sums to cover the
// multiply-add's latency at two a cycle, and room left for the weights (32 zmm; 16 ymm, two each).
#if defined(__AVX512F__)
constexpr int kAccumulators = 12;
#else
constexpr int kAccumulators = 6;
#endif
typedef double exact_vec __attribute__((vector_size(kVecLanes * sizeof(double))));

// a b + c: one fused instruction where the ISA has one (the kernels are built with
// -ffp-contract=off, so the compiler would not fuse). Every value is an exact integer here, so
// fusing changes no bit.
inline void multiply_add(double a, const exact_vec& b, exact_vec& c) {
#if defined(__x86_64__) && defined(__AVX512F__)
  c = (exact_vec)_mm512_fmadd_pd(_mm512_set1_pd(a), (__m512d)b, (__m512d)c);
#elif defined(__x86_64__) && defined(__FMA__)
  const __m256d a4 = _mm256_set1_pd(a);
  __m256d b4[2], c4[2];
  std::memcpy(b4, &b, sizeof b);
  std::memcpy(c4, &c, sizeof c);
  c4[0] = _mm256_fmadd_pd(a4, b4[0], c4[0]);
  c4[1] = _mm256_fmadd_pd(a4, b4[1], c4[1]);
  std::memcpy(&c, c4, sizeof c);
#else
  c += a * b;
#endif
}

// The micro-kernel: out[r][o] = sum over k < n of a[r * lda + k] b[k * VECS * 8 + o] for ROWS rows,
// the accumulators in registers. b and out are vector-aligned.
template <int ROWS, int VECS>
inline void exact_chunk(const double* a, int lda, const double* b, int n, double* out) {
  exact_vec acc[ROWS][VECS] = {};
  for (int k = 0; k < n; ++k) {
    const exact_vec* bk = reinterpret_cast<const exact_vec*>(b + (size_t)k * VECS * kVecLanes);
#pragma GCC unroll 8
    for (int r = 0; r < ROWS; ++r) {
      const double ar = a[(size_t)r * lda + k];
#pragma GCC unroll 8
      for (int v = 0; v < VECS; ++v) multiply_add(ar, bk[v], acc[r][v]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < ROWS; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < VECS; ++v) reinterpret_cast<exact_vec*>(out)[r * VECS + v] = acc[r][v];
}

// exact_chunk for the first `rows` (<= MAX_ROWS) rows: a block's last rows without padding rows.
template <int MAX_ROWS, int VECS>
inline void exact_rows(int rows, const double* a, int lda, const double* b, int n, double* out) {
  if constexpr (MAX_ROWS > 1) {
    if (rows < MAX_ROWS) {
      exact_rows<MAX_ROWS - 1, VECS>(rows, a, lda, b, n, out);
      return;
    }
  }
  exact_chunk<MAX_ROWS, VECS>(a, lda, b, n, out);
}

constexpr size_t kVecBytes = sizeof(exact_vec);

}  // namespace

// Vector-aligned scratch memory (plain storage, not std::vector: a library template instantiated
// here would be one shared copy for every ISA build; Build names the kernel build instead).
template <class Build, class T>
struct Scratch {
  T* data = nullptr;
  size_t size = 0;
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { std::free(data); }
  T* at_least(size_t n) {  // null when memory is short (the pipelined loop then runs instead)
    if (n > size) {
      std::free(data);
      size = 0;
      data = static_cast<T*>(std::aligned_alloc(kVecBytes, (n * sizeof(T) + kVecBytes - 1) / kVecBytes * kVecBytes));
      if (data == nullptr) return nullptr;
      size = n;
    }
    return data;
  }
};

// Weight buffers are written only by the kernel's weight fetch, which calls weights_written<Build>()
// first: a conversion made at generation g of the buffer's address is still its content while the
// generation is g. (A fetch into the other buffer also moves the generation: a cache miss, never a
// stale hit.) Build is a type of the kernel build's own namespace, so each build (ISA path, board)
// has one counter and one converted copy, whichever translation unit's inline functions the linker
// keeps, and every symbol here names its build.
template <class Build>
inline std::atomic<uint64_t>& weights_generation() {
  static std::atomic<uint64_t> generation{0};
  return generation;
}
template <class Build>
inline void weights_written() {
  weights_generation<Build>().fetch_add(1, std::memory_order_acq_rel);
}
// The weights as the micro-kernel reads them, [out tile][k][TO] doubles: one copy per build, shared
// by the threads that run a job's halves (converted under the lock, then only read).
template <class Build>
struct ConvertedWeights {
  std::mutex lock;
  const void* tiles = nullptr;
  uint64_t generation = 0;
  int in_tiles = 0, out_tiles = 0, channels = 0;  // channels: a Winograd copy's (exact_conv3_rows)
  Scratch<Build, double> b;
};
template <class Build>
inline ConvertedWeights<Build>& converted_weights() {
  static ConvertedWeights<Build> weights;
  return weights;
}
// Names the converted Winograd weights of one kernel build (exact_conv3_rows): a second copy per
// build, beside the direct one.
template <class Build>
struct WinogradBuild {};

namespace {

// The build's converted copy (Copy: a type naming it) of the weight tiles, converted by
// convert(destination) when it holds another matrix, another layout (in_tiles, out_tiles, channels)
// or an older fetch (the generation of InVec's build). Null when memory is short. Threads share it:
// it is converted under the lock and only read after, while the job runs (the next fetch comes in a
// later step).
template <class Copy, class InVec, class Tile, class Convert>
const double* converted_copy(const Tile* tiles, int in_tiles, int out_tiles, int channels, size_t count,
                             Convert&& convert) {
  ConvertedWeights<Copy>& w = converted_weights<Copy>();
  std::lock_guard<std::mutex> hold(w.lock);
  const uint64_t generation = weights_generation<InVec>().load(std::memory_order_acquire);
  if (w.tiles != tiles || w.generation != generation || w.in_tiles != in_tiles || w.out_tiles != out_tiles ||
      w.channels != channels) {
    w.tiles = nullptr;
    double* converted = w.b.at_least(count);
    if (converted == nullptr) return nullptr;
    convert(converted);
    w.tiles = tiles;
    w.generation = generation;
    w.in_tiles = in_tiles;
    w.out_tiles = out_tiles;
    w.channels = channels;
  }
  return w.b.data;
}

// sums[row][ot][o] = exact dot products of rows [0, rows) of a (a[row * K + k], K columns) with
// output tile ot's weights (b[ot * b_tile_stride + k * TO + o]), for every output tile: K in slices
// of `slice` products (as many as a double sums exactly), every output tile against the block's
// slice of inputs while it is in the core's caches, each slice's sums added in int64. kRowStep rows
// share each weight load; the last step takes the rows left (exact_rows).
template <int TO, int ROW_STEP>
void exact_block(const double* a, int rows, int K, int slice, const double* b, size_t b_tile_stride, int out_tiles,
                 int64_t* sums) {
  constexpr int kVecs = TO / kVecLanes;
  for (size_t i = 0; i < (size_t)rows * out_tiles * TO; ++i) sums[i] = 0;
  for (int k0 = 0; k0 < K; k0 += slice) {
    const int k_count = K - k0 < slice ? K - k0 : slice;
    for (int ot = 0; ot < out_tiles; ++ot) {
      const double* b_slice = b + ot * b_tile_stride + (size_t)k0 * TO;
      for (int r0 = 0; r0 < rows; r0 += ROW_STEP) {
        alignas(kVecBytes) double chunk[ROW_STEP][TO];
        exact_rows<ROW_STEP, kVecs>(rows - r0, &a[(size_t)r0 * K + k0], K, b_slice, k_count, &chunk[0][0]);
        for (int r = 0; r < ROW_STEP; ++r)
          if (r0 + r < rows)
            for (int o = 0; o < TO; ++o) sums[((size_t)(r0 + r) * out_tiles + ot) * TO + o] += int64_t(chunk[r][o]);
      }
    }
  }
}

// Multiplies `groups` groups of TR rows of K = in_tiles x TIN raw operands (InVec's lane type: raw
// bits .V) with the weight tiles (tiles[out_tile * in_tiles + in_tile][TO][TIN], raw bits .V) and
// calls finish(group, out_tile, sums) with sums[r][o] the exact dot product of row r of the group and
// output o of the tile, in the pipelined loop's order (group, then output tile). The rows come from
// fill(first_group, count, a, K): groups [first_group, first_group + count) as a[row][k] doubles
// (every k < K written; rows from the group's first). False, having called fill for nothing, when
// its scratch memory cannot be had.
template <int TR, int TO, int TIN, class InVec, class Fill, class Tile, class Finish>
bool exact_mac_rows(Fill&& fill, const Tile* tiles, int groups, int in_tiles, int out_tiles, Finish&& finish) {
  // The operands' widths, from their types: the exactness bound below cannot be handed other ones.
  constexpr int A_BITS = std::decay_t<decltype(std::declval<InVec>().v[0][0])>::width;
  constexpr int B_BITS = std::decay_t<decltype(std::declval<Tile>()[0][0])>::width;
  static_assert(A_BITS + B_BITS - 2 <= 52, "a product must be exact in double");
  constexpr long kChunk = 1L << (53 - (A_BITS + B_BITS - 2));  // products a double sums exactly
  static_assert(TO % kVecLanes == 0, "output tiles are whole vectors");
  constexpr int kVecs = TO / kVecLanes;
  constexpr int kSliceK = kChunk < (1L << 20) ? int(kChunk) : (1 << 20);
  // Rows per block (whole groups): the block's inputs stay in the caches while every output tile is
  // computed. kRowStep rows share each weight load.
  constexpr int kRowStep = kAccumulators / kVecs > 1 ? kAccumulators / kVecs : 1;
  constexpr int kBlockGroups = (64 + TR - 1) / TR;
  if (groups <= 0) return true;  // no rows: nothing to read, nothing to convert
  const int K = in_tiles * TIN;
  thread_local Scratch<InVec, double> a_scratch;
  thread_local Scratch<InVec, int64_t> sums_scratch;
  double* a = a_scratch.at_least((size_t)kBlockGroups * TR * K);
  int64_t* sums = sums_scratch.at_least((size_t)kBlockGroups * TR * out_tiles * TO);
  if (a == nullptr || sums == nullptr) return false;
  // b[ot][k][o]: output o's weight at k, outputs contiguous (the micro-kernel's vector).
  const double* b = converted_copy<InVec, InVec>(tiles, in_tiles, out_tiles, 0, (size_t)out_tiles * K * TO,
                                                 [&](double* converted) {
    for (int ot = 0; ot < out_tiles; ++ot)
      for (int it = 0; it < in_tiles; ++it)
        for (int i = 0; i < TIN; ++i)
          for (int o = 0; o < TO; ++o)
            converted[((size_t)ot * K + it * TIN + i) * TO + o] = double(tiles[ot * in_tiles + it][o][i].V);
  });
  if (b == nullptr) return false;
  for (int g0 = 0; g0 < groups; g0 += kBlockGroups) {
    const int block_groups = groups - g0 < kBlockGroups ? groups - g0 : kBlockGroups;
    const int rows = block_groups * TR;
    fill(g0, block_groups, a, K);  // a[row][k]: the block's rows
    exact_block<TO, kRowStep>(a, rows, K, kSliceK, b, (size_t)K * TO, out_tiles, sums);
    for (int g = 0; g < block_groups; ++g)
      for (int ot = 0; ot < out_tiles; ++ot) {
        int64_t tile[TR][TO];
        for (int r = 0; r < TR; ++r)
          for (int o = 0; o < TO; ++o) tile[r][o] = sums[((size_t)(g * TR + r) * out_tiles + ot) * TO + o];
        finish(g0 + g, ot, tile);
      }
  }
  return true;
}

// A Winograd job's sums (kernels/src/window_reader.h, emit_pairs; mac_array), exactly. Two
// neighbouring output pixels x, x + 1 of one kernel row (ky) read the inputs d0..d3 at x - 1 .. x + 2
// with taps g0..g2; with G scaled by 2 every term is an integer:
//   M0 = (d0 - d2) 2 g0,  M1 = (d1 + d2)(g0 + g1 + g2),  M2 = (d2 - d1)(g0 - g1 + g2),  M3 = (d1 - d3) 2 g2
//   2 y(x) = M0 + M1 + M2,  2 y(x + 1) = M1 - M2 - M3
// Each M_j, summed over the kernel rows and channels, is a GEMM with K = 3 C over the pairs' rows:
// the weight buffer holds the four terms' matrices (layout.h: term j's output tile ot at tile
// (j out_tiles + ot) in_tiles, K in (ky, channel) order). All sums are of integers, so 2 y is
// exact here; the pipelined loop's 48-bit sums wrap and are then halved, which this repeats.
// Exactness: |d_a +- d_b| <= 2^A_BITS and |weight| < 2^B_BITS, so a product is below 2^(A_BITS +
// B_BITS) and a slice of 2^(53 - A_BITS - B_BITS) of them sums exactly in double.
// pairs(first_pair, count, a, lda) writes the transformed rows of pairs [first_pair, first_pair +
// count) of the job (pair p: the job's pixels 2p and 2p + 1, numbered from its first), a[j][pair *
// lda + ky * channels + c] = the j-th term above for kernel row ky and channel c (zero outside the
// map). finish(group, out_tile, sums) as exact_mac_rows', in the pipelined loop's order: for each
// of the `pair_groups` groups of TR pairs, each output tile, its two halves of TR pixels (groups
// 2 pg and 2 pg + 1; pixels past `rows` zero). False, having called pairs for nothing, when memory
// is short.
// ACC_BITS: the width the pipelined loop's sums wrap at (acc_t's).
template <int TR, int TO, int TIN, int ACC_BITS, class InVec, class Pairs, class Tile, class Finish>
bool exact_conv3_rows(Pairs&& pairs, const Tile* tiles, int pair_groups, int rows, int in_tiles, int out_tiles,
                      int channels, Finish&& finish) {
  constexpr int A_BITS = std::decay_t<decltype(std::declval<InVec>().v[0][0])>::width;
  constexpr int B_BITS = std::decay_t<decltype(std::declval<Tile>()[0][0])>::width;
  static_assert(A_BITS + B_BITS <= 52, "a transformed product must be exact in double");
  constexpr int kSliceK = 1 << (53 - (A_BITS + B_BITS));  // products below 2^(A+B) a double sums exactly
  static_assert(TO % kVecLanes == 0, "output tiles are whole vectors");
  constexpr int kVecs = TO / kVecLanes;
  constexpr int kRowStep = kAccumulators / kVecs > 1 ? kAccumulators / kVecs : 1;
  constexpr int kBlockPairGroups = (32 + TR - 1) / TR;  // 32 pairs or more a block
  constexpr int kTerms = 4;
  if (pair_groups <= 0) return true;
  const int K3 = 3 * channels;
  if (K3 > in_tiles * TIN) return false;  // not a Winograd matrix
  const int pairs_max = kBlockPairGroups * TR;
  thread_local Scratch<WinogradBuild<InVec>, double> a_scratch;
  thread_local Scratch<WinogradBuild<InVec>, int64_t> m_scratch;
  double* a_all = a_scratch.at_least((size_t)kTerms * pairs_max * K3);
  int64_t* m_all = m_scratch.at_least((size_t)kTerms * pairs_max * out_tiles * TO);
  if (a_all == nullptr || m_all == nullptr) return false;
  double* a[kTerms];
  int64_t* m[kTerms];
  for (int j = 0; j < kTerms; ++j) {
    a[j] = a_all + (size_t)j * pairs_max * K3;
    m[j] = m_all + (size_t)j * pairs_max * out_tiles * TO;
  }
  // b[ot][j][k3][o]: term j's weights, outputs contiguous.
  const double* b = converted_copy<WinogradBuild<InVec>, InVec>(
      tiles, in_tiles, out_tiles, channels, (size_t)out_tiles * kTerms * K3 * TO, [&](double* converted) {
        for (int ot = 0; ot < out_tiles; ++ot)
          for (int j = 0; j < kTerms; ++j)
            for (int k = 0; k < K3; ++k)
              for (int o = 0; o < TO; ++o)
                converted[(((size_t)ot * kTerms + j) * K3 + k) * TO + o] =
                    double(tiles[(j * out_tiles + ot) * in_tiles + k / TIN][o][k % TIN].V);
      });
  if (b == nullptr) return false;
  for (int pg0 = 0; pg0 < pair_groups; pg0 += kBlockPairGroups) {
    const int block_groups = pair_groups - pg0 < kBlockPairGroups ? pair_groups - pg0 : kBlockPairGroups;
    const int pair0 = pg0 * TR, pair_count = block_groups * TR;
    pairs(pair0, pair_count, a, K3);
    for (int j = 0; j < kTerms; ++j)
      exact_block<TO, kRowStep>(a[j], pair_count, K3, kSliceK, b + (size_t)j * K3 * TO, (size_t)kTerms * K3 * TO,
                                out_tiles, m[j]);
    for (int g = 0; g < block_groups; ++g)
      for (int ot = 0; ot < out_tiles; ++ot)
        for (int half = 0; half < 2; ++half) {
          int64_t tile[TR][TO];
          for (int k = 0; k < TR; ++k) {
            const int pixel = half * TR + k, p = g * TR + pixel / 2;  // the block's pair
            const bool second = pixel & 1, inside = 2 * (pair0 + p) + (second ? 1 : 0) < rows;
            for (int o = 0; o < TO; ++o) {
              const size_t i = ((size_t)p * out_tiles + ot) * TO + o;
              const int64_t twice = second ? m[1][i] - m[2][i] - m[3][i] : m[0][i] + m[1][i] + m[2][i];
              // The pipelined loop's 2 y wraps at ACC_BITS and is halved (an arithmetic shift).
              tile[k][o] = inside ? wrap<ACC_BITS, true>(twice) >> 1 : 0;
            }
          }
          finish(2 * (pg0 + g) + half, ot, tile);
        }
  }
  return true;
}

// exact_mac_rows with the rows read from `in` as the pipelined loop reads them: `in_tiles` InVec
// tiles (v[TR][TIN]) per group.
template <int TR, int TO, int TIN, class InVec, class Stream, class Tile, class Finish>
bool exact_mac_array(Stream& in, const Tile* tiles, int groups, int in_tiles, int out_tiles, Finish&& finish) {
  const auto read_tiles = [&](int, int count, double* a, int K) {
    for (int g = 0; g < count; ++g)
      for (int it = 0; it < in_tiles; ++it) {
        const InVec x = in.read();
        for (int r = 0; r < TR; ++r)
          for (int i = 0; i < TIN; ++i) a[(size_t)(g * TR + r) * K + it * TIN + i] = double(x.v[r][i].V);
      }
  };
  return exact_mac_rows<TR, TO, TIN, InVec>(read_tiles, tiles, groups, in_tiles, out_tiles, std::forward<Finish>(finish));
}

// The convolution reader's windows as the rows above multiply, straight from its line buffer
// (kernels/src/window_reader.h: input row iy in slot iy mod 3, pixel x at [x / TROWS][x mod
// TROWS], channel word c of a pixel holding WORD lanes with raw bits .V). Shape: the window's
// height, width, channels, kernel and out_row (pad (kernel - 1) / 2).

// Pixel (iy, ix)'s channel words in the line buffer, or null outside the map (zero padding).
template <int TROWS, class Shape, class LineBuffer>
auto line_pixel(const Shape& s, const LineBuffer& lb, int iy, int ix) -> decltype(&lb.row[0][0][0][0]) {
  if (iy < 0 || iy >= s.height || ix < 0 || ix >= s.width) return nullptr;
  return lb.row[iy % 3][ix / TROWS][ix % TROWS];
}

// Groups [first_group, first_group + count) of TROWS of the job's pixels [first_row, rows), as
// exact_mac_rows' rows: a[row][k], K = kernel^2 x channels in (ky, kx, channel) order, zero for
// taps outside the map, for pixels past the row's end and past K.
template <int TROWS, int WORD, class Shape, class LineBuffer>
void window_rows(const Shape& s, int first_row, int rows, const LineBuffer& lb, int first_group, int count, double* a,
                 int K) {
  const int channels = s.channels, words = channels / WORD, pad = (s.kernel - 1) / 2, taps = s.kernel * s.kernel;
  for (int g = 0; g < count; ++g)
    for (int r = 0; r < TROWS; ++r) {
      double* row = a + (size_t)(g * TROWS + r) * K;
      const int ox = first_row + (first_group + g) * TROWS + r;
      for (int t = 0; t < taps; ++t) {
        double* dst = row + t * channels;
        const auto* pixel = ox < rows ? line_pixel<TROWS>(s, lb, s.out_row + t / s.kernel - pad, ox + t % s.kernel - pad)
                                      : nullptr;
        if (pixel == nullptr) {
          for (int k = 0; k < channels; ++k) dst[k] = 0.0;
          continue;
        }
        for (int c = 0; c < words; ++c)
          for (int e = 0; e < WORD; ++e) dst[c * WORD + e] = double(pixel[c].v[e].V);
      }
      for (int k = taps * channels; k < K; ++k) row[k] = 0.0;
    }
}

// A 3x3 window's pairs [first_pair, first_pair + count) (pair p: the job's pixels first_row + 2p
// and the next) as exact_conv3_rows' transformed rows: per kernel row ky the inputs d0..d3 at
// x - 1 .. x + 2 (zero outside the map), a[0] = d0 - d2, a[1] = d1 + d2, a[2] = d2 - d1,
// a[3] = d1 - d3, at a[j][pair * lda + ky * channels + c].
template <int TROWS, int WORD, class Shape, class LineBuffer>
void window_pairs(const Shape& s, int first_row, const LineBuffer& lb, int first_pair, int count, double* const* a,
                  int lda) {
  const int channels = s.channels, words = channels / WORD;
  for (int p = 0; p < count; ++p) {
    const int x0 = first_row + 2 * (first_pair + p);
    for (int ky = 0; ky < 3; ++ky) {
      const size_t at = (size_t)p * lda + ky * channels;
      decltype(line_pixel<TROWS>(s, lb, 0, 0)) d[4];
      for (int t = 0; t < 4; ++t) d[t] = line_pixel<TROWS>(s, lb, s.out_row + ky - 1, x0 - 1 + t);
      for (int c = 0; c < words; ++c)
        for (int e = 0; e < WORD; ++e) {
          double v[4];
          for (int t = 0; t < 4; ++t) v[t] = d[t] != nullptr ? double(d[t][c].v[e].V) : 0.0;
          const size_t k = at + c * WORD + e;
          a[0][k] = v[0] - v[2];
          a[1][k] = v[1] + v[2];
          a[2][k] = v[2] - v[1];
          a[3][k] = v[1] - v[3];
        }
    }
  }
}

// The heads' bilinear x2 upsampling (kernels/src/head.h, upsample_rows), output rows [first, last)
// of a plane of H x W pixels of `words` words (Word: v[] of the map's fixed-point type) straight
// from the input plane, in integers. An output element is (9a + 3b + 3c + d) / 16 of its inputs'
// Lane values (the map truncated and saturated to a MAC lane); the map's LSB is a lane's / 16, so
// its raw bits are 9a + 3b + 3c + d of theirs, exactly (upsample_rows forms the same sum in
// upsample_acc_t and truncates nothing). Near and far rows and columns as upsample_rows picks them:
// rows (oy - 1) >> 1 and the next, clamped, the nearer one the second for an even oy; columns q - 1
// and q for q = (ox + 1) >> 1, clamped, the nearer one q for an even ox.
template <class Lane, class Word>
void upsample_rows(const Word* src, Word* dst, int H, int W, int words, int first, int last) {
  typedef std::decay_t<decltype(src->v[0])> Map;
  static_assert(Map::width - Map::iwidth == Lane::width - Lane::iwidth + 4, "the map's LSB is a sixteenth of a lane's");
  static_assert(Lane::width + 4 < Map::width && Map::width <= 32, "16 x a lane's largest value fits the map's raw bits");
  constexpr int kElems = sizeof(src->v) / sizeof(src->v[0]);
  for (int oy = first; oy < last; ++oy) {
    const int py = (oy - 1) >> 1, ya = py < 0 ? 0 : py, yb = py + 1 > H - 1 ? H - 1 : py + 1;
    const int near_y = (oy & 1) == 0 ? yb : ya, far_y = (oy & 1) == 0 ? ya : yb;
    for (int ox = 0; ox < 2 * W; ++ox) {
      const int q = (ox + 1) >> 1, xa = q - 1 < 0 ? 0 : q - 1, xz = q > W - 1 ? W - 1 : q;
      const int near_x = (ox & 1) == 0 ? xz : xa, far_x = (ox & 1) == 0 ? xa : xz;
      const Word* nn = src + ((long)near_y * W + near_x) * words;
      const Word* nf = src + ((long)near_y * W + far_x) * words;
      const Word* fn = src + ((long)far_y * W + near_x) * words;
      const Word* ff = src + ((long)far_y * W + far_x) * words;
      Word* out = dst + ((long)oy * 2 * W + ox) * words;
      for (int c = 0; c < words; ++c)
        for (int e = 0; e < kElems; ++e) {
          const int near_row = 3 * int(Lane(nn[c].v[e]).V) + int(Lane(nf[c].v[e]).V);
          const int far_row = 3 * int(Lane(fn[c].v[e]).V) + int(Lane(ff[c].v[e]).V);
          out[c].v[e].V = 3 * near_row + far_row;
        }
    }
  }
}

}  // namespace

}  // namespace ap_host
