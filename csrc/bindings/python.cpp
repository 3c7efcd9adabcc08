// The one torch- and pybind11-aware file: turns Python dicts/tensors into the core's plain
// structs, releases the GIL, and maps the core's exceptions to Python ones
// (std::invalid_argument -> ValueError, std::runtime_error -> RuntimeError).
#include <omp.h>

#include <cmath>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <torch/extension.h>

#include <oneapi/dnnl/dnnl.hpp>

#include "backends/cpu/onednn_layers.h"
#include "backends/emu/board_builds.h"
#include "backends/emu/latency_model.h"
#include "core/backend.h"
#include "core/isa.h"
#include "core/model.h"
#if EDGEMOE_XRT_TOOLS
#include "backends/fpga/xclbin_check.h"
#include "backends/fpga/xclbin_writer.h"
#endif
#include "src/hls_types.h"

namespace py = pybind11;
using edgemoe::GateKind;
using edgemoe::ModelConfig;

namespace {

template <typename T>
T required(const py::dict& d, const char* key) {
  if (!d.contains(key)) throw py::value_error(std::string("model config is missing '") + key + "'");
  try {
    return d[key].cast<T>();
  } catch (const py::cast_error&) {
    throw py::type_error(std::string("model config field '") + key + "' has the wrong type (" +
                         std::string(py::str(py::type::of(d[key]))) + ")");
  }
}

ModelConfig config_from_dict(const py::dict& d) {
  ModelConfig c;
  c.embed_dim = required<int64_t>(d, "embed_dim");
  c.depth = required<int64_t>(d, "depth");
  c.num_heads = required<int64_t>(d, "num_heads");
  c.patch_size = required<int64_t>(d, "patch_size");
  c.grid_h = required<int64_t>(d, "grid_h");
  c.grid_w = required<int64_t>(d, "grid_w");
  c.mlp_hidden = required<int64_t>(d, "mlp_hidden");
  c.moe_blocks = required<std::vector<int64_t>>(d, "moe_blocks");
  c.num_experts = required<int64_t>(d, "num_experts");
  c.expert_hidden = required<int64_t>(d, "expert_hidden");
  c.top_k = required<int64_t>(d, "top_k");
  const std::string gate = required<std::string>(d, "gate");
  if (gate == "multi") c.gate = GateKind::kMultiGate;
  else if (gate == "task_conditioned") c.gate = GateKind::kTaskConditioned;
  else if (gate == "shared") c.gate = GateKind::kShared;
  else throw py::value_error("unknown gate kind '" + gate + "'");
  c.gate_task_dim = required<int64_t>(d, "gate_task_dim");
  c.gate_num_tasks = required<int64_t>(d, "gate_num_tasks");
  c.head_channels = required<int64_t>(d, "head_channels");
  for (const auto& t : required<py::list>(d, "tasks")) {
    try {
      auto tup = t.cast<py::tuple>();
      if (tup.size() != 3) throw py::cast_error();
      c.tasks.push_back({tup[0].cast<std::string>(), tup[1].cast<int64_t>(), tup[2].cast<int64_t>()});
    } catch (const py::cast_error&) {
      throw py::type_error("model config 'tasks' entries must be (name, out_channels, gate_index)");
    }
  }
  return c;
}

// The Python side (edgemoe.weights) has already checked names, shapes, dtypes and values; this
// only refuses what would make data_ptr lie: another layout, device or a lazy neg/conj bit.
std::shared_ptr<edgemoe::ModelWeights> weights_from_dict(const py::dict& tensors) {
  auto w = std::make_shared<edgemoe::ModelWeights>();
  for (const auto& item : tensors) {
    if (!py::isinstance<py::str>(item.first)) throw py::type_error("weight names must be str");
    const std::string name = item.first.cast<std::string>();
    if (!THPVariable_Check(item.second.ptr())) throw py::type_error("weight '" + name + "' is not a tensor");
    torch::Tensor t = item.second.cast<torch::Tensor>();
    if (t.layout() != torch::kStrided || t.is_quantized() || t.device().type() != torch::kCPU)
      throw py::value_error("weight '" + name + "' must be a dense CPU tensor");
    t = t.detach().resolve_conj().resolve_neg().to(torch::kFloat32).contiguous();
    w->add(name, t.sizes().vec(), t.data_ptr<float>());
  }
  return w;
}

void check_images(const torch::Tensor& x, const ModelConfig& c) {
  if (x.layout() != torch::kStrided || x.is_quantized())
    throw py::value_error("images must be a dense (strided) tensor");
  if (x.device().type() != torch::kCPU)
    throw py::value_error("images must be on the CPU, got device " + x.device().str());
  if (x.scalar_type() != torch::kFloat32)
    throw py::value_error(std::string("images must be float32, got ") + c10::toString(x.scalar_type()));
  if (x.dim() != 4 || x.size(1) != 3 || x.size(2) != c.image_h() || x.size(3) != c.image_w())
    throw py::value_error("images must have shape [B, 3, " + std::to_string(c.image_h()) + ", " +
                          std::to_string(c.image_w()) + "], got " + edgemoe::shape_to_string(x.sizes().vec()));
  if (x.size(0) < 1) throw py::value_error("images must hold at least one image");
}

// Backend options as the Python layer passes them: {"xclbin": str, "device": int, "timeout": float,
// "heads": "device" | "host"}, each optional; the Python layer has checked types and which backend
// takes them.
edgemoe::BackendOptions options_from_dict(const py::dict& d) {
  edgemoe::BackendOptions o;
  for (const auto& item : d) {
    const std::string key = py::str(item.first);
    try {
      if (key == "xclbin") o.xclbin = item.second.cast<std::string>();
      else if (key == "device") o.device = item.second.cast<int>();
      else if (key == "timeout") o.timeout_s = item.second.cast<double>();
      else if (key == "heads") {
        const std::string where = item.second.cast<std::string>();
        if (where != "device" && where != "host") throw py::value_error("heads must be 'device' or 'host'");
        o.heads_on_host = where == "host";
      } else if (key == "precision") {
        const std::string precision = item.second.cast<std::string>();
        if (precision != "fp32" && precision != "bf16") throw py::value_error("precision must be 'fp32' or 'bf16'");
        o.bf16 = precision == "bf16";
      }
      else throw py::value_error("unknown backend option '" + key + "'");
    } catch (const py::cast_error&) {
      throw py::type_error("backend option '" + key + "' has the wrong type");
    }
  }
  return o;
}

class PyModel {
 public:
  PyModel(const py::dict& config, const py::dict& weights, const std::string& backend, int num_threads,
          const py::dict& options)
      : model_(config_from_dict(config), weights_from_dict(weights), backend, num_threads, options_from_dict(options)) {}

