#include "backends/cpu/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "backends/cpu/elementwise.h"
#include "backends/cpu/threading.h"
#include "core/task_gate.h"

namespace edgemoe::cpu {

namespace {

constexpr int64_t kExpertRowQuantum = 32;  // expert GEMM heights are rounded up to limit kernel variants

template <typename T>
T* grow(std::vector<T>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
  return v.data();
}

// One image's activations in the heads' blocked layout [C / block][H][W][block] as [C][H][W].
std::vector<float> blocked_to_chw(const float* src, int64_t channels, int64_t H, int64_t W, int64_t block) {
  std::vector<float> chw(static_cast<size_t>(channels * H * W));
  for (int64_t ch = 0; ch < channels; ++ch)
    for (int64_t p = 0; p < H * W; ++p) chw[ch * H * W + p] = src[((ch / block) * H * W + p) * block + ch % block];
  return chw;
}

void gate_softmax(const float* logits, int64_t experts, float* probs) {
  float m = logits[0];
  for (int64_t e = 1; e < experts; ++e) m = std::max(m, logits[e]);
  float sum = 0.f;
  for (int64_t e = 0; e < experts; ++e) sum += (probs[e] = std::exp(logits[e] - m));
  for (int64_t e = 0; e < experts; ++e) probs[e] /= sum;
}

}  // namespace

void route_tokens(const float* logits, int64_t rows, int64_t experts, int64_t top_k, ExpertQueues* q,
                  RoutingDetail* detail) {
  std::vector<int64_t> choice(static_cast<size_t>(rows * top_k));
  std::vector<float> score(static_cast<size_t>(rows * top_k));
  if (detail) detail->probs.resize(static_cast<size_t>(rows * experts));
  std::vector<float> scratch(detail ? 0 : static_cast<size_t>(experts));
  for (int64_t r = 0; r < rows; ++r) {  // a few FLOPs per token: never worth a thread (threading.h)
    float* p = detail ? detail->probs.data() + r * experts : scratch.data();
    gate_softmax(logits + r * experts, experts, p);
    int64_t* picks = choice.data() + r * top_k;
    pick_experts(p, experts, top_k, picks);
    for (int64_t j = 0; j < top_k; ++j) score[r * top_k + j] = p[picks[j]];
  }
  q->offsets.assign(static_cast<size_t>(experts + 1), 0);
  for (int64_t i = 0; i < rows * top_k; ++i) ++q->offsets[choice[i] + 1];
  for (int64_t e = 0; e < experts; ++e) q->offsets[e + 1] += q->offsets[e];
  q->rows.resize(static_cast<size_t>(rows * top_k));
  q->scores.resize(static_cast<size_t>(rows * top_k));
  std::vector<int64_t> fill(q->offsets.begin(), q->offsets.end() - 1);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < top_k; ++j) {
      const int64_t slot = fill[choice[r * top_k + j]]++;
      q->rows[slot] = r;
      q->scores[slot] = score[r * top_k + j];
    }
  if (detail) detail->picks = std::move(choice);
}

CpuBackend::CpuBackend(const ModelConfig& config, std::shared_ptr<const ModelWeights> weights, int num_threads,
                       bool with_backbone, bool bf16)
    : config_(config), weights_(std::move(weights)), num_threads_(num_threads) {
  ctx_.bf16 = bf16;
  attention_.set_bf16(bf16);
  if (with_backbone) build_backbone();
  build_heads();
}

