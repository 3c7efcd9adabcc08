// edgemoe's own host-side subset of Vitis HLS's arbitrary-precision types (ap_fixed, ap_ufixed,
// ap_int, ap_uint), written from their documented semantics so that kernels compile with plain g++
// and compute exactly what the synthesized hardware computes.
//
// Supported: widths up to 64 bits; quantisation AP_TRN (floor), AP_TRN_ZERO, AP_RND (half up),
// AP_RND_CONV (half to even), decided exactly for any shift and from doubles; overflow AP_WRAP (N = 0;
// other N is a compile error) and AP_SAT, by the exact value even beyond 64 bits. ap_int/ap_uint
// from fixed point or doubles truncate toward zero. NaN converts to 0 (Vitis documents nothing). Arithmetic results are exact, as in
// Vitis: a*b has W1+W2 bits, a+b one more integer bit than the wider operand; assignment converts
// (quantise, then overflow) into the destination's format. Under Vitis the real <ap_fixed.h> is
// used instead (see kernels/src/hls_types.h).
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

enum ap_q_mode { AP_RND, AP_RND_ZERO, AP_RND_MIN_INF, AP_RND_INF, AP_RND_CONV, AP_TRN, AP_TRN_ZERO };
enum ap_o_mode { AP_SAT, AP_SAT_ZERO, AP_SAT_SYM, AP_WRAP, AP_WRAP_SM };

namespace ap_host {

constexpr int max_i(int a, int b) { return a > b ? a : b; }

// Left shifts of possibly negative values, done on the unsigned bits: C++17 leaves `v << n` undefined
// for v < 0, while two's complement (what g++ emits for it anyway, and what HLS wires) is wanted.
constexpr int64_t shl(int64_t v, int n) { return int64_t(uint64_t(v) << n); }
constexpr __int128 shl128(__int128 v, int n) { return (__int128)((unsigned __int128)v << n); }

// Signed/unsigned W-bit two's complement in an int64 (W <= 64).
template <int W, bool S>
constexpr int64_t wrap(int64_t v) {
  // Shifts rather than mask-and-select: two instructions that vectorise (a wrapping accumulate
  // sits in every MAC loop of the emulation). g++ shifts signed values arithmetically.
  if constexpr (W >= 64) return v;
  else if constexpr (S) return int64_t(uint64_t(v) << (64 - W)) >> (64 - W);
  else return int64_t(uint64_t(v) & ((uint64_t(1) << W) - 1));
}

template <int W, bool S>
constexpr int64_t max_raw() { return S ? int64_t((uint64_t(1) << (W - 1)) - 1) : (W >= 64 ? INT64_MAX : int64_t((uint64_t(1) << W) - 1)); }
template <int W, bool S>
constexpr int64_t min_raw() { return S ? (W >= 64 ? INT64_MIN : -int64_t(uint64_t(1) << (W - 1))) : 0; }

// Drops `shift` low bits of v with quantisation mode Q (shift > 0).
template <ap_q_mode Q>
constexpr int64_t quantize(int64_t v, int shift) {
  static_assert(Q == AP_TRN || Q == AP_TRN_ZERO || Q == AP_RND || Q == AP_RND_CONV,
                "this ap_fixed subset implements AP_TRN, AP_TRN_ZERO, AP_RND and AP_RND_CONV");
  if (shift >= 63) {
    // |v| < 2^63 <= 2^shift: the value lies in [-1, 1). Decided on 128 bits (shift 63 or 64 keeps
    // a half of 2^62 or 2^63 that v can reach); beyond, no half is reachable.
    if (shift > 64) return (Q == AP_TRN && v < 0) ? -1 : 0;
    const __int128 one = (__int128)1 << shift, rem = v < 0 ? one + v : (__int128)v, half = one >> 1;
    const int64_t floor_v = v < 0 ? -1 : 0;
    switch (Q) {
      case AP_TRN: return floor_v;
      case AP_TRN_ZERO: return 0;
      case AP_RND: return rem >= half ? floor_v + 1 : floor_v;
      case AP_RND_CONV: return (rem > half || (rem == half && (floor_v & 1))) ? floor_v + 1 : floor_v;
      default: return floor_v;
    }
  }
  const int64_t floor_v = v >> shift;  // arithmetic shift: floor
  const int64_t rem = v - shl(floor_v, shift);  // in [0, 2^shift)
  const int64_t half = int64_t(1) << (shift - 1);
  switch (Q) {
    case AP_TRN: return floor_v;
    case AP_TRN_ZERO: return (v < 0 && rem != 0) ? floor_v + 1 : floor_v;
    case AP_RND: return rem >= half ? floor_v + 1 : floor_v;
    case AP_RND_CONV: return (rem > half || (rem == half && (floor_v & 1))) ? floor_v + 1 : floor_v;
    default: return floor_v;
  }
}

template <int W, bool S, ap_o_mode O>
constexpr int64_t overflow(int64_t v, bool beyond_int64 = false) {
  static_assert(O == AP_WRAP || O == AP_SAT, "this ap_fixed subset implements AP_WRAP and AP_SAT");
  if (O == AP_SAT) {
    if (beyond_int64) return v < 0 ? min_raw<W, S>() : max_raw<W, S>();
    if (v > max_raw<W, S>()) return max_raw<W, S>();
    if (v < min_raw<W, S>()) return min_raw<W, S>();
    return v;
  }
  return wrap<W, S>(v);
}

}  // namespace ap_host

