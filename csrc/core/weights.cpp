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

std::vector<WeightSpec> required_weights(const ModelConfig& c) {
  std::vector<WeightSpec> out;
  auto need = [&out](std::string name, std::vector<int64_t> shape) { out.push_back({std::move(name), std::move(shape)}); };
  const int64_t D = c.embed_dim;
  need("backbone.cls_token", {1, 1, D});
  need("backbone.pos_embed", {1, c.num_tokens(), D});
  need("backbone.patch_embed.proj.weight", {D, c.in_chans, c.patch_size, c.patch_size});
  need("backbone.patch_embed.proj.bias", {D});
  for (int64_t b = 0; b < c.depth; ++b) {
    for (const char* ln : {"norm1", "norm2"}) {
      need(block_key(b, std::string(ln) + ".weight"), {D});
      need(block_key(b, std::string(ln) + ".bias"), {D});
    }
    need(block_key(b, "attn.qkv.weight"), {3 * D, D});
    need(block_key(b, "attn.qkv.bias"), {3 * D});
    need(block_key(b, "attn.proj.weight"), {D, D});
    need(block_key(b, "attn.proj.bias"), {D});
    if (!c.is_moe_block(b)) {
      need(block_key(b, "mlp.fc1.weight"), {c.mlp_hidden, D});
      need(block_key(b, "mlp.fc1.bias"), {c.mlp_hidden});
      need(block_key(b, "mlp.fc2.weight"), {D, c.mlp_hidden});
      need(block_key(b, "mlp.fc2.bias"), {D});
      continue;
    }
    const int64_t E = c.num_experts, Hm = c.expert_hidden;
    if (c.gate == GateKind::kMultiGate) {
      for (int64_t g = 0; g < c.gate_num_tasks; ++g)
        need(block_key(b, "mlp.gate." + std::to_string(g) + ".w_gate"), {D, E});
    } else {
      need(block_key(b, "mlp.gate.w_gate"), {D + c.gate_task_dim, E});
    }
    need(block_key(b, "mlp.experts.htoh4.weight"), {E, Hm, D});
    need(block_key(b, "mlp.experts.htoh4.bias"), {E, Hm});
    need(block_key(b, "mlp.experts.h4toh.weight"), {E, D, Hm});
    need(block_key(b, "mlp.experts.h4toh.bias"), {E, D});
  }
  if (c.gate == GateKind::kTaskConditioned && !c.moe_blocks.empty()) {
    const int64_t G = c.gate_task_dim, T = c.gate_num_tasks;
    need("backbone.gate_task_represent.fc1.weight", {G, T});
    need("backbone.gate_task_represent.fc1.bias", {G});
    need("backbone.gate_task_represent.fc2.weight", {G, G});
    need("backbone.gate_task_represent.fc2.bias", {G});
    need("backbone.gate_task_represent.norm.weight", {G});
    need("backbone.gate_task_represent.norm.bias", {G});
  }
  const int64_t Ch = c.head_channels;
  for (const TaskSpec& t : c.tasks) {
    need(head_key(t.name, "norm.weight"), {D});
    need(head_key(t.name, "norm.bias"), {D});
    for (int i = 0; i < 4; ++i) {
      const std::string conv = "conv_" + std::to_string(i), bn = "syncbn_fc_" + std::to_string(i);
      need(head_key(t.name, conv + ".weight"), {Ch, i == 0 ? D : Ch, 3, 3});
      need(head_key(t.name, conv + ".bias"), {Ch});
      for (const char* p : {".weight", ".bias", ".running_mean", ".running_var"}) need(head_key(t.name, bn + p), {Ch});
    }
    need(head_key(t.name, "conv_4.weight"), {t.out_channels, Ch, 1, 1});
    need(head_key(t.name, "conv_4.bias"), {t.out_channels});
  }
  return out;
}

void ModelWeights::validate(const ModelConfig& config) const {
  for (const WeightSpec& spec : required_weights(config)) get(spec.name, spec.shape);
}

}  // namespace edgemoe