void CpuBackend::build_backbone() {
  const ModelWeights& w = *weights_;
  const ModelConfig& c = config_;
  const int64_t D = c.embed_dim;
  auto data = [&](const std::string& key) { return w.get(key).data.data(); };
  auto norm = [&](const std::string& prefix) { return Norm{data(prefix + ".weight"), data(prefix + ".bias")}; };
  auto linear = [&](const std::string& prefix, int64_t out, int64_t in) {
    return Linear(&matmuls_, data(prefix + ".weight"), data(prefix + ".bias"), out, in);
  };
  patch_embed_ = std::make_unique<Linear>(&fp32_matmuls_, data("backbone.patch_embed.proj.weight"),
                                          data("backbone.patch_embed.proj.bias"), D,
                                          c.in_chans * c.patch_size * c.patch_size);
  for (int64_t b = 0; b < c.depth; ++b) {
    Block blk{norm(block_key(b, "norm1")), norm(block_key(b, "norm2")),
              linear(block_key(b, "attn.qkv"), 3 * D, D), linear(block_key(b, "attn.proj"), D, D), nullptr,
              nullptr, nullptr};
    if (!c.is_moe_block(b)) {
      blk.fc1 = std::make_unique<Linear>(linear(block_key(b, "mlp.fc1"), c.mlp_hidden, D));
      blk.fc2 = std::make_unique<Linear>(linear(block_key(b, "mlp.fc2"), D, c.mlp_hidden));
    } else {
      auto moe = std::make_unique<MoeLayer>();
      const int64_t E = c.num_experts, Hm = c.expert_hidden;
      const float* w1 = data(block_key(b, "mlp.experts.htoh4.weight"));
      const float* b1 = data(block_key(b, "mlp.experts.htoh4.bias"));
      const float* w2 = data(block_key(b, "mlp.experts.h4toh.weight"));
      const float* b2 = data(block_key(b, "mlp.experts.h4toh.bias"));
      for (int64_t e = 0; e < E; ++e) {
        moe->fc1.emplace_back(&matmuls_, w1 + e * Hm * D, b1 + e * Hm, Hm, D);
        moe->fc2.emplace_back(&matmuls_, w2 + e * D * Hm, b2 + e * D, D, Hm);
      }
      if (c.gate == GateKind::kMultiGate) {
        for (int64_t g = 0; g < c.gate_num_tasks; ++g)
          moe->routers.push_back(data(block_key(b, "mlp.gate." + std::to_string(g) + ".w_gate")));
      } else {
        moe->routers.push_back(data(block_key(b, "mlp.gate.w_gate")));
      }
      if (c.gate == GateKind::kTaskConditioned)
        for (size_t t = 0; t < c.tasks.size(); ++t) moe->task_logit_bias.push_back(task_gate_logit_bias(w, c, b, t));
      blk.moe = std::move(moe);
    }
    blocks_.push_back(std::move(blk));
  }
}

void CpuBackend::build_heads() {
  const ModelWeights& w = *weights_;
  const ModelConfig& c = config_;
  const int64_t D = c.embed_dim;
  auto data = [&](const std::string& key) { return w.get(key).data.data(); };
  const int64_t Ch = c.head_channels;
  for (const TaskSpec& t : c.tasks) {
    Head h{{data(head_key(t.name, "norm.weight")), data(head_key(t.name, "norm.bias"))}, {}};
    for (int i = 0; i < 4; ++i) {
      const std::string conv = head_key(t.name, "conv_" + std::to_string(i));
      const std::string bn = head_key(t.name, "syncbn_fc_" + std::to_string(i));
      h.convs.emplace_back(&ctx_, data(conv + ".weight"), data(conv + ".bias"), Ch, i == 0 ? D : Ch, 3,
                           data(bn + ".weight"), data(bn + ".bias"), data(bn + ".running_mean"),
                           data(bn + ".running_var"), kBatchNormEps, true,
                           i == 0 ? dnnl::memory::format_tag::nhwc : blocked_tag(activation_channel_block()));
    }
    h.convs.emplace_back(&ctx_, data(head_key(t.name, "conv_4.weight")), data(head_key(t.name, "conv_4.bias")),
                         t.out_channels, Ch, 1, nullptr, nullptr, nullptr, nullptr, 0.f, false,
                         blocked_tag(activation_channel_block()));
    // The logits' 1x1 convolution sums C_h terms that largely cancel; in fp32 it costs ~1/36 of a 3x3 stage.
    h.convs.back().keep_fp32();
    heads_.push_back(std::move(h));
  }
}

