// fp32 CPU backend: oneDNN GEMMs/convolutions in blocked layouts with fused epilogues, a fused
// attention kernel, per-expert token queues for the MoE layers, two OpenMP threads by default.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backends/cpu/attention.h"
#include "backends/cpu/onednn_layers.h"
#include "core/backend.h"

namespace edgemoe::cpu {

// Token routing of one MoE layer: per-expert queues of (token row, gate score).
struct ExpertQueues {
  std::vector<int64_t> offsets;  // [E + 1]; expert e owns entries [offsets[e], offsets[e+1])
  std::vector<int64_t> rows;
  std::vector<float> scores;
};

// Every token's gate probabilities [rows, E] and picks [rows, k] (best first), for traces.
struct RoutingDetail {
  std::vector<float> probs;
  std::vector<int64_t> picks;
};

// Gate softmax over all experts, top-k without renormalisation, grouped per expert in token order;
// `detail`, when given, receives what the queues were built from.
void route_tokens(const float* logits, int64_t rows, int64_t experts, int64_t top_k, ExpertQueues* queues,
                  RoutingDetail* detail = nullptr);

class CpuBackend : public Backend {
 public:
  // with_backbone=false prepares the task heads only (for backends that run the backbone elsewhere).
  // bf16: precision="bf16" (onednn_layers.h); the caller has checked bf16_unavailable_reason().
  CpuBackend(const ModelConfig& config, std::shared_ptr<const ModelWeights> weights, int num_threads,
             bool with_backbone = true, bool bf16 = false);
  std::string name() const override { return "cpu"; }
  void backbone(const float* images, int64_t batch, const std::vector<int64_t>& task_ids,
                const std::vector<float*>& features) override;
  void head(int64_t task_id, const float* features, int64_t batch, float* out) override;
  void trace(const float* image, int64_t task_id, TraceRecorder* recorder) override;
  // The head on one image's features, recording its stages (backends that run only the heads here).
  void trace_head(int64_t task_id, const float* features, float* out, TraceRecorder* recorder);

 private:
  struct Norm {
    const float* weight;
    const float* bias;
  };
  struct MoeLayer {
    std::vector<Linear> fc1, fc2;                  // per expert
    std::vector<const float*> routers;             // [D, E] per router
    std::vector<std::vector<float>> task_logit_bias;  // [E] per task (task-conditioned gate)
  };
  struct Block {
    Norm norm1, norm2;
    Linear qkv, proj;
    std::unique_ptr<Linear> fc1, fc2;  // dense blocks
    std::unique_ptr<MoeLayer> moe;     // MoE blocks
  };
  struct Head {
    Norm norm;
    std::vector<Conv2d> convs;  // conv_0..3 (BN+ReLU folded), conv_4
  };

  void build_backbone();
  void build_heads();
  void embed(const float* images, int64_t batch, float* x);
  void attention_half(Block& block, float* x, int64_t batch);
  // recorder: when tracing one image, the MoE routing of block `block` is recorded.
  void mlp_half(Block& block, float* x, int64_t batch, int64_t task_id, TraceRecorder* recorder = nullptr,
                int64_t block_index = -1);
  void moe_mlp(MoeLayer& moe, int64_t rows, float* x, int64_t task_id, TraceRecorder* recorder, int64_t block_index);
  void run_head(int64_t task_id, const float* features, int64_t batch, float* out, TraceRecorder* recorder);
  int64_t first_task_dependent_block() const;

  ModelConfig config_;
  std::shared_ptr<const ModelWeights> weights_;
  int num_threads_;
  DnnlContext ctx_;
  MatmulCache matmuls_{&ctx_};
  // The patch embedding stays fp32 under bf16: its input is the normalised image, whose rounding to
  // 8 significant bits every later block would carry, for ~1 % of the FLOPs.
  DnnlContext fp32_ctx_;
  MatmulCache fp32_matmuls_{&fp32_ctx_};
  std::unique_ptr<Linear> patch_embed_;
  std::vector<Block> blocks_;
  std::vector<Head> heads_;
  FusedAttention attention_;
  // Scratch, grown on demand.
  std::vector<float> xn_, qkv_, attn_, hidden_, patches_, logits_, gathered_, expert_hidden_, expert_out_;
  std::vector<float> head_a_, head_b_;
  ExpertQueues queues_;
};

// options.bf16: std::invalid_argument naming what this CPU lacks, when it has no bf16 kernels.
std::unique_ptr<Backend> make_cpu_backend(const ModelConfig& config, std::shared_ptr<const ModelWeights> weights,
                                          int num_threads, const BackendOptions& options);
BackendInfo probe_cpu_backend();

}  // namespace edgemoe::cpu

namespace edgemoe {
using cpu::make_cpu_backend;
using cpu::probe_cpu_backend;
}  // namespace edgemoe
