// Number formats of the datapath. Reasons and measurements are in kernels/README.md ("Formats").
#pragma once

#include "hls_types.h"

// Query rows in flight in the attention unit. Part of the numerics, not a board parameter: the row
// in slot s = row mod P sees the keys in the order s, s+1, ..., so P sets the rounding of the online
// softmax. Every build shares it, so `emu` computes each board's bits (tb/board_bits.cpp); boards
// scale attention with EDGEMOE_ATTN_LANES, which only regroups exact sums.
#ifdef EDGEMOE_ATTN_P
#error "EDGEMOE_ATTN_P is shared by every build (formats.h); scale attention with EDGEMOE_ATTN_LANES"
#endif
#define EDGEMOE_ATTN_P 4

namespace edgemoe_hls {

typedef ap_ufixed<8, 0> pixel_t;                  // input pixels k/256 (normalisation folded into patch weights)
typedef ap_fixed<32, 10> fm_t;                    // activations in DDR, biases, norms, pos-embed (LSB 2^-22)
typedef ap_fixed<18, 2> wt_t;                     // every weight matrix, gates included (LSB 2^-16; DSP48E2 B port)
typedef ap_fixed<27, 9, AP_TRN, AP_SAT> mac_in_t;  // MAC activation lane (LSB 2^-18): 27 x 18 = one DSP48E2
typedef ap_fixed<48, 14> acc_t;                   // exact sum of mac_in_t x wt_t products (34 fraction bits)
// The heads' line buffer lanes (window_reader.h): a MAC lane one bit narrower (+-128, LSB 2^-18), so
// that Winograd's transformed inputs d_a +- d_b of conv_1..3 fit a MAC lane (mac_in_t) exactly.
typedef ap_fixed<26, 8, AP_TRN, AP_SAT> line_lane_t;
typedef ap_fixed<24, 8, AP_TRN, AP_SAT> q_t;       // attention's q rows (LSB 2^-16), a product's 27-bit side
// Attention's K and V on chip (LSB 2^-12, rounded to nearest): 18 bits is the DSP48E2 B port, so
// q.k (24 x 18) and p.v (25u x 18) take one DSP48E2 a product, not two (kernels/README.md, Formats).
typedef ap_fixed<18, 6, AP_RND, AP_SAT> kv_t;
typedef ap_fixed<56, 24> score_acc_t;             // exact q.k over a head (<= 256 lanes)
// A q.k lane's sum over a head's chunks (q_t x kv_t products of magnitude <= 2^12, 28 fraction bits):
// exact for fewer than 128 chunks, and 48 bits, so it accumulates in the DSP48E2's P register.
typedef ap_fixed<48, 20> lane_acc_t;
typedef ap_ufixed<22, 0> attn_scale_t;            // 1/sqrt(head dim) < 1 at fm_t's LSB: exact for head dims >= 2
typedef ap_ufixed<25, 1> unit_t;                  // exp(x <= 0) and normalised mantissas, in [0, 2)
typedef ap_ufixed<36, 12> sum_t;                  // softmax running sum (>= 1, < 4096)
typedef ap_fixed<55, 19> pv_acc_t;                // exact sum of p x v (unit_t p <= 1, kv_t) over <= 4096 keys
typedef ap_fixed<39, 10> shifted_sum_t;           // a row's sum p.v shifted by 1/sum's exponent, before its mantissa

// One beat of the weights port: 512 bits holding 28 packed 18-bit weights (layout.h). A plain
// struct of 32-bit parts: an aggregated 512-bit m_axi element under Vitis, the same 64 bytes on the
// host (little-endian, as Vitis lays out wide words).
constexpr int kWeightWordParts = 16;

// One beat of the activation ports (x, xn, qkv, hidden): 16 fm_t, 512 bits. Rows of those buffers
// are whole words (widths, MLP and expert hidden widths are multiples of 16: the host checks).
constexpr int kWordElems = 16;
struct fm_word_t {
  fm_t v[kWordElems];
};
struct weight_word_t {
  unsigned part[kWeightWordParts];
};
// One beat of the images port: 64 pixels (bytes), byte k in bits 8k..8k+7 (little-endian, as the
// host packs them). Images are packed back to back, so one may start inside a word.
constexpr int kPixelsPerWord = 64;
struct pixel_word_t {
  unsigned part[kPixelsPerWord / 4];
};
inline pixel_t pixel_of(const pixel_word_t& word, int k) {
  pixel_t p;
  p.range() = (word.part[k >> 2] >> ((k & 3) * 8)) & 0xFFu;
  return p;
}

}  // namespace edgemoe_hls