  // Returns (one output per task, the backend's input warnings).
  py::tuple forward(torch::Tensor images, const std::vector<int64_t>& task_ids) {
    const ModelConfig& c = model_.config();
    check_images(images, c);
    for (int64_t t : task_ids)
      if (t < 0 || t >= static_cast<int64_t>(c.tasks.size())) throw py::value_error("task index out of range");
    images = images.resolve_conj().resolve_neg().contiguous();
    const int64_t batch = images.size(0);
    std::vector<torch::Tensor> outs;
    std::vector<float*> ptrs;
    for (int64_t t : task_ids) {
      outs.push_back(torch::empty({batch, c.tasks[t].out_channels, c.image_h(), c.image_w()}));
      ptrs.push_back(outs.back().data_ptr<float>());
    }
    std::vector<std::string> warnings;
    {
      py::gil_scoped_release release;
      warnings = model_.forward(images.data_ptr<float>(), batch, task_ids, ptrs);
    }
    return py::make_tuple(outs, warnings);
  }

  py::tuple features(torch::Tensor images, int64_t task_id) {
    const ModelConfig& c = model_.config();
    check_images(images, c);
    if (task_id < 0 || task_id >= static_cast<int64_t>(c.tasks.size())) throw py::value_error("task index out of range");
    images = images.resolve_conj().resolve_neg().contiguous();
    torch::Tensor out = torch::empty({images.size(0), c.num_tokens(), c.embed_dim});
    std::vector<std::string> warnings;
    {
      py::gil_scoped_release release;
      warnings = model_.features(images.data_ptr<float>(), images.size(0), task_id, out.data_ptr<float>());
    }
    return py::make_tuple(out, warnings);
  }

