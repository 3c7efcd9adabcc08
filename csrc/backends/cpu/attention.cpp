#include "backends/cpu/attention.h"

#include <algorithm>
#include <cmath>

#include "backends/cpu/attention_bf16.h"
#include "backends/cpu/isa/kernels.h"
#include "backends/cpu/threading.h"

namespace edgemoe::cpu {

void FusedAttention::run(const float* qkv, int64_t batch, int64_t tokens, int64_t dim, int64_t heads,
                         float* out, int max_threads) {
  const IsaKernels& kernels = isa_kernels();
  const int64_t hd = dim / heads, n = tokens, pairs = batch * heads;
  if (bf16_ && attention_bf16_supports(hd)) {
    run_bf16(qkv, batch, tokens, dim, heads, out, threads_for(4 * pairs * n * n * hd, kMinFlopsPerThread, max_threads));
    return;
  }
  const int64_t n_pad = (n + kernels.attention_col_tile - 1) / kernels.attention_col_tile * kernels.attention_col_tile;
  const int64_t stride = 3 * dim;
  k_transposed_.assign(static_cast<size_t>(pairs * hd * n_pad), 0.f);
  v_packed_.resize(static_cast<size_t>(pairs * n * hd));
  // 4 n^2 hd FLOPs per pair: scores and the weighted sum of values.
  const int threads = threads_for(4 * pairs * n * n * hd, kMinFlopsPerThread, max_threads);

  parallel_ranges(pairs * n, threads, [&](int64_t first, int64_t last) {
    for (int64_t bj = first; bj < last; ++bj) {
      const int64_t bh = bj / n, j = bj % n, b = bh / heads, h = bh % heads;
      const float* row = qkv + (b * n + j) * stride + h * hd;
      float* kt = k_transposed_.data() + bh * hd * n_pad;
      for (int64_t d = 0; d < hd; ++d) kt[d * n_pad + j] = row[dim + d];
      std::copy(row + 2 * dim, row + 2 * dim + hd, v_packed_.data() + (bh * n + j) * hd);
    }
  });

  const AttentionArgs args{qkv, k_transposed_.data(), v_packed_.data(), out, n, n_pad, hd, dim, heads,
                           1.0f / std::sqrt(static_cast<float>(hd))};
  const int64_t row_blocks = (n + kernels.attention_rows - 1) / kernels.attention_rows;
  parallel_ranges(pairs * row_blocks, threads, [&](int64_t first, int64_t last) {
    std::vector<float> scores(static_cast<size_t>(kernels.attention_rows * n_pad));
    for (int64_t item = first; item < last;) {  // runs of blocks of one (image, head) pair
      const int64_t bh = item / row_blocks, blk = item % row_blocks;
      const int64_t end = std::min(last - item, row_blocks - blk);
      kernels.attention_blocks(args, bh, blk, blk + end, scores.data());
      item += end;
    }
  });
}

void FusedAttention::run_bf16(const float* qkv, int64_t batch, int64_t tokens, int64_t dim, int64_t heads,
                              float* out, int threads) {
  const int64_t hd = dim / heads, n = tokens, pairs = batch * heads, tile = attention_bf16_col_tile();
  const int64_t n_pad = (n + tile - 1) / tile * tile;
  k2_.resize(static_cast<size_t>(pairs * hd * n_pad));
  v2_.resize(static_cast<size_t>(pairs * hd * n_pad));
  parallel_ranges(pairs, threads, [&](int64_t first, int64_t last) {
    for (int64_t bh = first; bh < last; ++bh)
      pack_attention_bf16_pair(qkv + (bh / heads) * n * 3 * dim, n, n_pad, dim, hd, (bh % heads) * hd,
                               k2_.data() + bh * hd * n_pad, v2_.data() + bh * hd * n_pad);
  });
  const AttentionBf16Args args{qkv, k2_.data(), v2_.data(), out, n, n_pad, hd, dim, heads,
                               1.0f / std::sqrt(static_cast<float>(hd))};
  const int64_t row_blocks = (n + kAttentionBf16Rows - 1) / kAttentionBf16Rows;
  parallel_ranges(pairs * row_blocks, threads, [&](int64_t first, int64_t last) {
    std::vector<float> scores(static_cast<size_t>(kAttentionBf16Rows * n_pad));
    std::vector<uint32_t> probs2(static_cast<size_t>(kAttentionBf16Rows * n_pad / 2));
    for (int64_t item = first; item < last;) {
      const int64_t bh = item / row_blocks, blk = item % row_blocks;
      const int64_t end = std::min(last - item, row_blocks - blk);
      attention_bf16_blocks(args, bh, blk, blk + end, scores.data(), probs2.data());
      item += end;
    }
  });
}

}  // namespace edgemoe::cpu
