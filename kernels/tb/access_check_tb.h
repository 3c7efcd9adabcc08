// The testbench side of kernels/src/access_check.h: include in exactly one file of a testbench built
// with EDGEMOE_ACCESS_CHECK. Counts, per checked loop run, the reads and writes of a word that an
// earlier iteration of the run wrote: what `DEPENDENCE ... inter dependent = false` claims never
// happens.
#pragma once

#include <set>
#include <utility>

namespace tb {
inline std::set<std::pair<const void*, long>>& written() {
  static std::set<std::pair<const void*, long>> words;
  return words;
}
inline long& collisions() {
  static long n = 0;
  return n;
}
inline long& checked_accesses() {
  static long n = 0;
  return n;
}
}  // namespace tb

void edgemoe_access_begin() { tb::written().clear(); }

void edgemoe_access(bool write, const void* buffer, long word) {
  ++tb::checked_accesses();
  const auto key = std::make_pair(buffer, word);
  if (tb::written().count(key)) ++tb::collisions();
  if (write) tb::written().insert(key);
}
