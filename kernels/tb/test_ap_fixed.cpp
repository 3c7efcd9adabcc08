// The host ap_fixed subset against Vitis's documented semantics, value by value.
#include "src/hls_types.h"
#include "tb_util.h"

using tb::expect;

// The cases where a naive implementation departs from Vitis's documented semantics (issue 9's
// list): each value is worked out by hand in the comment next to it.
static void edge_cases() {
  // ap_int / ap_uint from fixed point or double truncate toward zero (not floor).
  expect(ap_int<8>(ap_fixed<8, 4>(-2.5)).to_int64() == -2, "ap_int(fixed -2.5) == -2 (toward zero)");
  expect(ap_int<8>(ap_fixed<8, 4>(2.5)).to_int64() == 2, "ap_int(fixed 2.5) == 2");
  expect(ap_int<16>(-7.9).to_int64() == -7, "ap_int(double -7.9) == -7");
  expect(ap_uint<8>(ap_ufixed<8, 5>(6.875)).to_uint() == 6, "ap_uint(ufixed 6.875) == 6");
  // AP_RND from a double is decided exactly: 0.49999999999999994 LSB is below the half (floor(x +
  // 0.5) computes 1.0 in floating point and would round up).
  expect(ap_fixed<8, 8, AP_RND>(0.49999999999999994).to_double() == 0.0, "AP_RND: 0.5 - 2^-54 LSB -> 0");
  expect(ap_fixed<8, 8, AP_RND>(0.5).to_double() == 1.0, "AP_RND: exactly half -> up");
  expect(ap_fixed<8, 8, AP_RND_CONV>(0.5).to_double() == 0.0 && ap_fixed<8, 8, AP_RND_CONV>(1.5).to_double() == 2.0,
         "AP_RND_CONV: halves to even, independent of the FP rounding mode");
  // Doubles beyond int64 into AP_WRAP keep the low W bits of the exact integer: 2^70 + 5 is not a
  // double, but 2^70 + 2^18 * 3 is; its low 20 bits are 3 * 2^18 = 786432 -> as ap_int<20>: -262144.
  expect(ap_int<20>(0x1p70 + 0x1p18 * 3).to_int64() == 786432 - (1 << 20), "AP_WRAP of 2^70 + 3*2^18");
  expect(ap_fixed<16, 16>(-0x1p64).to_double() == 0.0, "AP_WRAP of -2^64 is 0 (low bits all zero)");
  expect(ap_fixed<16, 16>(0x1p63).to_double() == 0.0, "AP_WRAP of 2^63 is 0 in 16 bits");
  expect(ap_fixed<16, 16, AP_TRN, AP_SAT>(1e300).to_double() == 32767.0, "AP_SAT of 1e300 is the maximum");
  // NaN has no value: 0 in every mode (Vitis documents none); infinities saturate, or wrap to 0.
  expect(ap_fixed<16, 8, AP_TRN, AP_SAT>(std::nan("")).to_double() == 0.0, "NaN into AP_SAT -> 0");
  expect(ap_fixed<16, 8, AP_TRN, AP_SAT>(-HUGE_VAL).to_double() == -128.0, "-inf into AP_SAT -> minimum");
  expect(ap_fixed<16, 8>(HUGE_VAL).to_double() == 0.0, "inf into AP_WRAP -> 0");
  // Saturating widening conversion to 64 bits: 40 fraction bits more overflow int64 and clamp.
  const ap_fixed<40, 30> big = 500000000.0;  // < 2^29
  expect(ap_fixed<64, 24, AP_TRN, AP_SAT>(big).raw() == INT64_MAX, "widening to 64 bits saturates at INT64_MAX");
  expect(ap_fixed<64, 24, AP_TRN, AP_SAT>(ap_fixed<40, 30>(-500000000.0)).raw() == INT64_MIN, "... and at INT64_MIN");
  expect(ap_fixed<64, 40, AP_TRN, AP_SAT>(big).to_double() == 500000000.0, "a widening that fits is exact");
  // A conversion that drops exactly 63 bits: raw 2^62 * 3 at 63 fraction bits is 0.75.
  ap_fixed<64, 1> three_quarters;
  three_quarters.V = (int64_t(3) << 61);  // 0.75 with 63 fraction bits
  expect(ap_fixed<8, 8, AP_RND>(three_quarters).to_double() == 1.0, "AP_RND of 0.75 (63 bits dropped) -> 1");
  expect(ap_fixed<8, 8>(three_quarters).to_double() == 0.0, "AP_TRN of 0.75 (63 bits dropped) -> 0");
  ap_fixed<64, 1> minus_one;
  minus_one.V = INT64_MIN;  // -1.0 with 63 fraction bits
  expect(ap_fixed<8, 8, AP_RND>(minus_one).to_double() == -1.0 && ap_fixed<8, 8>(minus_one).to_double() == -1.0,
         "-1.0 with 63 fraction bits converts exactly");
  ap_fixed<64, 1> minus_quarter;
  minus_quarter.V = -(int64_t(1) << 61);  // -0.25
  expect(ap_fixed<8, 8, AP_RND>(minus_quarter).to_double() == 0.0 && ap_fixed<8, 8>(minus_quarter).to_double() == -1.0,
         "-0.25 (63 bits dropped): AP_RND -> 0, AP_TRN -> -1");
  // to_int() of the most negative 64-bit value (integer part truncated toward zero, no overflow).
  ap_fixed<64, 32> most_negative;
  most_negative.V = INT64_MIN;  // -2^31
  expect(most_negative.to_int() == INT32_MIN, "to_int() of raw INT64_MIN at 32 fraction bits is -2^31");
  // Unsigned C integers of 2^63 and more.
  expect(ap_uint<63>(0x8000000000000005ull).to_uint64() == 5, "ap_uint<63>(2^63 + 5) wraps to 5");
  expect(ap_fixed<64, 64, AP_TRN, AP_SAT>(0xFFFFFFFFFFFFFFFFull).raw() == INT64_MAX, "2^64-1 saturates a signed 64");
  expect(ap_ufixed<63, 64, AP_RND>(0x8000000000000003ull).raw() == int64_t(0x4000000000000002ull),
         "2^63 + 3 in steps of 2 rounds half up to 2^63 + 4");
  // Shifts by 64 or more keep the type and lose every bit (right: sign fill).
  const ap_fixed<16, 8> x = -3.5;
  expect((x >> 64).to_double() == -1.0 / 256 && (x >> 1000).to_double() == -1.0 / 256, "x >> 64: sign fill");
  expect((x << 64).to_double() == 0.0 && (x << 1000).to_double() == 0.0, "x << 64: 0");
  expect((x >> -64).to_double() == 0.0 && (x << INT32_MIN).to_double() == -1.0 / 256, "negative counts: other way");
  // Unsigned minus unsigned: signed, max(I1, I2) + 1 integer bits (Vitis), enough for every difference.
  const auto d = ap_ufixed<4, 4>(0) - ap_ufixed<6, 6>(63);
  static_assert(decltype(d)::is_signed && decltype(d)::iwidth == 7 && decltype(d)::fwidth == 0,
                "ufixed<4,4> - ufixed<6,6>: signed, 7 integer bits");
  expect(d.to_double() == -63.0, "0 - 63 == -63");
}

