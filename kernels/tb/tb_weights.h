// Testbench helpers for the packed weight format (kernels/src/layout.h: rows of 512-bit words).
#pragma once

#include <vector>

#include "src/layout.h"

namespace tb {

// A row-major [out][in] matrix of wt_t, packed as the kernel reads it.
inline std::vector<edgemoe_hls::weight_word_t> pack(const std::vector<edgemoe_hls::wt_t>& w, int out, int in) {
  using namespace edgemoe_hls;
  std::vector<weight_word_t> words(size_t(matrix_words(out, in)), weight_word_t{});
  for (int r = 0; r < out; ++r)
    for (int c = 0; c < in; ++c)
      set_weight_lane(words[size_t(weight_word_index(0, in, r, c))], c % kWeightsPerWord, w[size_t(r) * in + c]);
  return words;
}

// Element (r, c) of the matrix starting at word `at`.
// Lane `lane` of a packed word, read bit by bit from the format's definition (kernels/src/layout.h:
// lane l is bits [18 l, 18 l + 18) of the 512-bit word, part p holding bits [32 p, 32 p + 32)),
// not through the kernel's weight_lane: the golden models must not share a read-side packing bug.
inline edgemoe_hls::wt_t unpack_lane(const edgemoe_hls::weight_word_t& w, int lane) {
  unsigned long long bits = 0;
  for (int b = 0; b < edgemoe_hls::kWeightBits; ++b) {
    const int at = lane * edgemoe_hls::kWeightBits + b;
    bits |= (unsigned long long)((w.part[at / 32] >> (at % 32)) & 1u) << b;
  }
  edgemoe_hls::wt_t v;
  v.range() = bits;
  return v;
}

inline edgemoe_hls::wt_t weight_at(const std::vector<edgemoe_hls::weight_word_t>& words, long at, int in, int r, int c) {
  return unpack_lane(words[size_t(edgemoe_hls::weight_word_index(at, in, r, c))], c % edgemoe_hls::kWeightsPerWord);
}
inline void set_weight_at(std::vector<edgemoe_hls::weight_word_t>& words, long at, int in, int r, int c,
                          edgemoe_hls::wt_t v) {
  edgemoe_hls::set_weight_lane(words[size_t(edgemoe_hls::weight_word_index(at, in, r, c))],
                               c % edgemoe_hls::kWeightsPerWord, v);
}

// A weights buffer split over the kernel's two weight ports (layout.h: word w is word w >> 1 of
// port w & 1).
struct WeightPorts {
  std::vector<edgemoe_hls::weight_word_t> even, odd;
};
inline WeightPorts split_ports(const std::vector<edgemoe_hls::weight_word_t>& words) {
  WeightPorts p;
  for (size_t w = 0; w < words.size(); ++w) (w & 1 ? p.odd : p.even).push_back(words[w]);
  if (p.odd.size() < p.even.size()) p.odd.push_back(edgemoe_hls::weight_word_t{});  // a matrix's padding word
  return p;
}

// A vector of fm_t seen as the kernel's 512-bit activation words (16 fm_t each, same bytes).
// Images as the kernel's images port takes them: bytes packed 64 to a word (formats.h), the last
// word padded with zeros, as the host pads its buffer.
inline std::vector<edgemoe_hls::pixel_word_t> pixel_words(const std::vector<edgemoe_hls::pixel_t>& pixels) {
  std::vector<edgemoe_hls::pixel_word_t> out((pixels.size() + edgemoe_hls::kPixelsPerWord - 1) / edgemoe_hls::kPixelsPerWord);
  for (auto& w : out)
    for (unsigned& part : w.part) part = 0;
  for (size_t k = 0; k < pixels.size(); ++k)
    out[k / edgemoe_hls::kPixelsPerWord].part[(k % edgemoe_hls::kPixelsPerWord) / 4] |=
        unsigned(pixels[k].range()) << (8 * (k % 4));
  return out;
}
inline edgemoe_hls::fm_word_t* words(std::vector<edgemoe_hls::fm_t>& v) {
  return reinterpret_cast<edgemoe_hls::fm_word_t*>(v.data());
}
inline const edgemoe_hls::fm_word_t* words(const std::vector<edgemoe_hls::fm_t>& v) {
  return reinterpret_cast<const edgemoe_hls::fm_word_t*>(v.data());
}

// A weights buffer packed with every head in direct layout (m.head_winograd false) re-packed as a
// build with Winograd heads takes it (layout.h: conv_1..3 as four terms of the same taps), so that
// one set of drawn weights feeds every build.
inline std::vector<edgemoe_hls::weight_word_t> winograd_heads(const std::vector<edgemoe_hls::weight_word_t>& direct,
                                                              edgemoe_hls::ModelDims m, int channels) {
  using namespace edgemoe_hls;
  ModelDims md = m, mw = m;
  md.head_winograd = false;
  mw.head_winograd = true;
  std::vector<weight_word_t> out(size_t(model_weights_size(mw, channels)), weight_word_t{});
  std::copy(direct.begin(), direct.begin() + weights_size(m), out.begin());
  for (int t = 0; t < m.num_tasks; ++t)
    for (int l = 0; l < kHeadLayers; ++l) {
      const long from = w_head(md, channels, t, l), to = w_head(mw, channels, t, l);
      const int in = head_in(md, channels, l);
      if (!head_layer_winograd(mw, channels, l)) {
        std::copy(direct.begin() + from, direct.begin() + from + matrix_words(head_rows(md, channels, l), in),
                  out.begin() + to);
        continue;
      }
      const int cin = l == 0 ? m.dim : channels, win = head_in(mw, channels, l);
      for (int o = 0; o < channels; ++o)
        for (int c = 0; c < cin; ++c)
          for (int ky = 0; ky < 3; ++ky) {
            long g[3];
            for (int kx = 0; kx < 3; ++kx) g[kx] = weight_at(direct, from, in, o, (ky * 3 + kx) * cin + c).raw();
            for (int j = 0; j < kHeadWinogradTerms; ++j) {
              const long raw = winograd_weight(j, g[0], g[1], g[2]);
              if (raw < -(1L << (wt_t::width - 1)) || raw >= (1L << (wt_t::width - 1))) return {};  // no fit: none
              wt_t v;
              v.V = raw;
              set_weight_at(out, to, win, j * channels + o, winograd_column(ky, c, cin), v);
            }
          }
    }
  return out;
}

}  // namespace tb