  // Returns ([(name, tensor)] in forward order, the backend's input warnings); core/trace.h names them.
  py::tuple trace(torch::Tensor images, int64_t task_id) {
    const ModelConfig& c = model_.config();
    check_images(images, c);
    if (task_id < 0 || task_id >= static_cast<int64_t>(c.tasks.size())) throw py::value_error("task index out of range");
    images = images.resolve_conj().resolve_neg().contiguous();
    std::vector<edgemoe::TraceTensor> tensors;
    std::vector<std::string> warnings;
    {
      py::gil_scoped_release release;
      warnings = model_.trace(images.data_ptr<float>(), images.size(0), task_id, &tensors);
    }
    py::list entries;
    for (edgemoe::TraceTensor& t : tensors) {
      torch::Tensor values = torch::from_blob(t.values.data(), t.shape, torch::kFloat32).clone();
      entries.append(py::make_tuple(t.name, t.integer ? values.to(torch::kInt64) : values));
    }
    return py::make_tuple(entries, warnings);
  }

  // Calls that take the model's lock release the GIL first: a forward may hold that lock for long.
  py::object moe_trace(int64_t task_id) {
    std::vector<uint32_t> trace;
    bool recorded;
    {
      py::gil_scoped_release release;
      recorded = model_.moe_trace(task_id, &trace);
    }
    if (!recorded) return py::none();
    return py::cast(trace);
  }

  // The latency model of `board` on these images (edgemoe.Model.estimate formats it).
  py::dict estimate(const std::string& board, torch::Tensor images, int64_t task_id, int clock_mhz, bool heads) {
    const ModelConfig& c = model_.config();
    check_images(images, c);
    images = images.resolve_conj().resolve_neg().contiguous();
    edgemoe::emu::LatencyEstimate e;
    {
      py::gil_scoped_release release;
      e = edgemoe::emu::estimate_latency(c, model_.weights(), board, images.data_ptr<float>(), images.size(0),
                                         task_id, model_.num_threads(), clock_mhz, heads);
    }
    py::list rows;
    for (const auto& r : e.rows) {
      py::dict d;
      d["stage"] = r.stage;
      d["unit"] = r.unit;
      d["cycles"] = r.cycles;
      d["compute_cycles"] = r.compute_cycles;
      d["memory_cycles"] = r.memory_cycles;
      d["bytes"] = r.bytes;
      d["macs"] = r.macs;
      d["mac_slots"] = r.mac_slots;
      d["loop_runs"] = r.loop_runs;
      d["single_beat_bytes"] = r.single_beat_bytes;
      rows.append(d);
    }
    py::list resources;
    for (const auto& u : e.resources) resources.append(py::make_tuple(u.resource, u.used, u.available));
    py::dict out;
    out["board"] = e.board;
    out["device"] = e.device;
    out["clock_mhz"] = e.clock_mhz;
    out["images"] = e.images;
    out["rows"] = rows;
    out["total_cycles"] = e.total_cycles;
    out["resources"] = resources;
    out["moe_trace"] = e.moe_trace;
    return out;
  }

  std::string backend() const {
    py::gil_scoped_release release;
    return model_.backend_name();
  }
  void to(const std::string& name, const py::dict& options) {
    const edgemoe::BackendOptions o = options_from_dict(options);
    py::gil_scoped_release release;
    model_.set_backend(name, o);
  }
  int num_threads() const {
    py::gil_scoped_release release;
    return model_.num_threads();
  }
  void set_num_threads(int n) {
    py::gil_scoped_release release;
    model_.set_num_threads(n);
  }

