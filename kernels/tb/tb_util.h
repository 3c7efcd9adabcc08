// Shared by the kernel testbenches: a check counter, the closing "N passed, N failed" line, RNG.
#pragma once

#include <cmath>
#include <cstdio>
#include <random>
#include <string>

namespace tb {

inline int& passed() { static int n = 0; return n; }
inline int& failed() { static int n = 0; return n; }

inline void expect(bool ok, const std::string& what) {
  if (ok) {
    ++passed();
  } else {
    ++failed();
    std::printf("FAIL: %s\n", what.c_str());
  }
}

// Checks a measured error against its stated bound and prints both.
inline void bound(const std::string& what, double measured, double limit) {
  std::printf("%-58s %.3g (bound %.3g)\n", what.c_str(), measured, limit);
  expect(measured <= limit, what);
}

inline int finish() {
  std::printf("%d passed, %d failed\n", passed(), failed());
  return failed() == 0 ? 0 : 1;
}

struct Rng {
  std::mt19937 gen;
  explicit Rng(unsigned seed) : gen(seed) {}
  double normal(double mean = 0, double stddev = 1) { return std::normal_distribution<double>(mean, stddev)(gen); }
  double uniform(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(gen); }
  int integer(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(gen); }
  // A normal deviate computed the same on every platform (for golden hashes): Irwin-Hall, the sum of
  // 12 uniform 24-bit integers, exact in double; mean + stddev * z rounds identically wherever
  // contraction into FMA is off (board_bits is built with -ffp-contract=off).
  double exact_normal(double mean, double stddev) {
    long long sum = 0;
    for (int i = 0; i < 12; ++i) sum += static_cast<long long>(gen() >> 8);
    const double z = std::ldexp(static_cast<double>(sum), -24) - 6.0;
    return mean + stddev * z;
  }
};

}  // namespace tb
