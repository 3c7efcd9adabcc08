#include "core/isa.h"

#include <cstdlib>

namespace edgemoe::isa {

namespace {

bool cpu_runs(const std::string& name) {
#if defined(__x86_64__) && !defined(EDGEMOE_SINGLE_ISA)
  __builtin_cpu_init();
  if (name == "baseline") return true;
  if (name == "avx2") return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (name == "avx512")
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return false;
#else
  return name == "native";
#endif
}

struct Choice {
  std::string active, error;
};

const Choice& choice() {
  static const Choice c = [] {
    Choice out;
    const std::vector<std::string> ok = supported();
    out.active = ok.empty() ? compiled().front() : ok.back();
    const char* forced = std::getenv("EDGEMOE_FORCE_ISA");
    if (forced && *forced) {
      const std::string want(forced);
      bool built = false;
      for (const std::string& n : compiled()) built = built || n == want;
      if (!built) {
        out.error = "EDGEMOE_FORCE_ISA=" + want.substr(0, 40) + " is not a path of this build (it has";
        for (const std::string& n : compiled()) out.error += " " + n;
        out.error += ")";
      } else if (!cpu_runs(want)) {
        out.error = "EDGEMOE_FORCE_ISA=" + want + ": this CPU cannot run that path";
      } else {
        out.active = want;
      }
    }
    return out;
  }();
  return c;
}

}  // namespace

const std::vector<std::string>& compiled() {
#if defined(__x86_64__) && !defined(EDGEMOE_SINGLE_ISA)
  static const std::vector<std::string> names{"baseline", "avx2", "avx512"};
#else
  static const std::vector<std::string> names{"native"};
#endif
  return names;
}

std::vector<std::string> supported() {
  std::vector<std::string> out;
  for (const std::string& n : compiled())
    if (cpu_runs(n)) out.push_back(n);
  return out;
}

const std::string& active() { return choice().active; }
const std::string& request_error() { return choice().error; }

}  // namespace edgemoe::isa
