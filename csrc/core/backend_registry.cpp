// The list of backends compiled into this build. Adding a backend = one folder + one entry here.
#include <stdexcept>

#include "backends/cpu/cpu_backend.h"
#include "backends/emu/emu_device.h"
#include "backends/fpga/fpga_backend.h"
#include "core/backend.h"

namespace edgemoe {

namespace {
struct Entry {
  const char* name;
  std::unique_ptr<Backend> (*create)(const ModelConfig&, std::shared_ptr<const ModelWeights>, int,
                                     const BackendOptions&);
  BackendInfo (*probe)();
  std::vector<std::string> (*devices)();  // nullptr: the backend has no devices to probe
};

const Entry kBackends[] = {
    {"cpu", &make_cpu_backend, &probe_cpu_backend, nullptr},
    {"emu", &make_emu_backend, &probe_emu_backend, nullptr},
    {"fpga", &make_fpga_backend, &probe_fpga_backend, &list_fpga_devices},
};

const Entry& find(const std::string& name) {
  std::string known;
  for (const Entry& e : kBackends) {
    if (name == e.name) return e;
    known += known.empty() ? e.name : std::string(", ") + e.name;
  }
  throw std::invalid_argument("unknown backend '" + name + "' (this build has: " + known + ")");
}
}  // namespace

std::unique_ptr<Backend> make_backend(const std::string& name, const ModelConfig& config,
                                      std::shared_ptr<const ModelWeights> weights, int num_threads,
                                      const BackendOptions& options) {
  const Entry& e = find(name);
  const BackendInfo info = e.probe();
  if (!info.available) throw std::runtime_error("backend '" + name + "' is unavailable: " + info.reason);
  return e.create(config, std::move(weights), num_threads, options);
}

std::vector<BackendInfo> list_backends() {
  std::vector<BackendInfo> out;
  for (const Entry& e : kBackends) out.push_back(e.probe());
  return out;
}

std::vector<std::string> list_devices(const std::string& backend) {
  const Entry& e = find(backend);
  return e.devices ? e.devices() : std::vector<std::string>{};
}

}  // namespace edgemoe