 private:
  edgemoe::Model model_;
};

py::dict build_info() {
  py::dict d;
  d["version"] = EDGEMOE_VERSION;
  d["torch"] = EDGEMOE_TORCH_VERSION;
  d["compiler"] = EDGEMOE_COMPILER;
  d["native_cpu_tuning"] = static_cast<bool>(EDGEMOE_NATIVE_BUILD);
  d["sanitizers"] = static_cast<bool>(EDGEMOE_SANITIZED);
  d["xrt"] = std::string(EDGEMOE_XRT_VERSION).empty() ? py::object(py::none()) : py::object(py::str(EDGEMOE_XRT_VERSION));
  d["xrt_library_dir"] = std::string(EDGEMOE_XRT_LIBDIR).empty() ? py::object(py::none()) : py::object(py::str(EDGEMOE_XRT_LIBDIR));
  d["arch"] = EDGEMOE_ARCH;
  const dnnl_version_t* v = dnnl_version();
  d["onednn"] = std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
  d["openmp_max_threads"] = omp_get_max_threads();
  // The CPU kernels' instruction-set path (csrc/core/isa.h): in use, compiled in, runnable here.
  d["isa"] = edgemoe::isa::active();
  d["isa_compiled"] = edgemoe::isa::compiled();
  d["isa_supported"] = edgemoe::isa::supported();
  if (!edgemoe::isa::request_error().empty()) d["isa_request_error"] = edgemoe::isa::request_error();
  d["accelerator_kernel_config"] = EDGEMOE_CFG_NAME;
  return d;
}

py::list backends() {
  py::list out;
  for (const auto& b : edgemoe::list_backends()) {
    py::dict d;
    d["name"] = b.name;
    d["available"] = b.available;
    d["reason"] = b.reason;
    out.append(d);
  }
  return out;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "edgemoe native core";
  py::class_<PyModel>(m, "Model")
      .def(py::init<const py::dict&, const py::dict&, const std::string&, int, const py::dict&>(), py::arg("config"),
           py::arg("weights"), py::arg("backend"), py::arg("num_threads"), py::arg("options"))
      .def("forward", &PyModel::forward, py::arg("images"), py::arg("task_ids"))
      .def("features", &PyModel::features, py::arg("images"), py::arg("task_id"))
      .def("moe_trace", &PyModel::moe_trace, py::arg("task_id"))
      .def("trace", &PyModel::trace, py::arg("images"), py::arg("task_id"))
      .def("estimate", &PyModel::estimate, py::arg("board"), py::arg("images"), py::arg("task_id"),
           py::arg("clock_mhz") = 0, py::arg("heads") = true)
      .def_property_readonly("backend", &PyModel::backend)
      .def("to", &PyModel::to, py::arg("backend"), py::arg("options"))
      .def_property("num_threads", &PyModel::num_threads, &PyModel::set_num_threads);
  m.def("build_info", &build_info);
  // The latency model's first task-head stage (kernels/src/cycle_ledger.h), for naming rows.
  m.attr("LEDGER_HEAD_STAGE") = int(edgemoe_ledger::kHeadStage);
  // {build: {field: value, ..., "device": part or None}} for "emu" and every linked board build.
  m.def("kernel_builds", [] {
    py::dict builds;
    for (const auto& b : edgemoe::emu::kernel_build_limits()) {
      py::dict d;
      for (const auto& [field, value] : b.record) d[py::str(field)] = value;
      d["device"] = b.device.empty() ? py::object(py::none()) : py::object(py::str(b.device));
      builds[py::str(b.name)] = d;
    }
    return builds;
  });
  // NaN/Inf in a float32 tensor, counted on the calling thread: torch.isfinite would split even a
  // small image over OpenMP threads whose spinning afterwards slows everything on a busy machine
  // (csrc/backends/cpu/threading.h).
  m.def("count_non_finite", [](const torch::Tensor& t) {
    if (t.scalar_type() != torch::kFloat32 || !t.device().is_cpu() || !t.is_contiguous() || t.layout() != torch::kStrided)
      throw py::type_error("count_non_finite takes a contiguous float32 CPU tensor");
    const float* p = t.data_ptr<float>();
    int64_t bad = 0;
    for (int64_t i = 0, n = t.numel(); i < n; ++i) bad += !std::isfinite(p[i]);
    return bad;
  });
  m.def(
      "required_weights",
      [](const py::dict& config) {
        const ModelConfig c = config_from_dict(config);
        c.validate();
        py::list out;
        for (const auto& spec : edgemoe::required_weights(c)) out.append(py::make_tuple(spec.name, py::tuple(py::cast(spec.shape))));
        return out;
      },
      py::arg("config"), "(name, shape) of every tensor a model with this config reads");
  m.def("backends", &backends);
  m.def(
      "devices",
      [](const std::string& backend) {
        py::gil_scoped_release release;
        return edgemoe::list_devices(backend);
      },
      py::arg("backend"), "probe the system for the devices a backend can run on (fpga: XRT devices)");
  // A device run past its timeout is a TimeoutError, whatever state the device is left in.
  py::register_local_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const edgemoe::DeviceTimeout& e) {
      PyErr_SetString(PyExc_TimeoutError, e.what());
    }
  });