void CpuBackend::embed(const float* images, int64_t batch, float* x) {
  const ModelConfig& c = config_;
  const int64_t D = c.embed_dim, N = c.num_tokens(), P = c.grid_h * c.grid_w;
  float* cols = grow(patches_, batch * P * c.in_chans * c.patch_size * c.patch_size);
  im2col_patches(images, batch, c.in_chans, c.grid_h, c.grid_w, c.patch_size, cols, num_threads_);
  float* tokens = grow(xn_, batch * P * D);
  patch_embed_->forward(cols, batch * P, tokens, Epilogue::kBias, num_threads_);
  const float* cls = weights_->get("backbone.cls_token").data.data();
  const float* pos = weights_->get("backbone.pos_embed").data.data();
  parallel_ranges(batch * N, threads_for(12 * batch * N * D, kMinBytesPerThread, num_threads_),
                  [&](int64_t first, int64_t last) {
    for (int64_t bn = first; bn < last; ++bn) {
      const int64_t b = bn / N, n = bn % N;
      const float* src = n == 0 ? cls : tokens + (b * P + n - 1) * D;
      float* dst = x + bn * D;
      for (int64_t d = 0; d < D; ++d) dst[d] = src[d] + pos[n * D + d];
    }
  });
}

void CpuBackend::attention_half(Block& blk, float* x, int64_t batch) {
  const int64_t D = config_.embed_dim, T = batch * config_.num_tokens();
  float* xn = grow(xn_, T * D);
  layer_norm_rows(x, D, T, D, blk.norm1.weight, blk.norm1.bias, kBackboneLayerNormEps, xn, D, num_threads_);
  float* qkv = grow(qkv_, T * 3 * D);
  blk.qkv.forward(xn, T, qkv, Epilogue::kBias, num_threads_);
  float* attn = grow(attn_, T * D);
  attention_.run(qkv, batch, config_.num_tokens(), D, config_.num_heads, attn, num_threads_);
  blk.proj.forward(attn, T, x, Epilogue::kBiasAccumulate, num_threads_);
}

void CpuBackend::mlp_half(Block& blk, float* x, int64_t batch, int64_t task_id, TraceRecorder* recorder,
                          int64_t block_index) {
  const int64_t D = config_.embed_dim, T = batch * config_.num_tokens();
  float* xn = grow(xn_, T * D);
  layer_norm_rows(x, D, T, D, blk.norm2.weight, blk.norm2.bias, kBackboneLayerNormEps, xn, D, num_threads_);
  if (blk.moe) return moe_mlp(*blk.moe, T, x, task_id, recorder, block_index);
  float* hidden = grow(hidden_, T * config_.mlp_hidden);
  blk.fc1->forward(xn, T, hidden, Epilogue::kBiasGelu, num_threads_);
  blk.fc2->forward(hidden, T, x, Epilogue::kBiasAccumulate, num_threads_);
}