template <int W, int I, bool S, ap_q_mode Q, ap_o_mode O, int N = 0>
struct ap_fixed_base;

namespace ap_host {
// The N of the results of arithmetic (a * b, a + b, a - b, -a): exact, hence always canonical.
// Kernels never name it; it only tells these temporaries from declared variables (see kLazyWrap).
constexpr int kExactResult = -1;

// The smallest integer holding W bits, so that arrays of a type have the byte layout Vitis gives
// them in DDR (1, 2, 4 or 8 bytes per element, little-endian two's complement).
template <int W, bool S>
using storage_t = typename std::conditional<
    (W <= 8), typename std::conditional<S, int8_t, uint8_t>::type,
    typename std::conditional<
        (W <= 16), typename std::conditional<S, int16_t, uint16_t>::type,
        typename std::conditional<(W <= 32), typename std::conditional<S, int32_t, uint32_t>::type,
                                  typename std::conditional<S, int64_t, uint64_t>::type>::type>::type>::type;
}  // namespace ap_host

// The raw bits of a value, as Vitis's x.range() (whole-word form only).
template <class T>
struct ap_range_ref {
  T* target;
  operator uint64_t() const { return uint64_t(target->raw()) & T::kMask; }
  ap_range_ref& operator=(uint64_t bits) {
    target->V = ap_host::wrap<T::width, T::is_signed>(int64_t(bits));
    return *this;
  }
};

template <int W, int I, bool S, ap_q_mode Q, ap_o_mode O, int N>
struct ap_fixed_base {
  static_assert(W >= 1 && W <= 64 && (S || W <= 63), "this ap_fixed subset supports 1..64 bits (unsigned: 63)");
  // Vitis's N is the number of saturated MSBs in the wrap modes; this subset wraps all bits.
  static_assert(O != AP_WRAP || N == 0 || N == ap_host::kExactResult,
                "this ap_fixed subset implements AP_WRAP with N = 0 only (N saturation bits are not modelled)");
  static constexpr int width = W;
  static constexpr int iwidth = I;
  static constexpr int fwidth = W - I;
  static constexpr bool is_signed = S;
  static constexpr uint64_t kMask = W >= 64 ? ~uint64_t(0) : (uint64_t(1) << W) - 1;
  // Lazy wrapping, for the accumulators of the MAC loops: a declared AP_WRAP variable of 33..63
  // bits may hold, after `a += b` / `a -= b` with no quantisation, any int64 congruent to its
  // value modulo 2^W; raw() reduces it. Reduction modulo 2^W commutes with addition, so every
  // observed value is the one a wrap after each add gives, and the add itself costs one
  // instruction. Types of up to 32 bits, exact temporaries and DDR element types (<= 32 bits)
  // always hold the canonical bits.
  static constexpr bool kLazyWrap = O == AP_WRAP && N != ap_host::kExactResult && W > 32 && W < 64;
  // Storage: value = V * 2^-(W-I), in W-sized two's complement. Public like Vitis's ap_fixed_base::V.
  ap_host::storage_t<W, S> V = 0;
  constexpr int64_t raw() const {
    if constexpr (kLazyWrap) return ap_host::wrap<W, S>(int64_t(V));
    else return int64_t(V);
  }

