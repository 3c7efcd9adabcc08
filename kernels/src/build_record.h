// What a compiled kernel says about itself. A host cannot trust an .xclbin's file name to tell
// which board config, maxima and number formats it was synthesised with, so it asks the kernel:
// a call with first_stage == kBuildQueryStage writes this record to `trace` and does nothing else.
// The host compares it with what it was built for before it packs a single weight
// (csrc/backends/accel/kernel_build.cpp).
#pragma once

#include "formats.h"
#include "kernel_interface.h"
#include "layout.h"
#include "schedule.h"

namespace edgemoe_hls {

constexpr int kBuildQueryStage = -1;
constexpr unsigned kBuildRecordMagic = 0x4D335642u;  // "M3VB"
// Bump when the meaning of any field below changes.
constexpr unsigned kBuildRecordVersion = 9;  // 2: no scores/softmax_info; 3: packed weights; 4: activation words;
                                             // 5: two weight ports, matrices at even words; 6: images read as
                                             // 64-byte words (the buffer a whole number of them); 7: task heads
                                             // (the outputs buffer, head scalars, heads packed after the backbone);
                                             // 8: attention's K and V in 18 bits (kv_t), q in q_t;
                                             // 9: head_winograd (conv_1..3 packed as Winograd's
                                             // terms), the line buffer's lanes (line_lane_t)
constexpr int kConfigNameWords = 4;  // the board config's name, up to 16 ASCII characters
static_assert(sizeof(EDGEMOE_CFG_NAME) <= 4 * kConfigNameWords + 1, "EDGEMOE_CFG_NAME: at most 16 characters");

// FNV-1a over the interface list (names and kinds, in order): a kernel compiled from another
// list answers with another hash.
constexpr int kMaxArgNameLength = 32;
constexpr unsigned interface_hash() {
  unsigned h = 2166136261u;
  for (int a = 0; a < kKernelArgCount; ++a) {
    bool ended = false;
    for (int i = 0; i < kMaxArgNameLength; ++i) {
      ended = ended || kKernelInterface[a].name[i] == 0;
      if (!ended) h = (h ^ unsigned((unsigned char)kKernelInterface[a].name[i])) * 16777619u;
    }
    h = (h ^ (kKernelInterface[a].is_buffer ? 0x42u : 0x53u)) * 16777619u;
  }
  return h;
}

constexpr unsigned config_name_word(const char* name, int word) {
  unsigned w = 0;
  bool ended = false;
  for (int at = 0; at < 4 * kConfigNameWords; ++at) {
    ended = ended || name[at] == 0;
    if (!ended && at / 4 == word) w |= unsigned((unsigned char)name[at]) << (8 * (at % 4));
  }
  return w;
}

// The record, one 32-bit word per field, in this order. FIELD(name, value).
// Formats are (total bits, integer bits) of every type whose rounding the host or the golden
// models depend on; maxima and lanes are the board config (kernels/config/).
#define EDGEMOE_BUILD_RECORD(FIELD)                                           \
  FIELD(magic, kBuildRecordMagic)                                             \
  FIELD(record_version, kBuildRecordVersion)                                  \
  FIELD(interface_hash, interface_hash())                                     \
  FIELD(config_name0, config_name_word(EDGEMOE_CFG_NAME, 0))                  \
  FIELD(config_name1, config_name_word(EDGEMOE_CFG_NAME, 1))                  \
  FIELD(config_name2, config_name_word(EDGEMOE_CFG_NAME, 2))                  \
  FIELD(config_name3, config_name_word(EDGEMOE_CFG_NAME, 3))                  \
  FIELD(max_images, kMaxImagesPerRun)                                         \
  FIELD(max_dim, EDGEMOE_MAX_DIM)                                             \
  FIELD(max_tokens, EDGEMOE_MAX_TOKENS)                                       \
  FIELD(max_heads, EDGEMOE_MAX_HEADS)                                         \
  FIELD(max_depth, EDGEMOE_MAX_DEPTH)                                         \
  FIELD(max_mlp_hidden, EDGEMOE_MAX_MLP_HIDDEN)                               \
  FIELD(max_experts, EDGEMOE_MAX_EXPERTS)                                     \
  FIELD(max_expert_hidden, EDGEMOE_MAX_EXPERT_HIDDEN)                         \
  FIELD(max_top_k, EDGEMOE_MAX_TOP_K)                                         \
  FIELD(max_tasks, EDGEMOE_MAX_TASKS)                                         \
  FIELD(max_patch_in, EDGEMOE_MAX_PATCH_IN)                                   \
  FIELD(max_head_channels, EDGEMOE_MAX_HEAD_CHANNELS)                         \
  FIELD(max_head_out, EDGEMOE_MAX_HEAD_OUT)                                   \
  FIELD(max_map_w, EDGEMOE_MAX_MAP_W)                                     \
  FIELD(max_weight_tiles, kMaxWeightTiles)                                    \
  FIELD(linear_tin, EDGEMOE_LINEAR_TIN)                                       \
  FIELD(linear_tout, EDGEMOE_LINEAR_TOUT)                                     \
  FIELD(attn_lanes, EDGEMOE_ATTN_LANES)                                       \
  FIELD(linear_rows, EDGEMOE_LINEAR_ROWS)                                     \
  FIELD(head_winograd, kHeadWinograd ? 1 : 0)                                 \
  FIELD(attn_blocks, EDGEMOE_ATTN_BLOCKS)                                     \
  FIELD(gate_features, EDGEMOE_GATE_FEATURES)                                 \
  FIELD(attn_rows_in_flight, EDGEMOE_ATTN_P)                                  \
  FIELD(weights_per_word, kWeightsPerWord)                                    \
  FIELD(weight_ports, kWeightPorts)                                           \
  FIELD(activation_word_elements, kWordElems)                                 \
  FIELD(pixel_bits, pixel_t::width)                                           \
  FIELD(pixel_int_bits, pixel_t::iwidth)                                      \
  FIELD(fm_bits, fm_t::width)                                                 \
  FIELD(fm_int_bits, fm_t::iwidth)                                            \
  FIELD(wt_bits, wt_t::width)                                                 \
  FIELD(wt_int_bits, wt_t::iwidth)                                            \
  FIELD(mac_in_bits, mac_in_t::width)                                         \
  FIELD(mac_in_int_bits, mac_in_t::iwidth)                                    \
  FIELD(acc_bits, acc_t::width)                                               \
  FIELD(acc_int_bits, acc_t::iwidth)                                          \
  FIELD(q_bits, q_t::width)                                                   \
  FIELD(q_int_bits, q_t::iwidth)                                              \
  FIELD(kv_bits, kv_t::width)                                                 \
  FIELD(kv_int_bits, kv_t::iwidth)                                            \
  FIELD(unit_bits, unit_t::width)                                             \
  FIELD(unit_int_bits, unit_t::iwidth)                                        \
  FIELD(sum_bits, sum_t::width)                                               \
  FIELD(sum_int_bits, sum_t::iwidth)                                          \
  FIELD(line_lane_bits, line_lane_t::width)                                   \
  FIELD(line_lane_int_bits, line_lane_t::iwidth)

#define EDGEMOE_RECORD_INDEX(name, value) kRecord_##name,
enum BuildRecordField { EDGEMOE_BUILD_RECORD(EDGEMOE_RECORD_INDEX) kBuildRecordWords };
#undef EDGEMOE_RECORD_INDEX

// The record's values, as this build computes them.
#define EDGEMOE_RECORD_VALUE(name, value) (unsigned)(value),
constexpr unsigned kBuildRecord[kBuildRecordWords] = {EDGEMOE_BUILD_RECORD(EDGEMOE_RECORD_VALUE)};
#undef EDGEMOE_RECORD_VALUE

}  // namespace edgemoe_hls
