#include "backends/accel/kernel_build.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <utility>
#include <vector>

namespace edgemoe::accel {

namespace {
using namespace edgemoe_hls;

#define EDGEMOE_RECORD_NAME(name, value) #name,
static_assert(kRecord_line_lane_int_bits == kBuildRecordWords - 1 && (kBuildRecordWords - kRecord_pixel_bits) % 2 == 0,
              "the record must end with (bits, integer bits) pairs of the number formats");
const char* const kFieldNames[kBuildRecordWords] = {EDGEMOE_BUILD_RECORD(EDGEMOE_RECORD_NAME)};
#undef EDGEMOE_RECORD_NAME

std::string hex(uint32_t v) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%08x", v);
  return text;
}

// Every refusal of a model by the build starts so (the Python layer tells these from checkpoint faults).
constexpr const char* kCannotRun = "the accelerator cannot run this model: ";

[[noreturn]] void refuse(const KernelBuild& build, const std::string& why) {
  throw std::runtime_error("the accelerator kernel in " + build.origin + " cannot run with this edgemoe build: " +
                           why);
}

// The model's `value` against the build's maximum in `field`; the refusal names the config macro
// that sets it (field max_dim -> EDGEMOE_MAX_DIM).
void limit(const KernelBuild& build, const std::string& what, long value, BuildRecordField field) {
  if (value <= long(build[field])) return;
  std::string macro = "EDGEMOE_";
  for (const char* c = kFieldNames[field]; *c; ++c) macro += char(std::toupper(static_cast<unsigned char>(*c)));
  throw std::invalid_argument(std::string(kCannotRun) + "model " + what + " " + std::to_string(value) +
                              " exceeds the accelerator build's " + macro + " = " + std::to_string(build[field]) +
                              " (kernel config '" + build.config_name() + "' in " + build.origin +
                              ", kernels/config/)");
}
}  // namespace

const char* build_record_field_name(BuildRecordField field) { return kFieldNames[field]; }

std::string KernelBuild::config_name() const {
  char name[4 * kConfigNameWords + 1] = {};
  for (int w = 0; w < kConfigNameWords; ++w)
    for (int i = 0; i < 4; ++i) name[4 * w + i] = char((words[kRecord_config_name0 + w] >> (8 * i)) & 0xFF);
  std::string out(name);
  for (char& c : out)
    if (c < 0x20 || c > 0x7E) c = '?';
  return out;
}

KernelBuild host_kernel_build() {
  KernelBuild build;
  for (int i = 0; i < kBuildRecordWords; ++i) build.words[i] = kBuildRecord[i];
  build.origin = "this host build";
  return build;
}

void check_kernel_build(const KernelBuild& build) {
  const KernelBuild host = host_kernel_build();
  if (build[kRecord_magic] != host[kRecord_magic])
    refuse(build, "it did not answer the build query (" + hex(build[kRecord_magic]) + " instead of " +
                      hex(host[kRecord_magic]) + "); it is not edgemoe's m3vit_backbone, or one built before the query "
                      "existed; rebuild the xclbin from this source tree (kernels/vitis)");
  if (build[kRecord_record_version] != host[kRecord_record_version])
    refuse(build, "its build record has version " + std::to_string(build[kRecord_record_version]) +
                      ", this host reads version " + std::to_string(host[kRecord_record_version]));
  if (build[kRecord_interface_hash] != host[kRecord_interface_hash])
    refuse(build, "its argument list differs from kernels/src/kernel_interface.h in this build (interface hash " +
                      hex(build[kRecord_interface_hash]) + ", expected " + hex(host[kRecord_interface_hash]) + ")");
  // Everything that sets the bits of a result must be equal; maxima and lanes may differ per board.
  const BuildRecordField numerics[] = {kRecord_attn_rows_in_flight, kRecord_weights_per_word, kRecord_weight_ports,
                                       kRecord_activation_word_elements};
  for (BuildRecordField f : numerics)
    if (build[f] != host[f])
      refuse(build, std::string(kFieldNames[f]) + " is " + std::to_string(build[f]) + ", this build uses " +
                        std::to_string(host[f]));
  for (int f = kRecord_pixel_bits; f + 1 < kBuildRecordWords; f += 2) {
    const std::string type(kFieldNames[f], std::strlen(kFieldNames[f]) - std::strlen("_bits"));
    if (build.words[f] != host.words[f] || build.words[f + 1] != host.words[f + 1])
      refuse(build, "number format " + type + "_t is " + std::to_string(build.words[f]) + " bits with " +
                        std::to_string(build.words[f + 1]) + " integer bits, this build uses " +
                        std::to_string(host.words[f]) + " with " + std::to_string(host.words[f + 1]) +
                        " (kernels/src/formats.h)");
  }
  const BuildRecordField positive[] = {kRecord_max_images, kRecord_max_dim,   kRecord_max_tokens, kRecord_max_heads,
                                       kRecord_max_depth,  kRecord_attn_lanes, kRecord_activation_word_elements};
  for (BuildRecordField f : positive)
    if (build[f] == 0 || build[f] > (1u << 24)) refuse(build, std::string(kFieldNames[f]) + " is " + std::to_string(build[f]));
}

KernelBuild query_kernel_build(Device& device) {
  std::vector<uint32_t> record(kBuildRecordWords, 0);
  const BufferId buffer = device.allocate(record.size() * sizeof(uint32_t), KernelArg::trace);
  device.write(buffer, record.data(), record.size() * sizeof(uint32_t));
  KernelArgs args;
  args.trace = buffer;
  args.first_stage = uint32_t(kBuildQueryStage);
  device.run(args);
  device.read(buffer, record.data(), record.size() * sizeof(uint32_t));
  device.release(buffer);
  KernelBuild build;
  if (device.executes()) {
    for (int i = 0; i < kBuildRecordWords; ++i) build.words[i] = record[i];
  } else {
    build = host_kernel_build();
    build.assumed = true;
  }
  build.origin = device.origin();
  check_kernel_build(build);
  return build;
}