  constexpr ap_fixed_base() = default;

  template <int W2, int I2, bool S2, ap_q_mode Q2, ap_o_mode O2, int N2>
  constexpr ap_fixed_base(const ap_fixed_base<W2, I2, S2, Q2, O2, N2>& other) {
    assign_raw(other.raw(), W2 - I2);
  }
  constexpr ap_fixed_base(int v) { assign_raw(v, 0); }
  constexpr ap_fixed_base(unsigned v) { assign_raw(int64_t(v), 0); }
  constexpr ap_fixed_base(long v) { assign_raw(v, 0); }
  constexpr ap_fixed_base(unsigned long v) { assign_unsigned(v); }
  constexpr ap_fixed_base(long long v) { assign_raw(v, 0); }
  constexpr ap_fixed_base(unsigned long long v) { assign_unsigned(v); }
  constexpr ap_fixed_base(bool v) { assign_raw(v ? 1 : 0, 0); }
  ap_fixed_base(double d) { assign_double(d); }
  ap_fixed_base(float f) { assign_double(double(f)); }

  // value_raw * 2^-frac_bits -> this format, with this type's quantisation and overflow.
  constexpr void assign_raw(int64_t raw, int frac_bits) {
    constexpr int F = W - I;
    if (frac_bits > F) {
      raw = ap_host::quantize<Q>(raw, frac_bits - F);
      V = ap_host::overflow<W, S, O>(raw);
    } else {
      const int up = F - frac_bits;
      // Shifting left by `up` may leave int64: detect for saturation.
      const bool beyond = up >= 63 ? raw != 0 : (raw > (INT64_MAX >> up) || raw < (INT64_MIN >> up));
      const int64_t shifted = up >= 64 ? 0 : int64_t(uint64_t(raw) << up);
      // Saturation decides by the sign of the value, not of its wrapped low bits.
      if (beyond && O == AP_SAT) V = ap_host::overflow<W, S, O>(raw < 0 ? INT64_MIN : INT64_MAX, true);
      else V = ap_host::overflow<W, S, O>(shifted);
    }
  }

  // A C unsigned integer: values of 2^63 and more do not fit the int64 path.
  constexpr void assign_unsigned(unsigned long long v) {
    if (v <= (unsigned long long)INT64_MAX) return assign_raw(int64_t(v), 0);
    constexpr int F = W - I;
    if constexpr (F < 0) {
      // Dropping -F >= 1 low bits leaves < 2^63; quantisation of a positive value by halves.
      const unsigned long long floor_v = v >> -F, rem = v - (floor_v << -F), half = 1ull << (-F - 1);
      const bool up = (Q == AP_RND && rem >= half) || (Q == AP_RND_CONV && (rem > half || (rem == half && (floor_v & 1))));
      V = ap_host::overflow<W, S, O>(int64_t(floor_v + (up ? 1 : 0)));  // already in this type's steps
    } else {
      // 2^63 <= v * 2^F: beyond every signed 64-bit raw value, and the wrap keeps its low bits.
      if constexpr (O == AP_SAT) V = ap_host::overflow<W, S, O>(INT64_MAX, /*beyond_int64=*/true);  // positive
      else V = ap_host::overflow<W, S, O>(F >= 64 ? 0 : int64_t(uint64_t(v) << F));
    }
  }

