// The kernel's DDR layout: where each tensor lives in the weights (wt_t) and params (fm_t)
// buffers. Shared by the kernel and the host packer, so both agree by construction.
#pragma once

#include "formats.h"  // EDGEMOE_ATTN_P

namespace edgemoe_hls {

struct ModelDims {
  int dim, heads, grid_h, grid_w, patch, depth, mlp_hidden, experts, expert_hidden, top_k, num_tasks;
  unsigned moe_mask;  // bit b set: block b is a mixture of experts
  // The build runs conv_1..3 of the heads as Winograd's F(2, 3) (its config's EDGEMOE_HEAD_WINOGRAD;
  // the host reads it from the build record): it sets how those weights are packed.
  bool head_winograd;
};

inline int tokens(const ModelDims& m) { return 1 + m.grid_h * m.grid_w; }
inline int patch_in(const ModelDims& m) { return 3 * m.patch * m.patch; }
inline bool is_moe(const ModelDims& m, int block) { return (m.moe_mask >> block) & 1u; }
inline int moe_index(const ModelDims& m, int block) {  // position among the MoE blocks
  int n = 0;
  for (int b = 0; b < 32; ++b) {
    if (b >= block) break;
    n += is_moe(m, b) ? 1 : 0;
  }
  return n;
}

// --- weights buffer: 512-bit words, each holding kWeightsPerWord 18-bit weights ---
// A matrix [out][in] is stored row by row, each row in whole words (lane l of word w of row r is
// column 28 w + l; the unused lanes of a row's last word are zero), so one word never holds two
// rows and the on-chip loader writes each lane to its own bank. Offsets are in words.
constexpr int kWeightsPerWord = 28;  // 28 x 18 = 504 of 512 bits
constexpr int kWeightBits = 18;
static_assert(kWeightBits == wt_t::width, "the packed weight format holds 18-bit weights");
inline long words_per_row(int in) { return (in + kWeightsPerWord - 1) / kWeightsPerWord; }
// A matrix's words, rounded up to even: every matrix starts at an even word (see the ports below).
inline long matrix_words(int out, int in) {
  const long words = (long)out * words_per_row(in);
  return words + (words & 1);
}
// The weights go to the kernel over two m_axi ports, for twice one port's bandwidth: word w of the
// buffer is word w >> 1 of port w & 1 (`weights` holds the even words, `weights_odd` the odd ones).
// A matrix starts at an even word, so its word pair (2p, 2p + 1) is word p of each port.
constexpr int kWeightPorts = 2;
inline long port_words(long words, int port) { return (words + 1 - port) / 2; }
// The word holding element (r, c) of the matrix starting at word `at`, and its lane (c % 28).
inline long weight_word_index(long at, int in, int r, int c) { return at + (long)r * words_per_row(in) + c / kWeightsPerWord; }

// Lane `lane` of a word as wt_t (in the loaders `lane` is an unrolled constant: wiring, no logic).
inline wt_t weight_lane(const weight_word_t& w, int lane) {
  const int bit = lane * kWeightBits, part = bit / 32, shift = bit % 32;
  unsigned long long pair = w.part[part];
  if (part + 1 < kWeightWordParts) pair |= (unsigned long long)w.part[part + 1] << 32;
  wt_t v;
  v.range() = (pair >> shift) & ((1ull << kWeightBits) - 1);
  return v;
}
inline void set_weight_lane(weight_word_t& w, int lane, wt_t v) {
  const int bit = lane * kWeightBits, part = bit / 32, shift = bit % 32;
  const unsigned long long bits = (unsigned long long)v.range() & ((1ull << kWeightBits) - 1);
  const unsigned long long mask = ((1ull << kWeightBits) - 1) << shift;
  unsigned long long pair = w.part[part];
  if (part + 1 < kWeightWordParts) pair |= (unsigned long long)w.part[part + 1] << 32;
  pair = (pair & ~mask) | (bits << shift);
  w.part[part] = (unsigned)pair;
  if (part + 1 < kWeightWordParts) w.part[part + 1] = (unsigned)(pair >> 32);
}

inline long block_weights_size(const ModelDims& m, int block) {
  const int D = m.dim;
  long n = matrix_words(3 * D, D) + matrix_words(D, D);  // qkv, proj
  if (is_moe(m, block))
    n += (long)m.num_tasks * matrix_words(m.experts, D) +
         (long)m.experts * (matrix_words(m.expert_hidden, D) + matrix_words(D, m.expert_hidden));  // gates, experts
  else
    n += matrix_words(m.mlp_hidden, D) + matrix_words(D, m.mlp_hidden);
  return n;
}
inline long w_patch(const ModelDims&) { return 0; }  // [D][3 P^2]
inline long w_block(const ModelDims& m, int block) {
  long off = matrix_words(m.dim, patch_in(m));
  for (int b = 0; b < 32; ++b) {
    if (b >= block) break;
    off += block_weights_size(m, b);
  }
  return off;
}
inline long w_qkv(const ModelDims& m, int b) { return w_block(m, b); }  // [3D][D]
inline long w_proj(const ModelDims& m, int b) { return w_block(m, b) + matrix_words(3 * m.dim, m.dim); }  // [D][D]
inline long w_fc1(const ModelDims& m, int b) { return w_proj(m, b) + matrix_words(m.dim, m.dim); }  // [Hd][D]
inline long w_fc2(const ModelDims& m, int b) { return w_fc1(m, b) + matrix_words(m.mlp_hidden, m.dim); }  // [D][Hd]
inline long w_gate(const ModelDims& m, int b, int task) {  // [E][D] for one task
  return w_proj(m, b) + matrix_words(m.dim, m.dim) + (long)task * matrix_words(m.experts, m.dim);
}
inline long w_expert_fc1(const ModelDims& m, int b, int e) {  // [Hm][D]
  return w_gate(m, b, m.num_tasks) + (long)e * (matrix_words(m.expert_hidden, m.dim) + matrix_words(m.dim, m.expert_hidden));
}
inline long w_expert_fc2(const ModelDims& m, int b, int e) {  // [D][Hm]
  return w_expert_fc1(m, b, e) + matrix_words(m.expert_hidden, m.dim);
}
inline long weights_size(const ModelDims& m) { return w_block(m, m.depth); }  // words

// --- params buffer (fm_t) ---
inline long block_params_size(const ModelDims& m, int block) {
  const long D = m.dim;
  long n = 2 * D + 3 * D + D + 2 * D;  // ln1, qkv bias, proj bias, ln2
  if (is_moe(m, block))
    n += (long)m.num_tasks * m.experts + (long)m.experts * (m.expert_hidden + D);
  else
    n += m.mlp_hidden + D;
  return n;
}
inline long p_pos(const ModelDims&) { return 0; }  // [N][D], row 0 = cls_token + pos_embed[0]
inline long p_patch_bias(const ModelDims& m) { return (long)tokens(m) * m.dim; }
inline long p_block(const ModelDims& m, int block) {
  long off = p_patch_bias(m) + m.dim;
  for (int b = 0; b < 32; ++b) {
    if (b >= block) break;
    off += block_params_size(m, b);
  }
  return off;
}
inline long p_ln1(const ModelDims& m, int b) { return p_block(m, b); }  // gamma [D], beta [D]
inline long p_qkv_bias(const ModelDims& m, int b) { return p_block(m, b) + 2L * m.dim; }
inline long p_proj_bias(const ModelDims& m, int b) { return p_qkv_bias(m, b) + 3L * m.dim; }
inline long p_ln2(const ModelDims& m, int b) { return p_proj_bias(m, b) + m.dim; }
inline long p_fc1_bias(const ModelDims& m, int b) { return p_ln2(m, b) + 2L * m.dim; }
inline long p_fc2_bias(const ModelDims& m, int b) { return p_fc1_bias(m, b) + m.mlp_hidden; }
inline long p_gate_bias(const ModelDims& m, int b, int task) {  // [E] logit offsets of one task
  return p_ln2(m, b) + 2L * m.dim + (long)task * m.experts;
}
inline long p_expert_bias1(const ModelDims& m, int b, int e) {
  return p_gate_bias(m, b, m.num_tasks) + (long)e * (m.expert_hidden + m.dim);
}
inline long p_expert_bias2(const ModelDims& m, int b, int e) { return p_expert_bias1(m, b, e) + m.expert_hidden; }
inline long params_size(const ModelDims& m) { return p_block(m, m.depth); }

// --- task heads (after the backbone in both buffers; one per task, in task order) ---
// M3ViT's head: LayerNorm, conv_0 3x3 D -> C, conv_1..3 3x3 C -> C (BatchNorm folded into weight
// and bias by the host), conv_4 1x1 C -> out. A direct 3x3 convolution's matrix is [C][9 C_in],
// columns in (ky, kx, c) order (window_reader.h, emit_windows). On a build with head_winograd,
// conv_1..3 (C a multiple of 32) run as Winograd's F(2, 3) along window rows (emit_pairs):
// [4 terms][C][3 C], columns in (ky, c) order, term j's weights for
// taps g0, g1, g2 of one kernel row and channel being 2 g0, g0 + g1 + g2, g0 - g1 + g2 and 2 g2
// (winograd_weight). conv_4 reserves kHeadOutRows rows (tasks' outputs differ, offsets do not);
// its unused rows and biases are zero.
constexpr int kHeadLayers = 5;
constexpr int kHeadOutRows = 64;
constexpr int kHeadWinogradTerms = 4;
// Winograd needs whole pairs of channel words: an input tile (two words) then reads one even and
// one odd word of one pixel (window_reader.h, emit_pairs).
constexpr int kWinogradChannelMultiple = 2 * kWordElems;
inline bool head_layer_winograd(const ModelDims& m, int channels, int layer) {
  return m.head_winograd && layer >= 1 && layer < 4 && channels % kWinogradChannelMultiple == 0;
}
inline int head_terms(const ModelDims& m, int channels, int layer) {
  return head_layer_winograd(m, channels, layer) ? kHeadWinogradTerms : 1;
}
inline int head_in(const ModelDims& m, int channels, int layer) {
  if (head_layer_winograd(m, channels, layer)) return 3 * channels;
  return layer == 0 ? 9 * m.dim : layer < 4 ? 9 * channels : channels;
}
// Matrix rows: C per term (conv_0..3), kHeadOutRows (conv_4).
inline int head_rows(const ModelDims& m, int channels, int layer) {
  return layer < 4 ? head_terms(m, channels, layer) * channels : kHeadOutRows;
}
// Column of a Winograd matrix for kernel row ky and channel c: (ky, channel), as a direct window's
// columns without kx.
inline int winograd_column(int ky, int c, int channels) { return ky * channels + c; }
// Term j's weight from one kernel row's taps g0, g1, g2 (raw integers of wt_t): 2 g0, g0 + g1 + g2,
// g0 - g1 + g2, 2 g2. The host refuses taps whose terms leave wt_t's range.
constexpr long winograd_weight(int term, long g0, long g1, long g2) {
  return term == 0 ? 2 * g0 : term == 1 ? g0 + g1 + g2 : term == 2 ? g0 - g1 + g2 : 2 * g2;
}
inline long head_weights_size(const ModelDims& m, int channels) {
  long n = 0;
  for (int l = 0; l < kHeadLayers; ++l) n += matrix_words(head_rows(m, channels, l), head_in(m, channels, l));
  return n;
}
inline long w_head(const ModelDims& m, int channels, int task, int layer) {
  long off = weights_size(m) + (long)task * head_weights_size(m, channels);
  for (int l = 0; l < kHeadLayers; ++l) {
    if (l >= layer) break;
    off += matrix_words(head_rows(m, channels, l), head_in(m, channels, l));
  }
  return off;
}
// Output channels per pass of a head convolution with K = `in` columns on a MAC array of tin x tout
// lanes whose weight buffer holds max_tiles tiles: the largest multiple of 16 (up to max_channels and
// `out`) whose tiles fit (0: none), and the passes (slices) `out` channels then take. The kernel uses
// its own constants (schedule.h); the host the build record's, to read a sliced map back.
constexpr int kMaxHeadSliceWords = 1024;  // 16,384 channels: beyond any build's maximum
// `terms` matrices of them for a Winograd convolution, each term's tiles of its own.
constexpr int head_slice_channels_for(int out, int in, int terms, int tin, int tout, int max_tiles, int max_channels) {
  int best = 0;
  for (int words = 1; words <= kMaxHeadSliceWords; ++words) {
    const int c = 16 * words;
    if (c > max_channels) break;
    best = c <= out && terms * ((c + tout - 1) / tout) * ((in + tin - 1) / tin) <= max_tiles ? c : best;
  }
  return best;
}
constexpr int head_slices_for(int out, int in, int terms, int tin, int tout, int max_tiles, int max_channels) {
  const int per = head_slice_channels_for(out, in, terms, tin, tout, max_tiles, max_channels);
  return per > 0 ? (out + per - 1) / per : 0;
}

// Words per pixel of each plane of a map stored in `slices` planes (the last may hold fewer).
constexpr int slice_stride_words(int channel_words, int slices) { return (channel_words + slices - 1) / slices; }

inline long head_params_size(const ModelDims& m, int channels) { return 2L * m.dim + 4L * channels + kHeadOutRows; }
inline long p_head_ln(const ModelDims& m, int channels, int task) {  // gamma [D], beta [D]
  return params_size(m) + (long)task * head_params_size(m, channels);
}
inline long p_head_bias(const ModelDims& m, int channels, int task, int layer) {
  return p_head_ln(m, channels, task) + 2L * m.dim + (long)layer * channels;
}
// A head's output per image: [16 h][16 w] pixels of ceil(out / 16) words.
inline long head_output_words(const ModelDims& m, int out_channels) {
  return 256L * m.grid_h * m.grid_w * ((out_channels + 15) / 16);
}
// Both buffers with every task's head (channels 0: none).
inline long model_weights_size(const ModelDims& m, int channels) {
  return weights_size(m) + (channels > 0 ? (long)m.num_tasks * head_weights_size(m, channels) : 0);
}
inline long model_params_size(const ModelDims& m, int channels) {
  return params_size(m) + (channels > 0 ? (long)m.num_tasks * head_params_size(m, channels) : 0);
}

// --- activation buffers (fm_t, per image unless noted) ---

// --- MoE trace (uint32): per image, per MoE layer, [tokens | fc1 fetches | fc2 fetches] x experts ---
inline long trace_size(const ModelDims& m, int images) {
  int n = 0;
  for (int b = 0; b < 32; ++b) n += (b < m.depth && is_moe(m, b)) ? 1 : 0;
  return (long)images * n * 3 * m.experts;
}

}  // namespace edgemoe_hls