void check_fits_build(const ModelConfig& c, const KernelBuild& b) {
  limit(b, "width", c.embed_dim, kRecord_max_dim);
  if (c.embed_dim < 64)
    throw std::invalid_argument(std::string(kCannotRun) + "model width " + std::to_string(c.embed_dim) +
                                " is below the accelerator's minimum of 64 (LayerNorm's 1/D format)");
  limit(b, "token count", c.num_tokens(), kRecord_max_tokens);
  limit(b, "head count", c.num_heads, kRecord_max_heads);
  if (c.head_dim() % long(b[kRecord_attn_lanes]) != 0)
    throw std::invalid_argument(std::string(kCannotRun) + "model head dimension " + std::to_string(c.head_dim()) +
                                " is not a multiple of the attention unit's EDGEMOE_ATTN_LANES = " +
                                std::to_string(b[kRecord_attn_lanes]) + " (kernel config '" + b.config_name() +
                                "' in " + b.origin + ")");
  // Rows of x, xn, qkv and hidden are whole 512-bit words of activation_word_elements values.
  const long word = long(b[kRecord_activation_word_elements]);
  bool dense = false, moe = false;
  for (int64_t blk = 0; blk < c.depth; ++blk) (c.is_moe_block(blk) ? moe : dense) = true;
  const std::pair<const char*, long> widths[] = {{"width", long(c.embed_dim)},
                                                 {"MLP hidden width", dense ? long(c.mlp_hidden) : 0},
                                                 {"expert hidden width", moe ? long(c.expert_hidden) : 0}};
  for (const auto& w : widths)
    if (w.second % word != 0)
      throw std::invalid_argument(std::string(kCannotRun) + "model " + w.first + " " + std::to_string(w.second) +
                                  " is not a multiple of " + std::to_string(word) +
                                  " (the kernel moves activations in 512-bit words; kernel config '" +
                                  b.config_name() + "' in " + b.origin + ")");
  limit(b, "depth", c.depth, kRecord_max_depth);
  limit(b, "MLP hidden width", c.mlp_hidden, kRecord_max_mlp_hidden);
  limit(b, "expert count", c.num_experts, kRecord_max_experts);
  limit(b, "expert hidden width", c.expert_hidden, kRecord_max_expert_hidden);
  limit(b, "top-k", c.top_k, kRecord_max_top_k);
  limit(b, "task count", long(c.tasks.size()), kRecord_max_tasks);
  limit(b, "patch input (3*P*P)", 3 * c.patch_size * c.patch_size, kRecord_max_patch_in);
}

long widest_head_outputs(const ModelConfig& c) {
  long widest = 0;
  for (const TaskSpec& t : c.tasks) widest = std::max<long>(widest, (t.out_channels + 15) / 16 * 16);
  return widest;
}

int head_layer_slices(const ModelConfig& c, const KernelBuild& b, int layer) {
  const ModelDims m = {int(c.embed_dim), 1, int(c.grid_h), int(c.grid_w), 1, 0, 0, 0, 0, 0, 1, 0u,
                       b[kRecord_head_winograd] != 0};
  const int C = int(c.head_channels);
  const int out = layer < 4 ? C : int(widest_head_outputs(c));
  return head_slices_for(out, head_in(m, C, layer), head_terms(m, C, layer), int(b[kRecord_linear_tin]), int(b[kRecord_linear_tout]),
                         int(b[kRecord_max_weight_tiles]), int(b[kRecord_max_head_channels]));
}

std::string heads_unfit_reason(const ModelConfig& c, const KernelBuild& b) {
  const std::string build = " (kernel config '" + b.config_name() + "' in " + b.origin + ")";
  const long word = long(b[kRecord_activation_word_elements]);
  if (c.head_channels > long(b[kRecord_max_head_channels]))
    return "its heads have " + std::to_string(c.head_channels) + " channels, the build at most " +
           std::to_string(b[kRecord_max_head_channels]) + build;
  if (c.head_channels % word != 0)
    return "its heads' " + std::to_string(c.head_channels) + " channels are not a multiple of " + std::to_string(word) +
           " (maps move in 512-bit words)" + build;
  const long max_out = std::min<long>(long(b[kRecord_max_head_out]), kHeadOutRows);
  for (const TaskSpec& t : c.tasks)
    if (t.out_channels > max_out)
      return "task '" + t.name + "' has " + std::to_string(t.out_channels) + " output channels, the build at most " +
             std::to_string(max_out) + build;
  if (c.patch_size != 16)
    return "its patches are " + std::to_string(c.patch_size) + " pixels: the head's four x2 upsamplings give 16 x the "
           "token grid, the image size only with 16-pixel patches";
  if (8 * c.grid_w > long(b[kRecord_max_map_w]))
    return "its last head maps are " + std::to_string(8 * c.grid_w) + " pixels wide (8 x the token grid's " +
           std::to_string(c.grid_w) + "), the build's line buffer " + std::to_string(b[kRecord_max_map_w]) + build;
  for (int l = 0; l < kHeadLayers; ++l)
    if (head_layer_slices(c, b, l) == 0)
      return "16 output channels of its conv_" + std::to_string(l) + " do not fit the build's weight buffer" + build;
  return "";
}

}  // namespace edgemoe::accel
