#include "backends/cpu/onednn_layers.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <unordered_map>

#include "backends/cpu/threading.h"

namespace edgemoe::cpu {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

const MatmulCache::Entry& MatmulCache::get(int64_t m, int64_t k, int64_t n, Epilogue epilogue, int threads) {
  const auto key = std::make_tuple(m, k, n, static_cast<int>(epilogue), threads);
  auto it = entries_.find(key);
  if (it != entries_.end()) return it->second;
  const dt operand = ctx_->bf16 ? dt::bf16 : dt::f32;
  memory::desc src({m, k}, operand, tag::ab);
  memory::desc wei({k, n}, operand, tag::any);
  memory::desc bia({1, n}, dt::f32, tag::ab);
  memory::desc dst({m, n}, dt::f32, tag::ab);
  dnnl::post_ops ops;
  if (epilogue == Epilogue::kBiasGelu) ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_gelu_erf, 0.f, 0.f);
  if (epilogue == Epilogue::kBiasAccumulate) ops.append_sum(1.0f);
  dnnl::primitive_attr attr;
  attr.set_post_ops(ops);
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, wei, bia, dst), attr, ctx_->engine);
  return entries_.emplace(key, Entry{pd, dnnl::matmul(pd)}).first->second;
}

Linear::Linear(MatmulCache* cache, const float* weight, const float* bias, int64_t out_features,
               int64_t in_features)
    : cache_(cache), n_(out_features), k_(in_features),
      weight_(weight, weight + out_features * in_features), bias_(bias, bias + out_features) {}

const memory& Linear::packed_weights(const memory::desc& desc) {
  for (auto& [d, m] : packed_)
    if (d == desc) return m;
  DnnlContext* ctx = cache_->context();
  memory plain({{k_, n_}, dt::f32, tag::ba}, ctx->engine, weight_.data());
  memory packed(desc, ctx->engine);
  dnnl::reorder(plain, packed).execute(ctx->stream, plain, packed);
  ctx->stream.wait();
  packed_.emplace_back(desc, packed);
  return packed_.back().second;
}

void Linear::forward(const float* x, int64_t rows, float* y, Epilogue epilogue, int max_threads) {
  if (rows == 0) return;
  const int threads = threads_for(2 * rows * k_ * n_, kMinFlopsPerThread, max_threads);
  // oneDNN plans its split over the threads OpenMP offers when the primitive is created: one
  // primitive per thread count, created and run with that count.
  OmpThreadsScope scope(threads);
  const auto& [pd, prim] = cache_->get(rows, k_, n_, epilogue, threads);
  DnnlContext* ctx = cache_->context();
  void* input = const_cast<float*>(x);
  if (ctx->bf16) {
    if (ctx->bf16_activations.size() < static_cast<size_t>(rows * k_)) ctx->bf16_activations.resize(rows * k_);
    convert_to_bf16(x, rows * k_, ctx->bf16_activations.data(), threads);
    input = ctx->bf16_activations.data();
  }
  memory src(pd.src_desc(), ctx->engine, input);
  memory bia(pd.bias_desc(), ctx->engine, bias_.data());
  memory dst(pd.dst_desc(), ctx->engine, y);
  prim.execute(ctx->stream, {{DNNL_ARG_SRC, src},
                             {DNNL_ARG_WEIGHTS, packed_weights(pd.weights_desc())},
                             {DNNL_ARG_BIAS, bia},
                             {DNNL_ARG_DST, dst}});
  ctx->stream.wait();
}

