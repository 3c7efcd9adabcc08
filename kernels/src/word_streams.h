// Bursts between a buffer of packed activation rows and a stream of its 512-bit words: the read
// and write processes of the dataflow regions that move whole rows in order (LayerNorm, the gate's
// reader, the position embedding). Address i, unconditional, the loop's own bound: one burst.
#pragma once

#include "schedule.h"

namespace edgemoe_hls {

// kMaxWords: the loop's static bound (default: a model-width row per token).
constexpr int kMaxTokenRowsWords = EDGEMOE_MAX_TOKENS * kMaxDimWords;
template <int kMaxWords = kMaxTokenRowsWords>
inline void burst_words_in(const fm_word_t* src, int total, edgemoe_ledger::Unit unit, edgemoe_ledger::Port port,
                           hls::stream<fm_word_t>& words) {
#pragma HLS INLINE
  edgemoe_ledger::loop(unit, total, kII, kCopyDepth, edgemoe_ledger::burst(port),
                       (long long)total * beat_bytes<fm_word_t>(), beat_bytes<fm_word_t>());
burst_words_in:
  for (int i = 0; i < upto<kMaxWords>(total); ++i) {
#pragma HLS PIPELINE II = kII
#pragma HLS LOOP_TRIPCOUNT max = kMaxWords
    words.write(src[i]);
  }
}

template <int kMaxWords = kMaxTokenRowsWords>
inline void burst_words_out(fm_word_t* dst, int total, edgemoe_ledger::Unit unit, edgemoe_ledger::Port port,
                            hls::stream<fm_word_t>& words) {
#pragma HLS INLINE
  edgemoe_ledger::loop(unit, total, kII, kCopyDepth, edgemoe_ledger::burst(port),
                       (long long)total * beat_bytes<fm_word_t>(), beat_bytes<fm_word_t>());
burst_words_out:
  for (int i = 0; i < upto<kMaxWords>(total); ++i) {
#pragma HLS PIPELINE II = kII
#pragma HLS LOOP_TRIPCOUNT max = kMaxWords
    dst[i] = words.read();
  }
}

}  // namespace edgemoe_hls