void CpuBackend::moe_mlp(MoeLayer& moe, int64_t rows, float* x, int64_t task_id, TraceRecorder* recorder,
                         int64_t block_index) {
  const ModelConfig& c = config_;
  const int64_t D = c.embed_dim, E = c.num_experts, Hm = c.expert_hidden;
  const TaskSpec& task = c.tasks[task_id];
  const float* router = moe.routers[c.gate == GateKind::kMultiGate ? task.gate_index : 0];
  const float* bias = moe.task_logit_bias.empty() ? nullptr : moe.task_logit_bias[task_id].data();
  const float* xn = xn_.data();
  float* logits = grow(logits_, rows * E);
  parallel_ranges(rows, threads_for(2 * rows * D * E, kMinFlopsPerThread, num_threads_), [&](int64_t first, int64_t last) {
    for (int64_t r = first; r < last; ++r) {
      float* l = logits + r * E;
      for (int64_t e = 0; e < E; ++e) l[e] = bias ? bias[e] : 0.f;
      for (int64_t d = 0; d < D; ++d) {
        const float v = xn[r * D + d];
        const float* wrow = router + d * E;
#pragma omp simd
        for (int64_t e = 0; e < E; ++e) l[e] += v * wrow[e];
      }
    }
  });
  RoutingDetail detail;
  route_tokens(logits, rows, E, c.top_k, &queues_, recorder ? &detail : nullptr);
  if (recorder) {  // one image: rows are its tokens
    std::vector<uint32_t> counts(static_cast<size_t>(E));
    for (int64_t e = 0; e < E; ++e) counts[e] = uint32_t(queues_.offsets[e + 1] - queues_.offsets[e]);
    recorder->routing(block_index, detail.probs.data(), detail.picks.data());
    recorder->tokens_per_expert(block_index, counts.data());
  }

  for (int64_t e = 0; e < E; ++e) {
    const int64_t begin = queues_.offsets[e], count = queues_.offsets[e + 1] - begin;
    if (count == 0) continue;  // an inactive expert costs nothing
    const int64_t padded = (count + kExpertRowQuantum - 1) / kExpertRowQuantum * kExpertRowQuantum;
    float* gathered = grow(gathered_, padded * D);
    const int64_t* queue = queues_.rows.data() + begin;
    const float* scores = queues_.scores.data() + begin;
    const int copy_threads = threads_for(int64_t(sizeof(float)) * 3 * padded * D, kMinBytesPerThread, num_threads_);
    parallel_ranges(padded, copy_threads, [&](int64_t first, int64_t last) {
      for (int64_t i = first; i < last; ++i) {
        if (i < count) std::memcpy(gathered + i * D, xn + queue[i] * D, sizeof(float) * D);
        else std::memset(gathered + i * D, 0, sizeof(float) * D);
      }
    });
    float* hidden = grow(expert_hidden_, padded * Hm);
    float* out = grow(expert_out_, padded * D);
    moe.fc1[e].forward(gathered, padded, hidden, Epilogue::kBiasGelu, num_threads_);
    moe.fc2[e].forward(hidden, padded, out, Epilogue::kBias, num_threads_);
    // Each token appears at most once per expert queue, so rows never collide within one expert.
    parallel_ranges(count, copy_threads, [&](int64_t first, int64_t last) {
      for (int64_t i = first; i < last; ++i) {
        float* dst = x + queue[i] * D;
        const float* src = out + i * D;
        const float s = scores[i];
#pragma omp simd
        for (int64_t d = 0; d < D; ++d) dst[d] += s * src[d];
      }
    });
  }
}

int64_t CpuBackend::first_task_dependent_block() const {
  int64_t first = config_.depth;
  for (int64_t b : config_.moe_blocks) first = std::min(first, b);
  return first;
}

void CpuBackend::backbone(const float* images, int64_t batch, const std::vector<int64_t>& task_ids,
                          const std::vector<float*>& features) {
  if (task_ids.empty()) return;
  const int64_t size = batch * config_.num_tokens() * config_.embed_dim;
  const int64_t split = first_task_dependent_block();
  float* shared = features[0];
  embed(images, batch, shared);
  for (int64_t b = 0; b < split; ++b) {
    attention_half(blocks_[b], shared, batch);
    mlp_half(blocks_[b], shared, batch, task_ids[0]);
  }
  if (split < config_.depth) attention_half(blocks_[split], shared, batch);
  for (size_t t = 1; t < task_ids.size(); ++t) std::memcpy(features[t], shared, sizeof(float) * size);
  for (size_t t = 0; t < task_ids.size(); ++t) {
    if (split == config_.depth) break;
    mlp_half(blocks_[split], features[t], batch, task_ids[t]);
    for (int64_t b = split + 1; b < config_.depth; ++b) {
      attention_half(blocks_[b], features[t], batch);
      mlp_half(blocks_[b], features[t], batch, task_ids[t]);
    }
  }
}

void CpuBackend::head(int64_t task_id, const float* features, int64_t batch, float* out) {
  run_head(task_id, features, batch, out, nullptr);
}

void CpuBackend::trace_head(int64_t task_id, const float* features, float* out, TraceRecorder* recorder) {
  run_head(task_id, features, 1, out, recorder);
}