  // A double, quantised exactly (no floating-point rounding decides a half), then overflowed: AP_SAT
  // clamps (infinities included); AP_WRAP keeps the low W bits of the exact integer, however large.
  // NaN has no value: it converts to 0 in every mode (Vitis documents no NaN behaviour).
  void assign_double(double d) {
    constexpr int F = W - I;
    if (std::isnan(d)) d = 0;
    const double scaled = std::ldexp(d, F);
    double q = std::floor(scaled);
    if (std::isfinite(scaled)) {
      const double rem = scaled - q;  // exact: q and scaled are within one unit of each other
      const bool odd = Q == AP_RND_CONV && std::fmod(q, 2.0) != 0;  // only AP_RND_CONV asks (fmod is slow)
      switch (Q) {
        case AP_RND: q += rem >= 0.5 ? 1 : 0; break;
        case AP_RND_CONV: q += (rem > 0.5 || (rem == 0.5 && odd)) ? 1 : 0; break;
        case AP_TRN_ZERO: q = std::trunc(scaled); break;
        default: break;
      }
    }
    const bool beyond = !(q < 0x1p63 && q >= -0x1p63);
    int64_t raw;
    if (!beyond) {
      raw = int64_t(q);
    } else if (O == AP_SAT || !std::isfinite(q)) {
      raw = q < 0 ? INT64_MIN : INT64_MAX;  // AP_WRAP of an infinity: no finite bits to keep
      if (O != AP_SAT) raw = 0;
    } else {
      double low = std::fmod(q, 0x1p64);  // exact; q is an integer multiple of a power of two
      if (low < 0) low += 0x1p64;
      raw = int64_t(uint64_t(low));
    }
    V = ap_host::overflow<W, S, O>(raw, beyond && O == AP_SAT);
  }

  double to_double() const { return std::ldexp(double(raw()), -(W - I)); }
  // Integer part, truncated toward zero (C semantics, as Vitis's to_int()).
  constexpr int to_int() const {
    constexpr int F = W - I;
    if (F <= 0) return int(ap_host::shl(raw(), -F));
    return int(ap_host::quantize<AP_TRN_ZERO>(raw(), F));  // no negation: safe for INT64_MIN
  }
  float to_float() const { return float(to_double()); }
  explicit operator double() const { return to_double(); }
  explicit operator float() const { return to_float(); }

  ap_range_ref<ap_fixed_base> range() { return {this}; }
  uint64_t range() const { return uint64_t(raw()) & kMask; }

  // Shifts keep the type; bits shifted out are lost (right: floor; left: wrap), as in Vitis.
  ap_fixed_base operator>>(int n) const {
    ap_fixed_base r;
    const int64_t v = raw();
    if (n >= 0) r.V = n >= 63 ? (v < 0 ? -1 : 0) : v >> n;
    else r.V = n <= -64 ? 0 : ap_host::wrap<W, S>(int64_t(uint64_t(v) << -n));  // n > INT_MIN here
    return r;
  }
  ap_fixed_base operator<<(int n) const {
    if (n <= -64) return *this >> 64;  // -INT_MIN would overflow
    return *this >> -n;
  }

  ap_fixed_base<W + 1, I + 1, true, AP_TRN, AP_WRAP, ap_host::kExactResult> operator-() const {
    ap_fixed_base<W + 1, I + 1, true, AP_TRN, AP_WRAP, ap_host::kExactResult> r;
    r.V = -raw();
    return r;
  }
};

// Result formats of exact arithmetic (Vitis rules).
template <class A, class B>
struct ap_mul_result {
  using type = ap_fixed_base<A::width + B::width, A::iwidth + B::iwidth, A::is_signed || B::is_signed, AP_TRN, AP_WRAP,
                             ap_host::kExactResult>;
};
template <class A, class B>
struct ap_add_result {
  static constexpr int F = ap_host::max_i(A::fwidth, B::fwidth);
  static constexpr int I = ap_host::max_i(A::iwidth + (B::is_signed && !A::is_signed),
                                          B::iwidth + (A::is_signed && !B::is_signed)) + 1;
  using type = ap_fixed_base<I + F, I, A::is_signed || B::is_signed, AP_TRN, AP_WRAP, ap_host::kExactResult>;
};

