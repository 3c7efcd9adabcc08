// The list of backends compiled into this build. Adding a backend = one folder + one entry here.
#include <stdexcept>

#include "backends/cpu/cpu_backend.h"
#include "backends/emu/emu_device.h"
#include "core/backend.h"

namespace edgemoe {

namespace {
struct Entry {
  const char* name;
  std::unique_ptr<Backend> (*create)(const ModelConfig&, std::shared_ptr<const ModelWeights>, int);
  BackendInfo (*probe)();
};

const Entry kBackends[] = {
    {"cpu", &make_cpu_backend, &probe_cpu_backend},
    {"emu", &make_emu_backend, &probe_emu_backend},
};
}  // namespace

std::unique_ptr<Backend> make_backend(const std::string& name, const ModelConfig& config,
                                      std::shared_ptr<const ModelWeights> weights, int num_threads) {
  std::string known;
  for (const Entry& e : kBackends) {
    if (name == e.name) {
      BackendInfo info = e.probe();
      if (!info.available) throw std::runtime_error("backend '" + name + "' is unavailable: " + info.reason);
      return e.create(config, std::move(weights), num_threads);
    }
    known += known.empty() ? e.name : std::string(", ") + e.name;
  }
  throw std::invalid_argument("unknown backend '" + name + "' (this build has: " + known + ")");
}

std::vector<BackendInfo> list_backends() {
  std::vector<BackendInfo> out;
  for (const Entry& e : kBackends) out.push_back(e.probe());
  return out;
}

}  // namespace edgemoe
