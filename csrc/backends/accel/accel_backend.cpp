#include "backends/accel/accel_backend.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

#include "backends/accel/gate_replay.h"

namespace edgemoe::accel {

namespace {
constexpr long kFmBytes = sizeof(edgemoe_hls::fm_t);  // every activation buffer holds fm_t

// The kernel must answer the query, and the model fit its build, before a weight is packed.
const ModelConfig& checked(const ModelConfig& config, const KernelBuild& build) {
  check_fits_build(config, build);
  return config;
}

// The heads' refusal, before a weight is packed.
bool checked_heads(bool on_device, const ModelConfig& config, const KernelBuild& build) {
  if (!on_device) return false;
  const std::string reason = heads_unfit_reason(config, build);
  if (!reason.empty())
    throw std::invalid_argument("the accelerator cannot run this model's task heads: " + reason +
                                "; run them on the host with heads='host'");
  return true;
}

std::string megabytes(uint64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MB", double(bytes) / 1e6);
  return text;
}
}  // namespace

// Each buffer must fit the memory bank its argument is connected to (an HBM pseudo-channel holds
// 256 MB): the model's fixed buffers, or it is refused; the per-image ones decide how many images
// a run takes, so a large batch becomes several runs.
void AccelBackend::plan_runs() {
  const edgemoe_hls::ModelDims& m = packed_.dims;
  const uint64_t n = uint64_t(edgemoe_hls::tokens(m)), D = uint64_t(m.dim);
  const uint64_t widest = uint64_t(std::max<long>({m.dim, m.mlp_hidden, m.expert_hidden}));
  const uint64_t maps = head_map_elements(), outputs_per_image =
      heads_on_device_ ? uint64_t(edgemoe_hls::head_output_words(m, int(widest_head_outputs(config_)))) * 64 : 0;
  const uint64_t words = uint64_t(packed_.weights.size());
  const struct {
    KernelArg arg;
    uint64_t fixed, per_image;
    const char* what;
  } buffers[] = {
      {KernelArg::weights, uint64_t(edgemoe_hls::port_words(long(words), 0)) * sizeof(edgemoe_hls::weight_word_t), 0,
       "weights (even words)"},
      {KernelArg::weights_odd, uint64_t(edgemoe_hls::port_words(long(words), 1)) * sizeof(edgemoe_hls::weight_word_t), 0,
       "weights (odd words)"},
      {KernelArg::params, uint64_t(packed_.params.size()) * kFmBytes, 0, "parameters"},
      {KernelArg::xn, n * D * kFmBytes, 0, "normalised rows"},
      {KernelArg::qkv, std::max(n * 3 * D, maps) * kFmBytes, 0, "q, k and v (and the heads' maps)"},
      {KernelArg::hidden, std::max(n * widest, maps) * kFmBytes, 0, "hidden layer (and the heads' maps)"},
      {KernelArg::outputs, 0, outputs_per_image, "task head outputs"},
      {KernelArg::images, edgemoe_hls::kPixelsPerWord, 3 * uint64_t(config_.image_h()) * uint64_t(config_.image_w()),
       "images"},
      {KernelArg::x, 0, n * D * kFmBytes, "residual stream"},
      {KernelArg::trace, 0, uint64_t(edgemoe_hls::trace_size(m, 1)) * sizeof(uint32_t), "MoE trace"},
  };
  images_per_run_ = int64_t(build_[edgemoe_hls::kRecord_max_images]);
  // Arguments connected to one bank (x and the heads' outputs share a bundle; params and the trace
  // a pseudo-channel on the U280) share its capacity: each bank once, with all of its buffers.
  for (const auto& b : buffers) {
    const int bank = device_->bank(b.arg);
    bool seen = false;
    for (const auto& earlier : buffers) {
      if (&earlier == &b) break;
      seen |= bank >= 0 && device_->bank(earlier.arg) == bank;
    }
    if (seen) continue;
    uint64_t fixed = 0, per_image = 0;
    std::string names, what;
    for (const auto& other : buffers)
      if (&other == &b || (bank >= 0 && device_->bank(other.arg) == bank)) {
        if (other.fixed + other.per_image == 0) continue;  // not used (the heads' outputs with heads on the host)
        fixed += other.fixed;
        per_image += other.per_image;
        names += std::string(names.empty() ? "'" : ", '") + edgemoe_hls::kKernelInterface[int(other.arg)].name + "'";
        what += (what.empty() ? "" : " and ") + std::string(other.what);
      }
    const uint64_t capacity = device_->capacity(b.arg), one = fixed + per_image;
    if (one == 0) continue;
    if (one > capacity)
      throw std::invalid_argument(device_->origin() + ": the memory bank of argument" +
                                  (names.find(',') != std::string::npos ? "s " : " ") + names + " holds " +
                                  megabytes(capacity) + "; this model's " + what + " need " + megabytes(one) +
                                  (per_image ? " for one image" : "") + " (connect it to a larger bank)");
    if (per_image > 0) images_per_run_ = std::min<int64_t>(images_per_run_, int64_t((capacity - fixed) / per_image));
  }
}

// The weights go over the kernel's two weight ports (layout.h): even words to `weights`, odd words
// to `weights_odd`. Once on the device the host copy is dropped.
void AccelBackend::upload_weights() {
  using edgemoe_hls::weight_word_t;
  std::vector<weight_word_t>& words = packed_.weights;
  const long total = long(words.size());
  const struct {
    KernelArg arg;
    BufferId* id;
    int port;
  } ports[] = {{KernelArg::weights, &args_.weights, 0}, {KernelArg::weights_odd, &args_.weights_odd, 1}};
  for (const auto& p : ports) {
    std::vector<weight_word_t> half(size_t(std::max(1L, edgemoe_hls::port_words(total, p.port))), weight_word_t{});
    for (long w = p.port; w < total; w += edgemoe_hls::kWeightPorts) half[size_t(w >> 1)] = words[size_t(w)];
    const size_t bytes = half.size() * sizeof(weight_word_t);
    *p.id = device_->allocate(bytes, p.arg);
    device_->write(*p.id, half.data(), bytes);
  }
  std::vector<weight_word_t>().swap(words);
}

AccelBackend::AccelBackend(std::string name, std::unique_ptr<Device> device, const ModelConfig& config,
                           std::shared_ptr<const ModelWeights> weights, int num_threads, bool heads_on_device)
    : name_(std::move(name)), device_(std::move(device)), build_(query_kernel_build(*device_)),
      config_(checked(config, build_)), heads_on_device_(checked_heads(heads_on_device, config_, build_)),
      packed_(pack_model(config_, *weights, heads_on_device_, build_[edgemoe_hls::kRecord_head_winograd] != 0)), heads_(config, weights, num_threads, /*with_backbone=*/false),
      traces_(config.tasks.size()) {
  plan_runs();
  const edgemoe_hls::ModelDims& m = packed_.dims;
  const size_t param_bytes = packed_.params.size() * kFmBytes;
  upload_weights();
  args_.params = device_->allocate(param_bytes, KernelArg::params);
  device_->write(args_.params, packed_.params.data(), param_bytes);
  const long n = edgemoe_hls::tokens(m), D = m.dim;
  const long widest = std::max<long>({D, m.mlp_hidden, m.expert_hidden});
  const long maps = long(head_map_elements());
  args_.xn = device_->allocate(n * D * kFmBytes, KernelArg::xn);
  args_.qkv = device_->allocate(std::max(n * 3 * D, maps) * kFmBytes, KernelArg::qkv);
  args_.hidden = device_->allocate(std::max(n * widest, maps) * kFmBytes, KernelArg::hidden);
  args_.head_channels = uint32_t(packed_.head_channels);
  args_.dim = m.dim;
  args_.heads = m.heads;
  args_.grid_h = m.grid_h;
  args_.grid_w = m.grid_w;
  args_.patch = m.patch;
  args_.depth = m.depth;
  args_.mlp_hidden = m.mlp_hidden;
  args_.experts = m.experts;
  args_.expert_hidden = m.expert_hidden;
  args_.top_k = m.top_k;
  args_.num_tasks = m.num_tasks;
  args_.moe_mask = m.moe_mask;
  args_.attn_scale = uint32_t(packed_.attn_scale_raw);
}

void AccelBackend::ensure_buffers(int64_t batch) {
  if (batch <= buffer_batch_) return;
  const edgemoe_hls::ModelDims& m = packed_.dims;
  const long n = edgemoe_hls::tokens(m);
  for (BufferId old : {args_.images, args_.x, args_.trace, args_.outputs})
    if (old >= 0) device_->release(old);
  args_.images = args_.x = args_.trace = args_.outputs = -1;
  buffer_batch_ = 0;
  // The kernel reads the images as 64-byte words (formats.h: pixel_word_t): whole words allocated.
  const int64_t pixel_bytes = batch * 3 * config_.image_h() * config_.image_w();
  const int64_t word = edgemoe_hls::kPixelsPerWord;
  args_.images = device_->allocate(size_t((pixel_bytes + word - 1) / word * word), KernelArg::images);
  args_.x = device_->allocate(batch * n * m.dim * kFmBytes, KernelArg::x);
  args_.trace = device_->allocate(std::max<long>(1, edgemoe_hls::trace_size(m, int(batch))) * sizeof(uint32_t),
                                  KernelArg::trace);
  if (heads_on_device_)
    args_.outputs = device_->allocate(
        size_t(batch * edgemoe_hls::head_output_words(m, int(widest_head_outputs(config_))) * 64), KernelArg::outputs);
  buffer_batch_ = batch;
}

void AccelBackend::run(int64_t batch, int64_t task_id, bool embed, int first_stage, int last_stage, int head_stages) {
  KernelArgs a = args_;
  a.head_out = head_stages > 0 ? uint32_t(config_.tasks[size_t(task_id)].out_channels) : 0;
  a.head_stages = uint32_t(head_stages);
  a.num_images = uint32_t(batch);
  a.task = uint32_t(task_id);
  a.embed = embed ? 1 : 0;
  a.first_stage = uint32_t(first_stage);
  a.last_stage = uint32_t(last_stage);
  device_->run(a);
}

std::vector<edgemoe_hls::fm_t> AccelBackend::read_x(int64_t batch) {
  std::vector<edgemoe_hls::fm_t> raw(size_t(batch * config_.num_tokens() * config_.embed_dim));
  device_->read(args_.x, raw.data(), raw.size() * kFmBytes);
  return raw;
}

void AccelBackend::read_features(int64_t batch, float* out) {
  const std::vector<edgemoe_hls::fm_t> raw = read_x(batch);
  for (size_t i = 0; i < raw.size(); ++i) out[i] = fm_to_float(raw[i]);
}

std::vector<uint8_t> AccelBackend::quantize(const float* images, int64_t batch,
                                            std::vector<std::string>* warnings) const {
  const int64_t plane = config_.image_h() * config_.image_w();
  std::vector<uint8_t> pixels;
  const PixelClipping clipped = quantize_images(images, batch, plane, &pixels);
  if (clipped.values) {
    char worst[32];
    std::snprintf(worst, sizeof worst, "%.3g", clipped.worst_levels);
    warnings->push_back(name_ + ": " + std::to_string(clipped.values) + " of " + std::to_string(batch * 3 * plane) +
                        " input values lie outside the 8-bit pixel range the accelerator reads (up to " + worst +
                        " pixel levels beyond [0, 255]) and were clipped; give it images made by "
                        "edgemoe.preprocess");
  }
  return pixels;
}

void AccelBackend::backbone(const float* images, int64_t batch, const std::vector<int64_t>& task_ids,
                            const std::vector<float*>& features) {
  run_batch(images, batch, task_ids, features, false);
}

bool AccelBackend::forward(const float* images, int64_t batch, const std::vector<int64_t>& task_ids,
                           const std::vector<float*>& out) {
  if (!heads_on_device_) return false;
  run_batch(images, batch, task_ids, out, true);
  return true;
}

void AccelBackend::run_batch(const float* images, int64_t batch, const std::vector<int64_t>& task_ids,
                             const std::vector<float*>& out, bool heads) {
  if (task_ids.empty()) return;
  const int64_t plane = config_.image_h() * config_.image_w();
  // Warnings and traces of this call replace the last ones only once the whole call succeeded.
  std::vector<std::string> warnings;
  const std::vector<uint8_t> pixels = quantize(images, batch, &warnings);
  std::vector<std::vector<uint32_t>> traces(traces_.size());
  const int64_t per_call = images_per_run_;
  for (int64_t first = 0; first < batch; first += per_call) {
    const int64_t count = std::min(per_call, batch - first);
    std::vector<float*> chunk_out;
    for (size_t t = 0; t < out.size(); ++t) {
      const int64_t per_image = heads ? config_.tasks[size_t(task_ids[t])].out_channels * plane
                                      : config_.num_tokens() * config_.embed_dim;
      chunk_out.push_back(out[t] + first * per_image);
    }
    backbone_chunk(pixels.data() + first * 3 * plane, count, task_ids, chunk_out, heads, &traces);
  }
  for (int64_t t : task_ids) traces_[t] = std::move(traces[t]);
  input_warnings_ = std::move(warnings);
}

void AccelBackend::backbone_chunk(const uint8_t* pixels, int64_t batch, const std::vector<int64_t>& task_ids,
                                  const std::vector<float*>& out, bool heads, std::vector<std::vector<uint32_t>>* traces) {
  ensure_buffers(batch);
  device_->write(args_.images, pixels, size_t(batch * 3 * config_.image_h() * config_.image_w()));

  // Stage 2b is block b's attention half, 2b+1 its MLP/MoE half; everything before the first
  // MoE half is task-independent and runs once.
  int split = int(2 * config_.depth);
  for (int64_t b : config_.moe_blocks) split = std::min(split, int(2 * b + 1));
  const int end = int(2 * config_.depth);
  run(batch, task_ids[0], true, 0, split);
  const size_t state_bytes = size_t(batch * config_.num_tokens() * config_.embed_dim * kFmBytes);
  std::vector<uint8_t> shared;  // the residual stream after the shared prefix, when tasks diverge
  if (split < end && task_ids.size() > 1) {
    shared.resize(state_bytes);
    device_->read(args_.x, shared.data(), state_bytes);
  }
  const size_t trace_words = size_t(edgemoe_hls::trace_size(packed_.dims, int(batch)));
  for (size_t t = 0; t < task_ids.size(); ++t) {
    const size_t count = size_t(batch) * (heads ? size_t(config_.tasks[size_t(task_ids[t])].out_channels *
                                                         config_.image_h() * config_.image_w())
                                                : size_t(config_.num_tokens() * config_.embed_dim));
    // A task named twice in one call is computed once.
    const size_t first = size_t(std::find(task_ids.begin(), task_ids.end(), task_ids[t]) - task_ids.begin());
    if (first < t) {
      std::copy(out[first], out[first] + count, out[t]);
      continue;
    }
    if (split < end) {
      if (t > 0) device_->write(args_.x, shared.data(), state_bytes);
      // The task-gated rest and, with heads, the task's head: one call.
      run(batch, task_ids[t], false, split, end, heads ? edgemoe_ledger::kHeadStages : 0);
      std::vector<uint32_t>& trace = (*traces)[task_ids[t]];
      const size_t before = trace.size();
      trace.resize(before + trace_words);
      if (trace_words) device_->read(args_.trace, trace.data() + before, trace_words * sizeof(uint32_t));
    } else if (heads) {
      run(batch, task_ids[t], false, end, end, edgemoe_ledger::kHeadStages);  // the head alone
    }
    if (heads) read_head_outputs(batch, task_ids[t], out[t]);
    else read_features(batch, out[t]);
  }
}

int64_t AccelBackend::padded_head_channels(int layer) const {
  const int slices = head_layer_slices(config_, build_, layer);
  const int64_t out = layer < 4 ? config_.head_channels : widest_head_outputs(config_);
  return int64_t(slices) * edgemoe_hls::slice_stride_words(int(out / 16), slices) * 16;
}

uint64_t AccelBackend::head_map_elements() const {
  if (!heads_on_device_) return 0;
  // The last maps are the largest: 8 gh x 8 gw (conv_3's output, the upsampled conv_2, the logits).
  int64_t widest = 0;
  for (int l = 0; l < edgemoe_hls::kHeadLayers; ++l) widest = std::max(widest, padded_head_channels(l));
  return uint64_t(64 * config_.grid_h * config_.grid_w * widest);
}

// [images][16 gh][16 gw][out words] fm_t -> [images][out][H][W] float.
void AccelBackend::read_head_outputs(int64_t batch, int64_t task_id, float* out) {
  const edgemoe_hls::ModelDims& m = packed_.dims;
  const int64_t channels = config_.tasks[size_t(task_id)].out_channels;
  const int64_t stride = (channels + 15) / 16 * 16, pixels = config_.image_h() * config_.image_w();
  std::vector<edgemoe_hls::fm_t> raw(size_t(batch * edgemoe_hls::head_output_words(m, int(channels)) * 16));
  device_->read(args_.outputs, raw.data(), raw.size() * kFmBytes);
  for (int64_t i = 0; i < batch; ++i)
    for (int64_t p = 0; p < pixels; ++p)
      for (int64_t c = 0; c < channels; ++c)
        out[(i * channels + c) * pixels + p] = fm_to_float(raw[size_t((i * pixels + p) * stride + c)]);
}

std::vector<float> AccelBackend::read_map(BufferId buffer, int64_t channels, int64_t height, int64_t width,
                                          int slices) {
  const int64_t words = (channels + 15) / 16, per = edgemoe_hls::slice_stride_words(int(words), slices),
                pixels = height * width;
  std::vector<edgemoe_hls::fm_t> raw(size_t(pixels * per * 16 * slices));
  device_->read(buffer, raw.data(), raw.size() * kFmBytes);
  std::vector<float> chw(size_t(channels * pixels));
  for (int64_t c = 0; c < channels; ++c) {
    const int64_t s = c / (per * 16), within = c % (per * 16);
    for (int64_t p = 0; p < pixels; ++p) chw[size_t(c * pixels + p)] = fm_to_float(raw[size_t((s * pixels + p) * per * 16 + within)]);
  }
  return chw;
}

// The head as the device computes it, stage by stage: a call per stage that leaves its map in a
// scratch buffer (kernel_interface.h: head_stages), then the whole head.
void AccelBackend::trace_device_head(int64_t task_id, TraceRecorder* recorder) {
  const int64_t C = config_.head_channels, gh = config_.grid_h, gw = config_.grid_w, D = config_.embed_dim;
  for (int stage = 1; stage <= 3; ++stage) {
    run(1, task_id, false, int(2 * config_.depth), int(2 * config_.depth), stage);
    if (stage == 1) recorder->head_norm(read_map(args_.xn, D, gh, gw, 1).data());
    const int64_t side = int64_t(1) << stage;  // stage s - 1's map, upsampled: 2^s x the grid
    recorder->head_stage(stage - 1, read_map(args_.qkv, C, side * gh, side * gw, head_layer_slices(config_, build_, stage - 1)).data(),
                         C, side * gh, side * gw);
  }
  run(1, task_id, false, int(2 * config_.depth), int(2 * config_.depth), edgemoe_ledger::kHeadStages);
  recorder->head_stage(3, read_map(args_.hidden, C, 8 * gh, 8 * gw, head_layer_slices(config_, build_, 3)).data(), C,
                       8 * gh, 8 * gw);
  const int64_t out = config_.tasks[size_t(task_id)].out_channels;
  recorder->head_logits(read_map(args_.qkv, out, 8 * gh, 8 * gw, 1).data(), 8 * gh, 8 * gw);
  std::vector<float> output(size_t(out * config_.image_h() * config_.image_w()));
  read_head_outputs(1, task_id, output.data());
  recorder->output(output.data());
}

void AccelBackend::head(int64_t task_id, const float* features, int64_t batch, float* out) {
  heads_.head(task_id, features, batch, out);
}

bool AccelBackend::moe_trace(int64_t task_id, std::vector<uint32_t>* trace) const {
  *trace = traces_[task_id];
  return true;
}

void AccelBackend::trace(const float* image, int64_t task_id, TraceRecorder* recorder) {
  const edgemoe_hls::ModelDims& m = packed_.dims;
  check_gate_replay_bounds(m.dim, m.experts, m.top_k);  // before any device run
  std::vector<std::string> warnings;
  const std::vector<uint8_t> pixels = quantize(image, 1, &warnings);
  for (std::string& w : warnings) recorder->warn(std::move(w));
  ensure_buffers(1);
  device_->write(args_.images, pixels.data(), pixels.size());
  // x is read raw: a branch is the exact fixed-point difference the half added to the stream.
  const size_t count = size_t(config_.num_tokens() * config_.embed_dim);
  std::vector<edgemoe_hls::fm_t> raw, before;
  std::vector<float> x(count), branch(count);
  auto read_stream = [&]() {
    raw = read_x(1);
    for (size_t i = 0; i < count; ++i) x[i] = fm_to_float(raw[i]);
  };
  auto added = [&]() {
    for (size_t i = 0; i < count; ++i) branch[i] = float((raw[i] - before[i]).to_double());
    return branch.data();
  };
  run(1, task_id, true, 0, 0);
  read_stream();
  recorder->embedding(x.data());
  for (int stage = 0; stage < int(2 * config_.depth); ++stage) {
    const int block = stage / 2;
    before = std::move(raw);
    run(1, task_id, false, stage, stage + 1);
    read_stream();
    if (stage % 2 == 0) {
      recorder->attention(block, added());
      continue;
    }
    if (config_.is_moe_block(block)) record_routing(block, task_id, recorder);
    recorder->mlp(block, added());
    recorder->block_output(block, x.data());
  }
  if (heads_on_device_) {
    trace_device_head(task_id, recorder);
    return;
  }
  std::vector<float> out(size_t(config_.tasks[task_id].out_channels * config_.image_h() * config_.image_w()));
  heads_.trace_head(task_id, x.data(), out.data(), recorder);
}

// After block `block`'s MoE stage on one image: xn holds the tokens its gate read, the trace buffer
// the expert counts. The gate's matrix and bias are read back from the device, as the kernel reads them.
void AccelBackend::record_routing(int block, int64_t task_id, TraceRecorder* recorder) {
  using edgemoe_hls::fm_t;
  using edgemoe_hls::weight_word_t;
  const edgemoe_hls::ModelDims& m = packed_.dims;
  const int D = m.dim, E = m.experts;
  const long N = edgemoe_hls::tokens(m);
  std::vector<fm_t> xn(static_cast<size_t>(N * D));
  device_->read(args_.xn, xn.data(), xn.size() * kFmBytes);
  // A matrix starts at an even word and spans an even count (layout.h): pairs of (even, odd) words.
  const long first = edgemoe_hls::w_gate(m, block, int(task_id));
  if (first % 2) throw std::logic_error("trace: a gate matrix starts at an odd weight word (layout.h says even)");
  const long pairs = (E * edgemoe_hls::words_per_row(D) + 1) / 2;
  std::vector<weight_word_t> even(static_cast<size_t>(pairs)), odd(static_cast<size_t>(pairs));
  const size_t at = size_t(first / 2) * sizeof(weight_word_t);
  device_->read(args_.weights, even.data(), even.size() * sizeof(weight_word_t), at);
  device_->read(args_.weights_odd, odd.data(), odd.size() * sizeof(weight_word_t), at);
  std::vector<fm_t> bias(static_cast<size_t>(E));
  device_->read(args_.params, bias.data(), bias.size() * kFmBytes,
                size_t(edgemoe_hls::p_gate_bias(m, block, int(task_id))) * kFmBytes);
  const GateReplay gate = replay_gate(xn.data(), N, even.data(), odd.data(), bias.data(), D, E, m.top_k);
  recorder->routing(block, gate.probs.data(), gate.picks.data());
  std::vector<uint32_t> trace(static_cast<size_t>(edgemoe_hls::trace_size(m, 1)));
  device_->read(args_.trace, trace.data(), trace.size() * sizeof(uint32_t));
  recorder->tokens_per_expert(block, trace.data() + long(edgemoe_hls::moe_index(m, block)) * 3 * E);
}

}  // namespace edgemoe::accel