#if EDGEMOE_XRT_TOOLS
  m.def(
      "metadata_xclbin",
      [](const std::string& kernel, const std::vector<std::string>& bank_tags, const std::vector<int>& buffer_banks,
         const std::vector<std::pair<std::string, bool>>& args) {
        edgemoe::fpga::XclbinDescription d;
        d.kernel = kernel;
        d.instance = kernel + "_1";
        d.banks.clear();
        uint64_t base = 0x4000000000ull;
        for (const std::string& tag : bank_tags) {
          d.banks.push_back({tag, base, 256ull << 10});
          base += 256ull << 20;
        }
        d.buffer_banks = buffer_banks;
        for (const auto& a : args) d.args.push_back({a.first, a.second});
        const std::vector<char> bytes = edgemoe::fpga::metadata_xclbin(d);
        return py::bytes(bytes.data(), bytes.size());
      },
      py::arg("kernel") = std::string(edgemoe_hls::kKernelName), py::arg("banks") = std::vector<std::string>{"DDR[0]"},
      py::arg("buffer_banks") = std::vector<int>{}, py::arg("args") = std::vector<std::pair<std::string, bool>>{},
      "a metadata-only .xclbin (no bitstream) describing m3vit_backbone, for dry runs under XRT's noop shim; "
      "args: (name, is_buffer) to describe another interface");
  m.def(
      "checked_xclbin",
      [](const std::string& path) {
        std::vector<char> bytes;
        {
          py::gil_scoped_release release;
          bytes = edgemoe::fpga::read_checked_xclbin(path);
        }
        return py::bytes(bytes.data(), bytes.size());
      },
      py::arg("path"),
      "the xclbin at `path` as edgemoe hands it to XRT (checked, sections laid out afresh, the kernel XML "
      "re-emitted); ValueError naming the file and the field if it is refused");
#endif
  m.def(
      "gemm_peak_gflops",
      [](int64_t size, int repeats, int threads) {
        py::gil_scoped_release release;
        omp_set_num_threads(threads);
        return edgemoe::cpu::measure_gemm_gflops(size, repeats);
      },
      py::arg("size") = 2048, py::arg("repeats") = 10, py::arg("threads") = 2);
  m.def(
      "bf16_gemm_peak_gflops",
      [](int64_t size, int repeats, int threads) {
        if (!edgemoe::cpu::bf16_unavailable_reason().empty()) throw py::value_error(edgemoe::cpu::bf16_unavailable_reason());
        py::gil_scoped_release release;
        omp_set_num_threads(threads);
        return edgemoe::cpu::measure_bf16_gemm_gflops(size, repeats);
      },
      py::arg("size") = 2048, py::arg("repeats") = 10, py::arg("threads") = 2);
  m.def(
      "bf16_support",
      [] {
        py::dict d;
        const std::string reason = edgemoe::cpu::bf16_unavailable_reason();
        d["available"] = reason.empty();
        d["isa"] = reason.empty() ? edgemoe::cpu::bf16_isa() : std::string();
        d["reason"] = reason;
        return d;
      },
      "whether precision='bf16' can run on this CPU: available, the ISA (amx_bf16, avx512_bf16), or why not");
}