Conv2d::Conv2d(DnnlContext* ctx, const float* weight, const float* bias, int64_t out_channels,
               int64_t in_channels, int64_t kernel, const float* bn_weight, const float* bn_bias,
               const float* bn_mean, const float* bn_var, float bn_eps, bool relu, tag src_tag)
    : ctx_(ctx), oc_(out_channels), ic_(in_channels), kernel_(kernel), relu_(relu), bf16_(ctx->bf16), src_tag_(src_tag),
      weight_(weight, weight + out_channels * in_channels * kernel * kernel), bias_(bias, bias + out_channels) {
  if (bn_weight == nullptr) return;
  const int64_t per_out = in_channels * kernel * kernel;
  for (int64_t o = 0; o < oc_; ++o) {
    const float s = bn_weight[o] / std::sqrt(bn_var[o] + bn_eps);
    for (int64_t i = 0; i < per_out; ++i) weight_[o * per_out + i] *= s;
    bias_[o] = (bias_[o] - bn_mean[o]) * s + bn_bias[o];
  }
}

// oneDNN's ISA values are bit sets (avx2_vnni is numerically above avx512_core without holding it).
static bool has_effective_isa(dnnl::cpu_isa wanted) {
  const auto have = static_cast<unsigned>(dnnl::get_effective_cpu_isa()), want = static_cast<unsigned>(wanted);
  return (have & want) == want;
}

int64_t activation_channel_block() {
  static const int64_t block = has_effective_isa(dnnl::cpu_isa::avx512_core) ? 16 : 8;
  return block;
}

tag blocked_tag(int64_t block) { return block == 16 ? tag::nChw16c : tag::nChw8c; }

int64_t Conv2d::dst_size(int64_t batch, int64_t height, int64_t width) const {
  const int64_t block = activation_channel_block();
  return batch * ((oc_ + block - 1) / block * block) * height * width;
}

Conv2d::Compiled& Conv2d::compiled(int64_t batch, int64_t height, int64_t width, int threads) {
  const auto key = std::make_tuple(batch, height, width, threads);
  auto it = compiled_.find(key);
  if (it != compiled_.end()) return it->second;
  const int64_t pad = kernel_ / 2;
  memory::desc given({batch, ic_, height, width}, dt::f32, src_tag_);
  const tag blocked = blocked_tag(activation_channel_block());
  const dt operand = bf16_ ? dt::bf16 : dt::f32;
  memory::desc src({batch, ic_, height, width}, operand, blocked);
  memory::desc wei({oc_, ic_, kernel_, kernel_}, operand, tag::any);
  memory::desc bia({oc_}, dt::f32, tag::a);
  memory::desc dst({batch, oc_, height, width}, dt::f32, blocked);
  dnnl::post_ops ops;
  if (relu_) ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
  dnnl::primitive_attr attr;
  attr.set_post_ops(ops);
  dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                       src, wei, bia, dst, {1, 1}, {pad, pad}, {pad, pad});
  dnnl::convolution_forward::primitive_desc pd(desc, attr, ctx_->engine);
  memory plain({{oc_, ic_, kernel_, kernel_}, dt::f32, tag::oihw}, ctx_->engine, weight_.data());
  memory packed(pd.weights_desc(), ctx_->engine);
  dnnl::reorder(plain, packed).execute(ctx_->stream, plain, packed);
  ctx_->stream.wait();
  Compiled c{dnnl::convolution_forward(pd), packed, pd.src_desc(), pd.dst_desc(), given, nullptr, {}};
  if (given != c.src) {
    c.to_blocked = std::make_unique<dnnl::reorder>(memory(given, ctx_->engine, nullptr), memory(c.src, ctx_->engine, nullptr));
    c.blocked_src.resize((c.src.get_size() + sizeof(float) - 1) / sizeof(float));  // bf16: half of it
  }
  return compiled_.emplace(key, std::move(c)).first->second;
}

void Conv2d::forward(const float* src, int64_t batch, int64_t height, int64_t width, float* dst, int max_threads) {
  const int64_t flops = 2 * batch * height * width * oc_ * ic_ * kernel_ * kernel_;
  const int threads = threads_for(flops, kMinFlopsPerThread, max_threads);
  OmpThreadsScope scope(threads);  // as in Linear::forward
  Compiled& c = compiled(batch, height, width, threads);
  memory s(c.src, ctx_->engine, const_cast<float*>(src));
  if (c.to_blocked) {
    memory given(c.given_src, ctx_->engine, const_cast<float*>(src));
    s = memory(c.src, ctx_->engine, c.blocked_src.data());
    c.to_blocked->execute(ctx_->stream, given, s);
  }
  memory b({{oc_}, dt::f32, tag::a}, ctx_->engine, bias_.data());
  memory d(c.dst, ctx_->engine, dst);
  c.prim.execute(ctx_->stream, {{DNNL_ARG_SRC, s}, {DNNL_ARG_WEIGHTS, c.weights}, {DNNL_ARG_BIAS, b}, {DNNL_ARG_DST, d}});
  ctx_->stream.wait();
}