// a - b is always signed (Vitis), with the integer bits of a + b: for two unsigned operands
// max(I1, I2) + 1 signed bits hold every difference, (-2^I2, 2^I1).
template <class A, class B>
struct ap_sub_result {
  static constexpr int F = ap_host::max_i(A::fwidth, B::fwidth);
  static constexpr int I = ap_host::max_i(A::iwidth + (B::is_signed && !A::is_signed),
                                          B::iwidth + (A::is_signed && !B::is_signed)) + 1;
  using type = ap_fixed_base<I + F, I, true, AP_TRN, AP_WRAP, ap_host::kExactResult>;
};

#define AP_HOST_FIXED_ARGS int W1, int I1, bool S1, ap_q_mode Q1, ap_o_mode O1, int N1, int W2, int I2, bool S2, ap_q_mode Q2, ap_o_mode O2, int N2
#define AP_HOST_A ap_fixed_base<W1, I1, S1, Q1, O1, N1>
#define AP_HOST_B ap_fixed_base<W2, I2, S2, Q2, O2, N2>

template <AP_HOST_FIXED_ARGS>
constexpr typename ap_mul_result<AP_HOST_A, AP_HOST_B>::type operator*(const AP_HOST_A& a, const AP_HOST_B& b) {
  typename ap_mul_result<AP_HOST_A, AP_HOST_B>::type r;
  r.V = a.raw() * b.raw();  // exact: widths add up to <= 64 (static_assert in the result type)
  return r;
}

template <AP_HOST_FIXED_ARGS>
constexpr typename ap_add_result<AP_HOST_A, AP_HOST_B>::type operator+(const AP_HOST_A& a, const AP_HOST_B& b) {
  using R = typename ap_add_result<AP_HOST_A, AP_HOST_B>::type;
  R r;
  r.V = ap_host::shl(a.raw(), R::fwidth - (W1 - I1)) + ap_host::shl(b.raw(), R::fwidth - (W2 - I2));
  return r;
}

template <AP_HOST_FIXED_ARGS>
constexpr typename ap_sub_result<AP_HOST_A, AP_HOST_B>::type operator-(const AP_HOST_A& a, const AP_HOST_B& b) {
  using R = typename ap_sub_result<AP_HOST_A, AP_HOST_B>::type;
  R r;
  r.V = ap_host::shl(a.raw(), R::fwidth - (W1 - I1)) - ap_host::shl(b.raw(), R::fwidth - (W2 - I2));
  return r;
}

// Comparisons on exact values.
template <AP_HOST_FIXED_ARGS>
constexpr int ap_host_compare(const AP_HOST_A& a, const AP_HOST_B& b) {
  constexpr int F = ap_host::max_i(W1 - I1, W2 - I2);
  const __int128 x = ap_host::shl128(a.raw(), F - (W1 - I1));
  const __int128 y = ap_host::shl128(b.raw(), F - (W2 - I2));
  return x < y ? -1 : (x > y ? 1 : 0);
}
#define AP_HOST_CMP(op)                                                       \
  template <AP_HOST_FIXED_ARGS>                                               \
  constexpr bool operator op(const AP_HOST_A& a, const AP_HOST_B& b) {        \
    return ap_host_compare(a, b) op 0;                                        \
  }
AP_HOST_CMP(<)
AP_HOST_CMP(>)
AP_HOST_CMP(<=)
AP_HOST_CMP(>=)
AP_HOST_CMP(==)
AP_HOST_CMP(!=)
#undef AP_HOST_CMP

// Compound assignment: exact result, converted into the left operand's format. An add or
// subtract that needs no quantisation into a lazily wrapped variable skips the reduction.
#define AP_HOST_COMPOUND(op, binop)                                                           \
  template <AP_HOST_FIXED_ARGS>                                                               \
  AP_HOST_A& operator op(AP_HOST_A& a, const AP_HOST_B& b) {                                  \
    using Exact = decltype(a binop b);                                                        \
    if constexpr (AP_HOST_A::kLazyWrap && Exact::fwidth == W1 - I1) {                         \
      a.V = int64_t(uint64_t(a.V) binop (uint64_t(b.raw()) << ((W1 - I1) - (W2 - I2))));      \
    } else {                                                                                  \
      a = AP_HOST_A(a binop b);                                                               \
    }                                                                                         \
    return a;                                                                                 \
  }