void CpuBackend::trace(const float* image, int64_t task_id, TraceRecorder* recorder) {
  const ModelConfig& c = config_;
  std::vector<float> x(static_cast<size_t>(c.num_tokens() * c.embed_dim)), before, branch(x.size());
  embed(image, 1, x.data());
  recorder->embedding(x.data());
  // A branch is what its half adds to the stream (the halves accumulate into x in place).
  auto added = [&]() {
    for (size_t i = 0; i < x.size(); ++i) branch[i] = x[i] - before[i];
    return branch.data();
  };
  for (int64_t b = 0; b < c.depth; ++b) {
    before = x;
    attention_half(blocks_[b], x.data(), 1);
    recorder->attention(b, added());
    before = x;
    mlp_half(blocks_[b], x.data(), 1, task_id, recorder, b);
    recorder->mlp(b, added());
    recorder->block_output(b, x.data());
  }
  std::vector<float> out(static_cast<size_t>(c.tasks[task_id].out_channels * c.image_h() * c.image_w()));
  run_head(task_id, x.data(), 1, out.data(), recorder);
}

void CpuBackend::run_head(int64_t task_id, const float* features, int64_t batch, float* out,
                          TraceRecorder* recorder) {
  const ModelConfig& c = config_;
  Head& h = heads_[task_id];
  const int64_t D = c.embed_dim, N = c.num_tokens(), gh = c.grid_h, gw = c.grid_w;
  // Activations are blocked: every buffer holds channels padded to a multiple of the block.
  const int64_t block = activation_channel_block();
  auto padded = [block](int64_t channels) { return (channels + block - 1) / block * block; };
  const int64_t widest = std::max(padded(c.head_channels), padded(c.tasks[task_id].out_channels));
  const int64_t biggest = batch * widest * (8 * gh) * (8 * gw);
  float* a = grow(head_a_, std::max(biggest, batch * gh * gw * D));
  float* b = grow(head_b_, biggest);
  for (int64_t i = 0; i < batch; ++i)  // drop cls, norm, tokens are already NHWC
    layer_norm_rows(features + (i * N + 1) * D, D, gh * gw, D, h.norm.weight, h.norm.bias, kBackboneLayerNormEps,
                    a + i * gh * gw * D, D, num_threads_);
  if (recorder) recorder->head_norm(blocked_to_chw(a, D, gh, gw, D).data());  // NHWC: one block of D
  int64_t H = gh, W = gw;
  const int64_t blocks = (c.head_channels + block - 1) / block;
  for (int i = 0; i < 3; ++i) {
    h.convs[i].forward(a, batch, H, W, b, num_threads_);
    upsample2x_hwc(b, a, batch * blocks, H, W, block, num_threads_);
    H *= 2;
    W *= 2;
    if (recorder) recorder->head_stage(i, blocked_to_chw(a, c.head_channels, H, W, block).data(), c.head_channels, H, W);
  }
  h.convs[3].forward(a, batch, H, W, b, num_threads_);
  if (recorder) recorder->head_stage(3, blocked_to_chw(b, c.head_channels, H, W, block).data(), c.head_channels, H, W);
  h.convs[4].forward(b, batch, H, W, a, num_threads_);
  if (recorder) recorder->head_logits(blocked_to_chw(a, h.convs[4].out_channels(), H, W, block).data(), H, W);
  upsample2x_blocked_to_nchw(a, out, batch, h.convs[4].out_channels(), H, W, block, num_threads_);
  if (recorder) recorder->output(out);
}

std::unique_ptr<Backend> make_cpu_backend(const ModelConfig& config, std::shared_ptr<const ModelWeights> weights,
                                          int num_threads, const BackendOptions& options) {
  if (options.bf16) {
    const std::string missing = bf16_unavailable_reason();
    if (!missing.empty()) throw std::invalid_argument("precision='bf16': " + missing);
  }
  return std::make_unique<CpuBackend>(config, std::move(weights), num_threads, true, options.bf16);
}

BackendInfo probe_cpu_backend() { return {"cpu", true, ""}; }

}  // namespace edgemoe::cpu