std::string bf16_isa() {
  if (has_effective_isa(dnnl::cpu_isa::avx512_core_amx)) return "amx_bf16";
  if (has_effective_isa(dnnl::cpu_isa::avx512_core_bf16)) return "avx512_bf16";
  return "";
}

std::string bf16_unavailable_reason() {
#if defined(__x86_64__)
  if (!bf16_isa().empty() && __builtin_cpu_supports("avx512bf16")) return "";
  return "this CPU has neither AVX-512 BF16 nor AMX (oneDNN would run bf16 on its reference kernels, far slower "
         "than fp32); bf16 needs e.g. Intel Cooper Lake or Sapphire Rapids or later, or AMD Zen 4 or later";
#else
  return "bf16 is built for x86-64 CPUs with AVX-512 BF16 or AMX only";
#endif
}

void convert_to_bf16(const float* src, int64_t count, uint16_t* dst, int max_threads) {
  const int threads = threads_for(4 * count, kMinBytesPerThread, max_threads);
  parallel_ranges(count, threads, [&](int64_t first, int64_t last) {
    for (int64_t i = first; i < last; ++i) {
      uint32_t bits;
      std::memcpy(&bits, src + i, sizeof bits);
      // Round to nearest even; a NaN stays a (quiet) NaN instead of carrying into the sign or exponent.
      dst[i] = (bits & 0x7FFFFFFFu) > 0x7F800000u ? static_cast<uint16_t>((bits >> 16) | 0x40u)
                                                   : static_cast<uint16_t>((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
    }
  });
}

double measure_bf16_gemm_gflops(int64_t size, int repeats) {
  DnnlContext ctx;
  memory::desc src({size, size}, dt::bf16, tag::ab), wei({size, size}, dt::bf16, tag::any),
      dst({size, size}, dt::f32, tag::ab);
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, wei, dst), ctx.engine);
  dnnl::matmul prim(pd);
  std::vector<uint16_t> a(size * size, 0x3F00), w(size * size, 0x3E80);  // 0.5 and 0.25
  std::vector<float> y(size * size);
  memory ma(src, ctx.engine, a.data()), mw(pd.weights_desc(), ctx.engine), my(dst, ctx.engine, y.data());
  memory plain({{size, size}, dt::bf16, tag::ab}, ctx.engine, w.data());
  dnnl::reorder(plain, mw).execute(ctx.stream, plain, mw);
  const std::unordered_map<int, memory> args{{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mw}, {DNNL_ARG_DST, my}};
  prim.execute(ctx.stream, args);
  ctx.stream.wait();
  double best = 0;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    prim.execute(ctx.stream, args);
    ctx.stream.wait();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, 2.0 * size * size * size / s / 1e9);
  }
  return best;
}

double measure_gemm_gflops(int64_t size, int repeats) {
  DnnlContext ctx;
  MatmulCache cache(&ctx);
  std::vector<float> a(size * size, 0.5f), w(size * size, 0.25f), b(size, 0.f), y(size * size);
  Linear layer(&cache, w.data(), b.data(), size, size);
  const int threads = omp_get_max_threads();
  layer.forward(a.data(), size, y.data(), Epilogue::kBias, threads);  // create, pack, warm up
  double best = 0;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    layer.forward(a.data(), size, y.data(), Epilogue::kBias, threads);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, 2.0 * size * size * size / s / 1e9);
  }
  return best;
}

}  // namespace edgemoe::cpu
