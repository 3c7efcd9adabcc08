// Included only by the per-ISA sources (isa/): the types and helpers live in that path's namespace.
// Portable float vectors (GCC/Clang vector extensions) as wide as one register of the build's ISA:
// 16 lanes (one zmm) with AVX-512, 8 lanes (one ymm) otherwise. A 16-lane type on AVX2 would be a
// pair of ymm registers that the kernels' register tiles cannot hold without spilling every FMA.
// Loads/stores are unaligned.
#pragma once

#include <cstdint>
#include <cstring>

namespace edgemoe::cpu::EDGEMOE_ISA_NS {

#if defined(__AVX512F__)
constexpr int kLanes = 16;
#else
constexpr int kLanes = 8;
#endif
typedef float vfloat __attribute__((vector_size(4 * kLanes)));
typedef int32_t vint __attribute__((vector_size(4 * kLanes)));

inline vfloat vload(const float* p) {
  vfloat v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline void vstore(float* p, vfloat v) { std::memcpy(p, &v, sizeof(v)); }
inline vfloat vsplat(float x) { return vfloat{} + x; }

inline float vhsum(vfloat v) {
  float s = 0.f;
  for (int i = 0; i < kLanes; ++i) s += v[i];
  return s;
}
inline float vhmax(vfloat v) {
  float m = v[0];
  for (int i = 1; i < kLanes; ++i) m = v[i] > m ? v[i] : m;
  return m;
}

// e^x for x <= 0 (softmax after max subtraction; x is clamped at -87), relative error < 1e-7:
// x = n ln2 + r with |r| <= ln2/2, e^r by a degree-7 Taylor polynomial, 2^n through the exponent.
inline vfloat vexp_nonpositive(vfloat x) {
  const vfloat lo = vsplat(-87.0f);
  x = x < lo ? lo : x;
  const vfloat magic = vsplat(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
  vfloat t = x * 1.44269504088896341f + magic;
  vfloat n = t - magic;
  vfloat r = x - n * 0.693145751953125f;  // ln2 split in two for an exact n*ln2_hi
  r = r - n * 1.42860682030941723212e-6f;
  vfloat p = vsplat(1.0f / 5040);
  p = p * r + 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  vint bits = (__builtin_convertvector(n, vint) + 127) << 23;
  vfloat scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

}  // namespace edgemoe::cpu::EDGEMOE_ISA_NS
