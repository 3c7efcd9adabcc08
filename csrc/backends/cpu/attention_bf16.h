// The bf16 path of fused attention (attention.h): q.k and p.v on bf16 inputs with fp32 sums (AVX-512
// BF16 dot products), scores and softmax in fp32. Runs only where bf16_unavailable_reason() is empty.
#pragma once

#include <cstdint>

namespace edgemoe::cpu {

struct AttentionBf16Args {
  const float* qkv;    // [batch*N, 3D]
  const uint16_t* k2;  // per (image, head): [hd/2][n_pad][2] bf16, pairs over head dims
  const uint16_t* v2;  // per (image, head): [n_pad/2][hd][2] bf16, pairs over tokens
  float* out;          // [batch*N, D]
  int64_t tokens, n_pad, head_dim, dim, heads;
  float scale;
};

// Head dims the register tiles cover (32, 64, 128: ViT-T/S/B and M3ViT's); others run in fp32.
bool attention_bf16_supports(int64_t head_dim);
// Score columns per tile: n_pad is a multiple of it.
int64_t attention_bf16_col_tile();
// K and V of one (image, head) pair, `column` = h * head_dim, into the layouts above (zero padded).
void pack_attention_bf16_pair(const float* qkv_image, int64_t tokens, int64_t n_pad, int64_t dim, int64_t head_dim,
                              int64_t column, uint16_t* k2, uint16_t* v2);
// Query-row blocks [first, last) (6 rows each) of pair bh; scratch: 6 x n_pad scores, 6 x n_pad / 2 pairs.
void attention_bf16_blocks(const AttentionBf16Args& a, int64_t bh, int64_t first, int64_t last, float* scores,
                           uint32_t* probs2);
constexpr int kAttentionBf16Rows = 6;

}  // namespace edgemoe::cpu
