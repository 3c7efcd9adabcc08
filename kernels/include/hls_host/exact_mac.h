// Emulation only, never synthesised (and never under Vitis's own headers): the MAC array's sums
// computed in the order a CPU runs fast, bit for bit what the pipelined loop gives.
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
  int in_tiles = 0, out_tiles = 0;
  Scratch<Build, double> b;
};
template <class Build>
inline ConvertedWeights<Build>& converted_weights() {
  static ConvertedWeights<Build> weights;
  return weights;
}

namespace {

// Reads `groups` x `in_tiles` input tiles (InVec: v[TR][TIN] of a type with raw bits .V) from
// `in`, multiplies them with the weight tiles (tiles[out_tile * in_tiles + in_tile][TO][TIN], raw
// bits .V) and calls finish(group, out_tile, sums) with sums[r][o] the exact dot product of row r
// of the group and output o of the tile, in the pipelined loop's order (group, then output tile).
// False, having read nothing, when its scratch memory cannot be had.
template <int TR, int TO, int TIN, class InVec, class Stream, class Tile, class Finish>
bool exact_mac_array(Stream& in, const Tile* tiles, int groups, int in_tiles, int out_tiles, Finish&& finish) {
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
  const int block_rows_max = ((kBlockGroups * TR + kRowStep - 1) / kRowStep) * kRowStep;
  double* a = a_scratch.at_least((size_t)block_rows_max * K);
  int64_t* sums = sums_scratch.at_least((size_t)block_rows_max * out_tiles * TO);
  if (a == nullptr || sums == nullptr) return false;
  const double* b = nullptr;
  {
    ConvertedWeights<InVec>& w = converted_weights<InVec>();
    std::lock_guard<std::mutex> hold(w.lock);
    const uint64_t generation = weights_generation<InVec>().load(std::memory_order_acquire);
    if (w.tiles != tiles || w.generation != generation || w.in_tiles != in_tiles || w.out_tiles != out_tiles) {
      w.tiles = nullptr;
      double* converted = w.b.at_least((size_t)out_tiles * K * TO);
      if (converted == nullptr) return false;
      // b[ot][k][o]: output o's weight at k, outputs contiguous (the micro-kernel's vector).
      for (int ot = 0; ot < out_tiles; ++ot)
        for (int it = 0; it < in_tiles; ++it)
          for (int i = 0; i < TIN; ++i)
            for (int o = 0; o < TO; ++o)
              converted[((size_t)ot * K + it * TIN + i) * TO + o] = double(tiles[ot * in_tiles + it][o][i].V);
      w.tiles = tiles;
      w.generation = generation;
      w.in_tiles = in_tiles;
      w.out_tiles = out_tiles;
    }
    b = w.b.data;  // not written again before this job ends: its fetch comes in a later step
  }
  for (int g0 = 0; g0 < groups; g0 += kBlockGroups) {
    const int block_groups = groups - g0 < kBlockGroups ? groups - g0 : kBlockGroups;
    const int rows = block_groups * TR, padded_rows = (rows + kRowStep - 1) / kRowStep * kRowStep;
    // a[row][k]: the block's rows; rows past the block's last group stay zero.
    for (int g = 0; g < block_groups; ++g)
      for (int it = 0; it < in_tiles; ++it) {
        const InVec x = in.read();
        for (int r = 0; r < TR; ++r)
          for (int i = 0; i < TIN; ++i) a[(size_t)(g * TR + r) * K + it * TIN + i] = double(x.v[r][i].V);
      }
    for (size_t k = (size_t)rows * K; k < (size_t)padded_rows * K; ++k) a[k] = 0.0;
    for (size_t i = 0; i < (size_t)rows * out_tiles * TO; ++i) sums[i] = 0;
    // K in slices of one exact chunk (kChunk products a double sums exactly), every output tile
    // against the block's slice of inputs while it is in the core's caches.
    for (int k0 = 0; k0 < K; k0 += kSliceK) {
      const int k_count = K - k0 < kSliceK ? K - k0 : kSliceK;
      for (int ot = 0; ot < out_tiles; ++ot) {
        const double* b_slice = b + ((size_t)ot * K + k0) * TO;
        for (int r0 = 0; r0 < padded_rows; r0 += kRowStep) {
          alignas(kVecBytes) double chunk[kRowStep][TO];
          exact_chunk<kRowStep, kVecs>(&a[(size_t)r0 * K + k0], K, b_slice, k_count, &chunk[0][0]);
          for (int r = 0; r < kRowStep; ++r)
            if (r0 + r < rows)
              for (int o = 0; o < TO; ++o) sums[((size_t)(r0 + r) * out_tiles + ot) * TO + o] += int64_t(chunk[r][o]);
        }
      }
    }
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

}  // namespace

}  // namespace ap_host
