// Fused multi-head self-attention on the CPU: softmax(q k^T * hd^-0.5) v per head, computed
// over blocks of query rows so that only a [rows, N] strip of scores ever exists (in L1/L2),
// never the [heads, N, N] tensor.
#pragma once

#include <cstdint>
#include <vector>

namespace edgemoe::cpu {

class FusedAttention {
 public:
  // qkv: [batch*N, 3D] (q | k | v, heads contiguous inside each), out: [batch*N, D].
  void run(const float* qkv, int64_t batch, int64_t tokens, int64_t dim, int64_t heads, float* out, int max_threads);
  // precision="bf16": the products on bf16 (attention_bf16.h) for the head dims it covers.
  void set_bf16(bool bf16) { bf16_ = bf16; }

 private:
  void run_bf16(const float* qkv, int64_t batch, int64_t tokens, int64_t dim, int64_t heads, float* out, int threads);
  bool bf16_ = false;
  std::vector<uint16_t> k2_, v2_;
  std::vector<float> k_transposed_;  // [batch, heads, hd, N padded]
  std::vector<float> v_packed_;      // [batch, heads, N, hd]
};

}  // namespace edgemoe::cpu
