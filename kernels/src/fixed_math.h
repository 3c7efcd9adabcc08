// Fixed-point exp, reciprocal, reciprocal square root and GELU: table + linear interpolation (+ one
// Newton step for the reciprocals). Tables are generated from the definitions (tools/gen_tables.py).
// Measured errors are in kernels/README.md and checked by tb/test_fixed_math.cpp.
//
// ROMs, one per lookup instance: a constant array is a ROM with two ports, and an interpolating
// lookup reads two neighbouring entries per call, so a ROM serves one lookup per cycle. Each lookup
// function owns its table as a static const local and is never inlined (INLINE off): every call
// site, and every copy an unrolled loop makes of one, is its own instance with its own ROM, so the
// 24 (ZCU102) or 96 (U280) GELUs of a MAC step, the 2 x 8 or 2 x 16 exps of an attention step and
// the 16 of the gate's tail each read their own ROM, two reads a cycle. (A table shared at namespace
// scope would be one ROM for all of them: II 16-96.) The resource estimate counts these copies
// (schedule.h); tests/test_kernel_rules.py refuses a table outside its function, a lookup
// function that could be inlined, or one that reads its ROM more than twice a call.
#pragma once

#include "formats.h"
#include "tables.h"

namespace edgemoe_hls {

typedef ap_fixed<33, 11> fm_diff_t;  // exact difference of two fm_t

// e^x for x <= 0, in (0, 1]. x log2(e) = n + f with integer n <= 0 and f in [0, 1);
// 2^f from a 257-entry table with linear interpolation, then shifted right by -n.
inline unit_t exp_nonpositive(fm_diff_t x) {
#pragma HLS INLINE off
  static const unsigned kRom[tables::kExp2Entries] = {EDGEMOE_TABLE_EXP2};
  const fm_diff_t kFloor = -24;  // e^-24 < 2^-34: below unit_t's LSB
  if (x < kFloor) return unit_t(0);
  const ap_ufixed<25, 1> kLog2e = 1.4426950408889634;
  const ap_fixed<58, 12> y = x * kLog2e;             // exact
  const ap_fixed<12, 12> n = y;                        // floor
  const ap_ufixed<24, 0> f = y - n;                    // [0, 1)
  const ap_ufixed<33, 9> scaled = f * ap_ufixed<9, 9>(tables::kExp2Steps);
  const ap_ufixed<8, 8> i = scaled;                    // floor
  const ap_ufixed<16, 0> t = scaled - i;
  const int idx = i.to_int();
  ap_ufixed<26, 2> lo, hi;
  lo.range() = kRom[idx];
  hi.range() = kRom[idx + 1];
  const ap_ufixed<26, 2> p = lo + t * ap_ufixed<26, 2>(hi - lo);
  const int shift = -n.to_int();
  if (shift > 25) return unit_t(0);
  return unit_t(p >> shift);
}

// table[i] - t (table[i] - table[i+1]) for a decreasing table of ap_ufixed<25,1> entries (24
// fraction bits), at the point i + t given as a fixed-point index: two reads of the caller's ROM.
template <int W, int I>
inline ap_ufixed<25, 1> lerp_decreasing(const unsigned* table, const ap_ufixed<W, I>& position) {
#pragma HLS INLINE
  const ap_ufixed<I, I> i = position;  // floor
  const ap_ufixed<16, 0> t = position - i;
  const int idx = i.to_int();
  ap_ufixed<25, 1> lo, hi;
  lo.range() = table[idx];
  hi.range() = table[idx + 1];
  return lo - ap_ufixed<25, 1>(t * ap_ufixed<25, 1>(lo - hi));
}

// 1/x for x in [1, 4096) as mant * 2^-exp2 with mant in (0.5, 1].
inline void reciprocal(sum_t x, unit_t& mant, int& exp2) {
#pragma HLS INLINE off
  static const unsigned kRom[tables::kRecipEntries] = {EDGEMOE_TABLE_RECIP};
  int e = 0;
  for (int k = 1; k < 12; ++k) {
#pragma HLS UNROLL
    if (x >= (sum_t(1) << k)) e = k;
  }
  const ap_ufixed<25, 1> m = x >> e;                   // [1, 2)
  const ap_ufixed<33, 9> position = ap_ufixed<24, 0>(m - ap_ufixed<1, 1>(1)) * ap_ufixed<9, 9>(tables::kRecipSteps);
  const ap_ufixed<25, 1> r0 = lerp_decreasing(kRom, position);
  const ap_ufixed<26, 2> mr = m * r0;                  // ~1
  const ap_fixed<28, 4> correction = ap_ufixed<2, 2>(2) - mr;
  mant = unit_t(r0 * correction);                      // Newton: r (2 - m r)
  exp2 = e;
}

// 1/sqrt(v) for v in (2^-28, 2^20) as mant * 2^-exp2 (exp2 may be negative), mant in (0.5, 1].
typedef ap_ufixed<48, 20> var_t;
inline void reciprocal_sqrt(var_t v, unit_t& mant, int& exp2) {
#pragma HLS INLINE off
  static const unsigned kRom[tables::kRsqrtEntries] = {EDGEMOE_TABLE_RSQRT};
  int k = -14;
  for (int j = -13; j < 10; ++j) {
#pragma HLS UNROLL
    const var_t threshold = j >= 0 ? (var_t(1) << (2 * j)) : (var_t(1) >> (-2 * j));
    if (v >= threshold) k = j;
  }
  const var_t normalised = k >= 0 ? (v >> (2 * k)) : (v << (-2 * k));
  const ap_ufixed<26, 2> m = normalised;               // [1, 4)
  const ap_ufixed<33, 9> position = ap_ufixed<25, 2>(m - ap_ufixed<1, 1>(1)) * ap_ufixed<8, 8>(tables::kRsqrtStepsPerUnit);
  const ap_ufixed<25, 1> y0 = lerp_decreasing(kRom, position);
  const ap_ufixed<26, 2> y0sq = y0 * y0;
  const ap_ufixed<28, 4> my2 = m * y0sq;                // ~1
  const ap_fixed<30, 5> correction = ap_ufixed<2, 2>(3) - my2;
  const ap_fixed<56, 7> y1x2 = y0 * correction;         // Newton: y (3 - m y^2) / 2, halved below
  mant = unit_t(y1x2 >> 1);
  exp2 = k;
}

// GELU(x) = ReLU(x) - delta(|x|), delta(t) = t Phi(-t) from a table at step 1/128 on [0, 8].
inline fm_t gelu(fm_t x) {
#pragma HLS INLINE off
  static const unsigned kRom[tables::kGeluDeltaEntries] = {EDGEMOE_TABLE_GELU_DELTA};
  // On a board short of BRAM (the U280: 96 copies of 1,025 entries would take 288 BRAM18 beside the
  // weight banks) in LUTs, a distributed ROM per read port; else in BRAM (schedule.h).
#if EDGEMOE_SMALL_MEMORIES_IN_LUTS
#pragma HLS BIND_STORAGE variable = kRom type = rom_2p impl = lutram
#else
#pragma HLS BIND_STORAGE variable = kRom type = rom_2p impl = bram
#endif
  const ap_ufixed<32, 10> ax = x < fm_t(0) ? ap_ufixed<32, 10>(-x) : ap_ufixed<32, 10>(x);
  const fm_t relu = x < fm_t(0) ? fm_t(0) : x;
  if (ax >= ap_ufixed<32, 10>(tables::kGeluRange)) return relu;
  const ap_ufixed<40, 18> scaled = ax * ap_ufixed<8, 8>(tables::kGeluStepsPerUnit);
  const ap_ufixed<10, 10> i = scaled;
  const ap_ufixed<22, 0> t = scaled - i;
  const int idx = i.to_int();
  ap_ufixed<24, 0> lo, hi;
  lo.range() = kRom[idx];
  hi.range() = kRom[idx + 1];
  const ap_fixed<25, 1> slope = hi - lo;
  const ap_fixed<26, 1> delta = lo + t * slope;
  return fm_t(relu - delta);
}

}  // namespace edgemoe_hls
