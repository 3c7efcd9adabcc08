// GEMM and convolution layers on oneDNN (v2 API: op desc -> primitive_desc -> primitive).
// Weights are reordered once into whatever blocked layout the chosen kernel wants; primitives
// are created lazily per activation shape and cached.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

namespace edgemoe::cpu {

struct DnnlContext {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  // bf16: every Linear and Conv2d of the backend reads bf16 activations and weights and sums in fp32
  // (their outputs, biases and epilogues stay fp32); set before the layers are built.
  bool bf16 = false;
  std::vector<uint16_t> bf16_activations;  // a Linear's input converted to bf16 (layers run one at a time)
};

// bf16 support of this CPU for the cpu backend's precision="bf16": "" when oneDNN has bf16 kernels
// here (AVX-512 BF16, or AMX) and the fused attention's bf16 dot products can run; else what is missing.
std::string bf16_unavailable_reason();
// The instruction set bf16 runs on: "amx_bf16", "avx512_bf16", or "" when unavailable.
std::string bf16_isa();
// dst[i] = bf16(src[i]), rounded to nearest even, on up to max_threads threads.
void convert_to_bf16(const float* src, int64_t count, uint16_t* dst, int max_threads);

enum class Epilogue {
  kBias,            // y = x W^T + b
  kBiasGelu,        // y = GELU_erf(x W^T + b)
  kBiasAccumulate,  // y += x W^T + b   (residual add fused as a sum post-op)
};

// Matmul primitives shared by every Linear of one backend, keyed by (M, K, N, epilogue, threads).
class MatmulCache {
 public:
  struct Entry {
    dnnl::matmul::primitive_desc pd;
    dnnl::matmul prim;
  };
  explicit MatmulCache(DnnlContext* ctx) : ctx_(ctx) {}
  const Entry& get(int64_t m, int64_t k, int64_t n, Epilogue epilogue, int threads);
  DnnlContext* context() const { return ctx_; }

 private:
  DnnlContext* ctx_;
  std::map<std::tuple<int64_t, int64_t, int64_t, int, int>, Entry> entries_;
};

// y[M, N] (op)= x[M, K] W^T + b with PyTorch's Linear weight W [N, K].
class Linear {
 public:
  Linear(MatmulCache* cache, const float* weight, const float* bias, int64_t out_features,
         int64_t in_features);
  // On up to max_threads threads: fewer when the product is too small to split (threading.h).
  void forward(const float* x, int64_t rows, float* y, Epilogue epilogue, int max_threads);
  int64_t in_features() const { return k_; }
  int64_t out_features() const { return n_; }

 private:
  const dnnl::memory& packed_weights(const dnnl::memory::desc& desc);
  MatmulCache* cache_;
  int64_t n_, k_;
  std::vector<float> weight_;  // [N, K] as given (oneDNN "ba" for a K x N weights tensor)
  std::vector<float> bias_;
  std::vector<std::pair<dnnl::memory::desc, dnnl::memory>> packed_;
};

// Channels per block of the heads' blocked activations (nChw16c or nChw8c): oneDNN 2.6 has JIT
// convolutions for nChw16c on AVX-512 and for nChw8c on AVX2 and older ISAs; the other block size
// falls back to its reference kernel, which is two orders of magnitude slower.
int64_t activation_channel_block();
dnnl::memory::format_tag blocked_tag(int64_t block);

// 2-D convolution (stride 1, same padding) with BatchNorm folded in and optional ReLU.
// Activations: input in `src_tag`, output blocked by activation_channel_block(). The kernel itself
// always reads the blocked layout: oneDNN 2.6 has only its reference kernel for an NHWC source with
// a blocked destination, so other inputs are reordered first.
class Conv2d {
 public:
  Conv2d(DnnlContext* ctx, const float* weight, const float* bias, int64_t out_channels,
         int64_t in_channels, int64_t kernel, const float* bn_weight, const float* bn_bias,
         const float* bn_mean, const float* bn_var, float bn_eps, bool relu,
         dnnl::memory::format_tag src_tag);
  void forward(const float* src, int64_t batch, int64_t height, int64_t width, float* dst, int max_threads);
  int64_t out_channels() const { return oc_; }
  // In a bf16 context, this convolution stays fp32 (call before its first forward).
  void keep_fp32() { bf16_ = false; }
  // Floats the blocked output occupies (channels padded to the block).
  int64_t dst_size(int64_t batch, int64_t height, int64_t width) const;

 private:
  struct Compiled {
    dnnl::convolution_forward prim;
    dnnl::memory weights;
    dnnl::memory::desc src, dst;
    dnnl::memory::desc given_src;      // layout the caller passes
    std::unique_ptr<dnnl::reorder> to_blocked;  // given_src -> src, when they differ
    std::vector<float> blocked_src;
  };
  Compiled& compiled(int64_t batch, int64_t height, int64_t width, int threads);
  DnnlContext* ctx_;
  int64_t oc_, ic_, kernel_;
  bool relu_;
  bool bf16_;
  dnnl::memory::format_tag src_tag_;
  std::vector<float> weight_, bias_;  // BN folded, OIHW
  std::map<std::tuple<int64_t, int64_t, int64_t, int>, Compiled> compiled_;
};

// Sustained fp32 GFLOP/s of a large square oneDNN matmul on the current OpenMP threads: the
// machine's practical GEMM peak, which the benchmark reports efficiency against.
double measure_gemm_gflops(int64_t size, int repeats);
// The same for a bf16 x bf16 -> fp32 matmul (the peak precision="bf16" is measured against).
double measure_bf16_gemm_gflops(int64_t size, int repeats);

}  // namespace edgemoe::cpu