int main() {
  // Quantisation modes on 0.1 in 4 fraction bits: 0.1 * 16 = 1.6.
  expect(ap_fixed<8, 4>(0.1).to_double() == 1.0 / 16, "AP_TRN floors 1.6 LSB to 1");
  expect(ap_fixed<8, 4, AP_RND>(0.1).to_double() == 2.0 / 16, "AP_RND rounds 1.6 LSB to 2");
  expect(ap_fixed<8, 4>(-0.1).to_double() == -2.0 / 16, "AP_TRN floors -1.6 LSB to -2 (toward -inf)");
  expect(ap_fixed<8, 4, AP_TRN_ZERO>(-0.1).to_double() == -1.0 / 16, "AP_TRN_ZERO truncates -1.6 LSB to -1");
  expect(ap_fixed<8, 4, AP_RND_CONV>(2.5 / 16).to_double() == 2.0 / 16, "AP_RND_CONV: 2.5 LSB -> 2 (even)");
  expect(ap_fixed<8, 4, AP_RND_CONV>(3.5 / 16).to_double() == 4.0 / 16, "AP_RND_CONV: 3.5 LSB -> 4 (even)");
  expect(ap_fixed<8, 4, AP_RND>(-2.5 / 16).to_double() == -2.0 / 16, "AP_RND: -2.5 LSB -> -2 (half up)");
  // Overflow: ap_fixed<8,4> holds [-8, 8 - 1/16].
  expect(ap_fixed<8, 4>(9.0).to_double() == 9.0 - 16.0, "AP_WRAP wraps 9 to -7");
  expect(ap_fixed<8, 4, AP_TRN, AP_SAT>(9.0).to_double() == 8.0 - 1.0 / 16, "AP_SAT clamps 9 to the maximum");
  expect(ap_fixed<8, 4, AP_TRN, AP_SAT>(-100.0).to_double() == -8.0, "AP_SAT clamps -100 to -8");
  expect(ap_ufixed<8, 4, AP_TRN, AP_SAT>(-1.0).to_double() == 0.0, "unsigned AP_SAT clamps negatives to 0");
  expect(ap_ufixed<8, 4>(-1.0).to_double() == 16.0 - 1.0, "unsigned AP_WRAP: -1 -> 15");
  // Fixed-to-fixed conversion quantises, then handles overflow.
  const ap_fixed<16, 8> fine = 3.71875;  // 3 + 23/32
  expect(ap_fixed<8, 6>(fine).to_double() == 3.5, "narrowing conversion floors to 2 fraction bits");
  expect(ap_fixed<8, 6, AP_RND>(fine).to_double() == 3.75, "narrowing conversion rounds with AP_RND");
  // Exact arithmetic and result widths.
  const ap_fixed<8, 4> a = 7.9375, b = -8.0;
  const auto product = a * b;
  static_assert(decltype(product)::width == 16 && decltype(product)::iwidth == 8, "a*b has W1+W2 bits");
  expect(product.to_double() == -63.5, "products are exact");
  const auto sum = a + ap_fixed<12, 2>(0.0009765625);
  static_assert(decltype(sum)::iwidth == 5 && decltype(sum)::fwidth == 10, "a+b: one more integer bit, wider fraction");
  expect(sum.to_double() == 7.9375 + 0.0009765625, "sums are exact");
  const auto diff = ap_ufixed<4, 4>(1) - ap_ufixed<4, 4>(3);
  static_assert(decltype(diff)::is_signed, "a-b is signed even for unsigned operands");
  expect(diff.to_double() == -2.0, "unsigned difference goes negative");
  ap_fixed<8, 4> acc = 7.0;
  acc += ap_fixed<8, 4>(2.0);
  expect(acc.to_double() == -7.0, "compound assignment converts into the left type (wrap)");
  // Shifts keep the type; comparisons are exact across formats.
  expect((ap_fixed<8, 4>(1.5) >> 1).to_double() == 0.75, "x >> 1 halves");
  expect((ap_fixed<8, 4>(-0.0625) >> 2).to_double() == -0.0625, "x >> n floors");
  expect((ap_fixed<8, 4>(5.0) << 1).to_double() == -6.0, "x << 1 wraps within the type");
  expect(ap_fixed<8, 4>(0.5) > ap_fixed<16, 2>(0.49993896484375), "comparison across formats");
  expect(ap_fixed<8, 4>(-1) < ap_ufixed<8, 4>(0), "signed vs unsigned comparison");
  // Raw bits and integer conversion.
  ap_fixed<8, 4> r;
  r.range() = 0xF8;
  expect(r.to_double() == -0.5, "range() assigns two's complement bits");
  expect(ap_fixed<8, 4>(-2.5).to_int() == -2, "to_int truncates toward zero");
  expect(ap_fixed<12, 12>(ap_fixed<16, 8>(-2.5)).to_int() == -3, "conversion to an integer format floors");
  // Wrapping is reduction modulo 2^W into the signed (or unsigned) range, for every width the
  // datapath uses, on values spread over the whole int64 range.
  uint64_t seed = 0x9E3779B97F4A7C15ull;
  bool wraps_ok = true;
  for (int i = 0; i < 20000; ++i) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    const int64_t v = int64_t(seed) >> (i % 40);
    auto reference = [v](int w, bool is_signed) {
      const __int128 m = (__int128)1 << w;
      __int128 u = (__int128)v % m;
      if (u < 0) u += m;
      if (is_signed && u >= m / 2) u -= m;
      return int64_t(u);
    };
    wraps_ok &= ap_host::wrap<18, true>(v) == reference(18, true) && ap_host::wrap<32, true>(v) == reference(32, true);
    wraps_ok &= ap_host::wrap<48, true>(v) == reference(48, true) && ap_host::wrap<56, true>(v) == reference(56, true);
    wraps_ok &= ap_host::wrap<60, true>(v) == reference(60, true) && ap_host::wrap<1, true>(v) == reference(1, true);
    wraps_ok &= ap_host::wrap<25, false>(v) == reference(25, false) && ap_host::wrap<36, false>(v) == reference(36, false);
    wraps_ok &= ap_host::wrap<64, true>(v) == v;
  }
  expect(wraps_ok, "wrap<W, S> is reduction modulo 2^W for W in 1..64");
  // Lazily wrapped accumulators (+= / -= into 33..63-bit AP_WRAP variables) observe exactly the
  // values of a wrap after every step, through overflow, for aligned, shifted and quantised
  // operands, signed and unsigned.
  bool lazy_ok = true;
  ap_fixed<48, 14> lazy_acc = 0, eager_acc = 0;
  ap_ufixed<40, 8> lazy_u = 0, eager_u = 0;
  ap_fixed<36, 12> lazy_q = 0, eager_q = 0;
  for (int i = 0; i < 20000; ++i) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    ap_fixed<27, 9> x;
    ap_fixed<18, 2> w;
    ap_fixed<40, 20> big;
    x.range() = seed >> 37;
    w.range() = seed >> 11;
    big.range() = seed >> 3;
    lazy_acc += x * w;  // exact 45-bit products, aligned
    eager_acc = ap_fixed<48, 14>(eager_acc + x * w);
    lazy_acc -= w;      // fewer fraction bits: shifted
    eager_acc = ap_fixed<48, 14>(eager_acc - w);
    lazy_u += big;      // signed into unsigned, wraps often
    eager_u = ap_ufixed<40, 8>(eager_u + big);
    lazy_q += x * w;    // more fraction bits than the target: quantised, so the eager path
    eager_q = ap_fixed<36, 12>(eager_q + x * w);
    lazy_ok &= lazy_acc.raw() == eager_acc.raw() && lazy_acc == eager_acc && lazy_acc.to_double() == eager_acc.to_double();
    lazy_ok &= lazy_u.raw() == eager_u.raw() && (lazy_u >> 3) == (eager_u >> 3) && lazy_q.raw() == eager_q.raw();
    lazy_ok &= ap_fixed<32, 10>(lazy_acc) == ap_fixed<32, 10>(eager_acc) && lazy_u.range() == eager_u.range();
  }
  expect(lazy_ok, "lazily wrapped += / -= observe the same values as wrapping every step");
  // DDR layout: element sizes as Vitis packs them.
  static_assert(sizeof(ap_ufixed<8, 0>) == 1 && sizeof(ap_fixed<16, 2>) == 2 && sizeof(ap_fixed<18, 2>) == 4 &&
                    sizeof(ap_fixed<32, 10>) == 4 && sizeof(ap_uint<32>) == 4 && sizeof(ap_fixed<48, 14>) == 8,
                "element sizes");
  edge_cases();
  hls::stream<int> s;
  s.write(1);
  s << 2;
  int second;
  const int first = s.read();
  s >> second;
  expect(first == 1 && second == 2 && s.empty(), "hls::stream is a FIFO");
  return tb::finish();
}
