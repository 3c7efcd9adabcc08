#include "core/weights.h"

#include <sstream>
#include <stdexcept>

namespace edgemoe {

int64_t WeightTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_to_string(const std::vector<int64_t>& shape) {
  std::ostringstream s;
  s << "(";
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  if (shape.size() == 1) s << ",";
  s << ")";
  return s.str();
}

std::string block_key(int64_t block, const std::string& rest) {
  return "backbone.blocks." + std::to_string(block) + "." + rest;
}

std::string head_key(const std::string& task, const std::string& rest) {
  return "decoders." + task + "." + rest;
}

void ModelWeights::add(const std::string& name, std::vector<int64_t> shape, const float* data) {
  WeightTensor t;
  t.shape = std::move(shape);
  t.data.assign(data, data + t.numel());
  tensors_[name] = std::move(t);
}

const WeightTensor& ModelWeights::get(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) throw std::invalid_argument("missing weight '" + name + "'");
  return it->second;
}

const WeightTensor& ModelWeights::get(const std::string& name,
                                      const std::vector<int64_t>& expected_shape) const {
  const WeightTensor& t = get(name);
  if (t.shape != expected_shape) {
    throw std::invalid_argument("weight '" + name + "' has shape " + shape_to_string(t.shape) +
                                ", expected " + shape_to_string(expected_shape));
  }
  return t;
}

void ModelWeights::validate(const ModelConfig& c) const {
  const int64_t D = c.embed_dim;
  get("backbone.cls_token", {1, 1, D});
  get("backbone.pos_embed", {1, c.num_tokens(), D});
  get("backbone.patch_embed.proj.weight", {D, c.in_chans, c.patch_size, c.patch_size});
  get("backbone.patch_embed.proj.bias", {D});
  for (int64_t b = 0; b < c.depth; ++b) {
    for (const char* ln : {"norm1", "norm2"}) {
      get(block_key(b, std::string(ln) + ".weight"), {D});
      get(block_key(b, std::string(ln) + ".bias"), {D});
    }
    get(block_key(b, "attn.qkv.weight"), {3 * D, D});
    get(block_key(b, "attn.qkv.bias"), {3 * D});
    get(block_key(b, "attn.proj.weight"), {D, D});
    get(block_key(b, "attn.proj.bias"), {D});
    if (!c.is_moe_block(b)) {
      get(block_key(b, "mlp.fc1.weight"), {c.mlp_hidden, D});
      get(block_key(b, "mlp.fc1.bias"), {c.mlp_hidden});
      get(block_key(b, "mlp.fc2.weight"), {D, c.mlp_hidden});
      get(block_key(b, "mlp.fc2.bias"), {D});
      continue;
    }
    const int64_t E = c.num_experts, Hm = c.expert_hidden;
    if (c.gate == GateKind::kMultiGate) {
      for (int64_t g = 0; g < c.gate_num_tasks; ++g)
        get(block_key(b, "mlp.gate." + std::to_string(g) + ".w_gate"), {D, E});
    } else {
      get(block_key(b, "mlp.gate.w_gate"), {D + c.gate_task_dim, E});
    }
    get(block_key(b, "mlp.experts.htoh4.weight"), {E, Hm, D});
    get(block_key(b, "mlp.experts.htoh4.bias"), {E, Hm});
    get(block_key(b, "mlp.experts.h4toh.weight"), {E, D, Hm});
    get(block_key(b, "mlp.experts.h4toh.bias"), {E, D});
  }
  if (c.gate == GateKind::kTaskConditioned) {
    const int64_t G = c.gate_task_dim, T = c.gate_num_tasks;
    get("backbone.gate_task_represent.fc1.weight", {G, T});
    get("backbone.gate_task_represent.fc1.bias", {G});
    get("backbone.gate_task_represent.fc2.weight", {G, G});
    get("backbone.gate_task_represent.fc2.bias", {G});
    get("backbone.gate_task_represent.norm.weight", {G});
    get("backbone.gate_task_represent.norm.bias", {G});
  }
  const int64_t Ch = c.head_channels;
  for (const TaskSpec& t : c.tasks) {
    get(head_key(t.name, "norm.weight"), {D});
    get(head_key(t.name, "norm.bias"), {D});
    for (int i = 0; i < 4; ++i) {
      const std::string conv = "conv_" + std::to_string(i), bn = "syncbn_fc_" + std::to_string(i);
      get(head_key(t.name, conv + ".weight"), {Ch, i == 0 ? D : Ch, 3, 3});
      get(head_key(t.name, conv + ".bias"), {Ch});
      for (const char* p : {".weight", ".bias", ".running_mean", ".running_var"})
        get(head_key(t.name, bn + p), {Ch});
    }
    get(head_key(t.name, "conv_4.weight"), {t.out_channels, Ch, 1, 1});
    get(head_key(t.name, "conv_4.bias"), {t.out_channels});
  }
}

}  // namespace edgemoe
