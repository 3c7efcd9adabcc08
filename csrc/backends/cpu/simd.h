// Portable 16-lane float vectors (GCC/Clang vector extensions): one zmm register with
// -march=native on AVX-512 machines, two ymm otherwise. Loads/stores are unaligned.
#pragma once

#include <cstdint>
#include <cstring>

namespace edgemoe::cpu {

typedef float v16f __attribute__((vector_size(64)));
typedef int32_t v16i __attribute__((vector_size(64)));
constexpr int kLanes = 16;

inline v16f load16(const float* p) {
  v16f v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline void store16(float* p, v16f v) { std::memcpy(p, &v, sizeof(v)); }
inline v16f splat16(float x) { return v16f{} + x; }

inline float hsum16(v16f v) {
  float s = 0.f;
  for (int i = 0; i < kLanes; ++i) s += v[i];
  return s;
}
inline float hmax16(v16f v) {
  float m = v[0];
  for (int i = 1; i < kLanes; ++i) m = v[i] > m ? v[i] : m;
  return m;
}

// e^x for x <= 0 (softmax after max subtraction; x is clamped at -87), relative error < 1e-7:
// x = n ln2 + r with |r| <= ln2/2, e^r by a degree-7 Taylor polynomial, 2^n through the exponent.
inline v16f exp16_nonpositive(v16f x) {
  const v16f lo = splat16(-87.0f);
  x = x < lo ? lo : x;
  const v16f magic = splat16(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
  v16f t = x * 1.44269504088896341f + magic;
  v16f n = t - magic;
  v16f r = x - n * 0.693145751953125f;  // ln2 split in two for an exact n*ln2_hi
  r = r - n * 1.42860682030941723212e-6f;
  v16f p = splat16(1.0f / 5040);
  p = p * r + 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  v16i bits = (__builtin_convertvector(n, v16i) + 127) << 23;
  v16f scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

}  // namespace edgemoe::cpu