AP_HOST_COMPOUND(+=, +)
AP_HOST_COMPOUND(-=, -)
#undef AP_HOST_COMPOUND
template <AP_HOST_FIXED_ARGS>
AP_HOST_A& operator*=(AP_HOST_A& a, const AP_HOST_B& b) {
  a = AP_HOST_A(a * b);
  return a;
}

template <int W, int I, ap_q_mode Q = AP_TRN, ap_o_mode O = AP_WRAP, int N = 0>
struct ap_fixed : ap_fixed_base<W, I, true, Q, O, N> {
  using Base = ap_fixed_base<W, I, true, Q, O, N>;
  using Base::Base;
  constexpr ap_fixed() = default;
  template <int W2, int I2, bool S2, ap_q_mode Q2, ap_o_mode O2, int N2>
  constexpr ap_fixed(const ap_fixed_base<W2, I2, S2, Q2, O2, N2>& o) : Base(o) {}
};

template <int W, int I, ap_q_mode Q = AP_TRN, ap_o_mode O = AP_WRAP, int N = 0>
struct ap_ufixed : ap_fixed_base<W, I, false, Q, O, N> {
  using Base = ap_fixed_base<W, I, false, Q, O, N>;
  using Base::Base;
  constexpr ap_ufixed() = default;
  template <int W2, int I2, bool S2, ap_q_mode Q2, ap_o_mode O2, int N2>
  constexpr ap_ufixed(const ap_fixed_base<W2, I2, S2, Q2, O2, N2>& o) : Base(o) {}
};

// Integers: a fixed-point format with no fraction bits. Conversion from fixed point or a double
// truncates toward zero (Vitis: ap_int of -2.5 is -2), then wraps.
template <int W>
struct ap_int : ap_fixed_base<W, W, true, AP_TRN, AP_WRAP> {
  using Base = ap_fixed_base<W, W, true, AP_TRN, AP_WRAP>;
  using Base::Base;
  constexpr ap_int() = default;
  template <int W2, int I2, bool S2, ap_q_mode Q2, ap_o_mode O2, int N2>
  constexpr ap_int(const ap_fixed_base<W2, I2, S2, Q2, O2, N2>& o)
      : Base(ap_fixed_base<W, W, true, AP_TRN_ZERO, AP_WRAP>(o)) {}
  ap_int(double d) : Base(ap_fixed_base<W, W, true, AP_TRN_ZERO, AP_WRAP>(d)) {}
  ap_int(float f) : ap_int(double(f)) {}
  constexpr int64_t to_int64() const { return this->raw(); }
};

template <int W>
struct ap_uint : ap_fixed_base<W, W, false, AP_TRN, AP_WRAP> {
  using Base = ap_fixed_base<W, W, false, AP_TRN, AP_WRAP>;
  using Base::Base;
  constexpr ap_uint() = default;
  template <int W2, int I2, bool S2, ap_q_mode Q2, ap_o_mode O2, int N2>
  constexpr ap_uint(const ap_fixed_base<W2, I2, S2, Q2, O2, N2>& o)
      : Base(ap_fixed_base<W, W, false, AP_TRN_ZERO, AP_WRAP>(o)) {}
  ap_uint(double d) : Base(ap_fixed_base<W, W, false, AP_TRN_ZERO, AP_WRAP>(d)) {}
  ap_uint(float f) : ap_uint(double(f)) {}
  constexpr uint64_t to_uint64() const { return uint64_t(this->raw()); }
  constexpr unsigned to_uint() const { return unsigned(this->raw()); }
};

#undef AP_HOST_A
#undef AP_HOST_B
#undef AP_HOST_FIXED_ARGS
