// The C++ tests' one check: count it, and print what failed. Each test's main() ends with
// `return report();`, whose closing line "N passed, N failed" ctest shows.
#pragma once

#include <cstdio>
#include <string>

namespace edgemoe_test {

inline int g_failed = 0, g_passed = 0;

inline void expect(bool ok, const std::string& what) {
  ok ? ++g_passed : ++g_failed;
  if (!ok) std::printf("FAIL: %s\n", what.c_str());
}

inline int report() {
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}

}  // namespace edgemoe_test
