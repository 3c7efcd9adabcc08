// Owned fp32 copies of a checkpoint's tensors, keyed by M3ViT's state_dict names
// (without the "module." prefix).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/config.h"

namespace edgemoe {

struct WeightTensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
  int64_t numel() const;
};

// A tensor the model reads, with the shape its config implies.
struct WeightSpec {
  std::string name;
  std::vector<int64_t> shape;
};

// Every tensor a model with this config reads, in a fixed order: the one list that loading (which
// converts only these) and validation share.
std::vector<WeightSpec> required_weights(const ModelConfig& config);

class ModelWeights {
 public:
  void add(const std::string& name, std::vector<int64_t> shape, const float* data);
  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  // Throws std::invalid_argument naming the key (and both shapes) when absent or mis-shaped.
  const WeightTensor& get(const std::string& name, const std::vector<int64_t>& expected_shape) const;
  const WeightTensor& get(const std::string& name) const;
  size_t size() const { return tensors_.size(); }

  // Checks every tensor the model needs, with the shape the config implies.
  void validate(const ModelConfig& config) const;

 private:
  std::map<std::string, WeightTensor> tensors_;
};

std::string shape_to_string(const std::vector<int64_t>& shape);

// Key names, one place.
std::string block_key(int64_t block, const std::string& rest);  // "backbone.blocks.<i>.<rest>"
std::string head_key(const std::string& task, const std::string& rest);

}  // namespace edgemoe
