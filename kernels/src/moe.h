// The MoE layer: the task's gate (softmax over all experts, top-k without renormalisation, ties to
// the lower index) fills per-expert token queues ("patch reordering"); then each *active* expert's
// fc1 and fc2 are fetched once into the ping/pong weight buffers (the next expert's fc1 is fetched
// while this expert's fc2 runs) and the unified linear unit runs over just its queue, gathering
// tokens in and scattering score-weighted results into the residual stream.
#pragma once

#include "layout.h"
#include "linear.h"
#include "word_streams.h"

namespace edgemoe_hls {

struct ExpertQueues {
  short token[EDGEMOE_MAX_EXPERTS][EDGEMOE_MAX_TOKENS];
  unit_t score[EDGEMOE_MAX_EXPERTS][EDGEMOE_MAX_TOKENS];
  int length[EDGEMOE_MAX_EXPERTS];
};

// The gate's per-token tail, unrolled inside route_tokens' pipeline: the softmax over all experts
// and k passes of an E-wide arg-max (the lower index wins ties); pick[j] is the j-th choice (only the
// host's replay reads it). One definition for the kernel and for gate_token, so a trace reports
// exactly these bits.
inline void gate_softmax_top_k(const acc_t logit_acc[EDGEMOE_MAX_EXPERTS], int experts, int top_k,
                               unit_t prob[EDGEMOE_MAX_EXPERTS], bool taken[EDGEMOE_MAX_EXPERTS],
                               int pick[EDGEMOE_MAX_TOP_K]) {
#pragma HLS INLINE
  fm_t logit[EDGEMOE_MAX_EXPERTS];
  fm_t max_logit = logit_acc[0];
  for (int e = 0; e < EDGEMOE_MAX_EXPERTS; ++e) {
    if (e >= experts) break;
    logit[e] = logit_acc[e];
    if (logit[e] > max_logit) max_logit = logit[e];
  }
  unit_t num[EDGEMOE_MAX_EXPERTS];
  sum_t total = 0;
  for (int e = 0; e < EDGEMOE_MAX_EXPERTS; ++e) {
    if (e >= experts) break;
    num[e] = exp_nonpositive(logit[e] - max_logit);
    total = total + num[e];
  }
  unit_t mant;
  int exp2;
  reciprocal(total, mant, exp2);
  for (int e = 0; e < EDGEMOE_MAX_EXPERTS; ++e) {
    if (e >= experts) break;
    prob[e] = unit_t(num[e] * mant) >> exp2;  // softmax over all experts
    taken[e] = false;
  }
  for (int j = 0; j < EDGEMOE_MAX_TOP_K; ++j) {
    if (j >= top_k) break;
    int best = -1;
    for (int e = 0; e < EDGEMOE_MAX_EXPERTS; ++e) {
      if (e >= experts) break;
      if (!taken[e] && (best < 0 || prob[e] > prob[best])) best = e;
    }
    taken[best] = true;
    pick[j] = best;
  }
}

#ifndef __SYNTHESIS__
// Not hardware: the host's replay of route_tokens for one token, for traces (the device keeps no
// probabilities). token: [dim] as the kernel read it from xn; gate: [experts][dim]. The logits are
// the gate's exact sums (any order gives the same acc_t bits), then the same tail.
inline void gate_token(const fm_t* token, const wt_t* gate, const fm_t* bias, int dim, int experts, int top_k,
                       unit_t prob[EDGEMOE_MAX_EXPERTS], int pick[EDGEMOE_MAX_TOP_K]) {
  acc_t logit_acc[EDGEMOE_MAX_EXPERTS];
  for (int e = 0; e < EDGEMOE_MAX_EXPERTS; ++e) {
    if (e >= experts) break;
    logit_acc[e] = acc_t(bias[e]);
    for (int d = 0; d < EDGEMOE_MAX_DIM; ++d) {
      if (d >= dim) break;
      logit_acc[e] += mac_in_t(token[d]) * gate[(long)e * dim + d];
    }
  }
  bool taken[EDGEMOE_MAX_EXPERTS];
  gate_softmax_top_k(logit_acc, experts, top_k, prob, taken, pick);
}
#endif

// xn's rows as one burst (rows are packed), for the gate.
inline void read_gate_words(const fm_word_t* xn, int n, int dim, hls::stream<fm_word_t>& words) {
#pragma HLS INLINE off
  edgemoe_ledger::region_process(0);
  burst_words_in(xn, n * (dim / kWordElems), edgemoe_ledger::kUnitGate, edgemoe_ledger::kPortScratch0, words);
}

// The gate's MAC loop and per-token tail (route_tokens' schedule), taking a word of xn from the
// stream every kWordElems / kGateFeatures chunks.
inline void score_tokens(const wt_t gate[EDGEMOE_MAX_EXPERTS][EDGEMOE_MAX_DIM / kGateFeatures][kGateFeatures],
                         const fm_t gate_bias[EDGEMOE_MAX_EXPERTS], int n, int dim, int experts, int top_k,
                         hls::stream<fm_word_t>& words, ExpertQueues& q) {
#pragma HLS INLINE off
  namespace ledger = edgemoe_ledger;
  static_assert(kWordElems % kGateFeatures == 0, "a gate chunk lies inside one activation word");
  const int chunks = dim / kGateFeatures;  // dim is whole words, so whole chunks
  ledger::region_process(1);
  ledger::loop(ledger::kUnitGate, (long long)n * chunks, kII, kGateDepth + kGateTailDepth, ledger::kNoPort, 0, 1,
               (long long)n * dim * experts, kGateLanes);
  acc_t logit_acc[EDGEMOE_MAX_EXPERTS];
#pragma HLS ARRAY_PARTITION variable = logit_acc complete
  fm_word_t token_word;  // a word read every kWordElems / kGateFeatures chunks
  int t = 0, c = 0;
gate_steps:
  for (int step = 0; step < upto<EDGEMOE_MAX_TOKENS * (EDGEMOE_MAX_DIM / kGateFeatures)>(n * chunks); ++step) {
#pragma HLS PIPELINE II = kII
#pragma HLS LOOP_TRIPCOUNT max = EDGEMOE_MAX_TOKENS * (EDGEMOE_MAX_DIM / kGateFeatures)
    const int d0 = c * kGateFeatures;
    if (d0 % kWordElems == 0) token_word = words.read();
    for (int e = 0; e < EDGEMOE_MAX_EXPERTS; ++e) {
      // The chunk's F products summed first (an adder tree, exact), then one add into the
      // accumulator: the only loop-carried operation is that one add.
      acc_t chunk_sum = 0;
      for (int f = 0; f < kGateFeatures; ++f) chunk_sum += mac_in_t(token_word.v[(d0 + f) % kWordElems]) * gate[e][c][f];
      logit_acc[e] = (c == 0 ? acc_t(gate_bias[e]) : logit_acc[e]) + chunk_sum;
    }
    if (c == chunks - 1) {  // the token's softmax over all experts and its top-k
      unit_t prob[EDGEMOE_MAX_EXPERTS];
      bool taken[EDGEMOE_MAX_EXPERTS];
      int pick[EDGEMOE_MAX_TOP_K];
      gate_softmax_top_k(logit_acc, experts, top_k, prob, taken, pick);
      // Each chosen expert's queue gets the token: one write per expert bank, at its own length
      // (the same queues as appending in pick order: every queue is in token order either way).
      for (int e = 0; e < EDGEMOE_MAX_EXPERTS; ++e) {
        if (e >= experts) break;
        if (!taken[e]) continue;
        const int slot = q.length[e];
        q.token[e][slot] = short(t);
        q.score[e][slot] = prob[e];  // not renormalised over the top-k
        q.length[e] = slot + 1;
      }
    }
    if (++c == chunks) {
      c = 0;
      ++t;
    }
  }
}

// Canonical dataflow: xn's words (a burst) -> the gate; the queues have one writer.
inline void score_tokens_from(const fm_word_t* xn,
                              const wt_t gate[EDGEMOE_MAX_EXPERTS][EDGEMOE_MAX_DIM / kGateFeatures][kGateFeatures],
                              const fm_t gate_bias[EDGEMOE_MAX_EXPERTS], int n, int dim, int experts, int top_k,
                              ExpertQueues& q) {
#pragma HLS INLINE off
#pragma HLS DATAFLOW
  hls::stream<fm_word_t> words("gate_words");
#pragma HLS STREAM variable = words depth = 4
  edgemoe_ledger::region_begin();
  read_gate_words(xn, n, dim, words);
  score_tokens(gate, gate_bias, n, dim, experts, top_k, words, q);
  edgemoe_ledger::region_end(edgemoe_ledger::kUnitGate);
}

// xn: [n][D] normalised tokens; gate: [E][D] of this task; gate_bias: [E].
// Schedule: one flattened loop over (token, chunk of kGateFeatures features) at II = 1. The gate's
// matrix is partitioned by expert and by feature lane (d mod kGateFeatures), so each step reads one
// element of each of the E x kGateFeatures banks and accumulates E logits (an adder tree into each
// expert's accumulator, reset on the token's first chunk). On the token's last chunk the same
// iteration runs the softmax and top-k fully unrolled (E exp units, a max and a sum tree, one 1/x,
// k passes of an E-wide arg-max), deep but not loop-carried: only the E queue lengths carry from
// token to token, incremented in registers; the k queue appends go to k different experts' banks
// (the queues are partitioned by expert at the kernel top). Bits: the same operations in the same order as a
// rolled loop (the logit sums are exact).
inline void route_tokens(const fm_word_t* xn, int n, int dim, const weight_word_t* weights, const weight_word_t* weights_odd,
                         long gate_offset, const fm_t* gate_bias_ddr, int experts, int top_k, ExpertQueues& q) {
  namespace ledger = edgemoe_ledger;
  wt_t gate[EDGEMOE_MAX_EXPERTS][EDGEMOE_MAX_DIM / kGateFeatures][kGateFeatures];
  fm_t gate_bias[EDGEMOE_MAX_EXPERTS];
#pragma HLS ARRAY_PARTITION variable = gate dim = 1 complete
#pragma HLS ARRAY_PARTITION variable = gate dim = 3 complete
#pragma HLS BIND_STORAGE variable = gate type = ram_2p impl = lutram
#pragma HLS ARRAY_PARTITION variable = gate_bias complete
load_gate:
  for (int e = 0; e < EDGEMOE_MAX_EXPERTS; ++e) {
    if (e >= experts) break;
    gate_bias[e] = gate_bias_ddr[e];
    q.length[e] = 0;
    // One weight per cycle into bank (e, d mod kGateFeatures): a word is read every 28 cycles, from
    // the port that holds it (layout.h: word w on port w & 1).
    const int row_words = int(words_per_row(dim));
    long next = gate_offset + (long)e * row_words;
    const long odd_words = (next + row_words) / 2 - (next + 1) / 2;  // of the row's words, those on port 1
    ledger::loop(ledger::kUnitGate, dim, kII, kCopyDepth, ledger::single_beat(ledger::kPortWeights),
                 (long long)(row_words - odd_words) * beat_bytes<weight_word_t>(), beat_bytes<weight_word_t>(), 0, 0,
                 ledger::single_beat(ledger::kPortWeightsOdd), (long long)odd_words * beat_bytes<weight_word_t>(),
                 beat_bytes<weight_word_t>());
    weight_word_t word = next & 1 ? weights_odd[next >> 1] : weights[next >> 1];
    ++next;
    int lane = 0;
  load_gate_row:
    for (int d = 0; d < EDGEMOE_MAX_DIM; ++d) {
#pragma HLS PIPELINE II = kII
      if (d >= dim) break;
      gate[e][d / kGateFeatures][d % kGateFeatures] = weight_lane(word, lane);
      if (++lane == kWeightsPerWord && d + 1 < dim) {
        lane = 0;
        word = next & 1 ? weights_odd[next >> 1] : weights[next >> 1];
        ++next;
      }
    }
  }
  score_tokens_from(xn, gate, gate_bias, n, dim, experts, top_k, q);
}

// `count` words of `values` to `dst`: one burst (affine, unconditional, the loop's own bound).
inline void write_trace_words(ap_uint<32>* dst, const int values[EDGEMOE_MAX_EXPERTS], int count) {
#pragma HLS INLINE
  edgemoe_ledger::loop(edgemoe_ledger::kUnitTrace, count, kII, kCopyDepth, edgemoe_ledger::burst(edgemoe_ledger::kPortParams),
                       count * 4LL, 4);
write_trace_words:
  for (int e = 0; e < upto<EDGEMOE_MAX_EXPERTS>(count); ++e) {
#pragma HLS PIPELINE II = kII
#pragma HLS LOOP_TRIPCOUNT max = EDGEMOE_MAX_EXPERTS
    dst[e] = values[e];
  }
}

// One MoE layer on one image: x [n][D] += sum_k score * expert(xn). hidden: [n][Hm] scratch.
// trace (per expert): [tokens | fc1 fetches | fc2 fetches].
inline void moe_layer(const pixel_word_t* images, fm_word_t* x, const fm_word_t* xn, fm_word_t* qkv, fm_word_t* hidden, int n,
                      const ModelDims& m,
                      int block, int task,
                      const weight_word_t* weights, const weight_word_t* weights_odd, const fm_t* params,
                      WeightBuffer& ping, WeightBuffer& pong, ExpertQueues& queues, LineBuffer& lb,
                      ap_uint<32>* trace) {
#pragma HLS INLINE
  route_tokens(xn, n, m.dim, weights, weights_odd, w_gate(m, block, task), params + p_gate_bias(m, block, task),
               m.experts, m.top_k, queues);
  int fc1_fetches[EDGEMOE_MAX_EXPERTS], fc2_fetches[EDGEMOE_MAX_EXPERTS];
  int active[EDGEMOE_MAX_EXPERTS];
  int num_active = 0;
list_active:
  for (int e = 0; e < EDGEMOE_MAX_EXPERTS; ++e) {
    if (e >= m.experts) break;
    fc1_fetches[e] = fc2_fetches[e] = 0;
    if (queues.length[e] > 0) active[num_active++] = e;
  }
  const int Hm = m.expert_hidden, D = m.dim;
  if (num_active > 0) {
    step_on(ping, pong, kPong, no_linear_job(), images, x, xn, qkv, hidden, queues.token, queues.score, weights,
            weights_odd, params, w_expert_fc1(m, block, active[0]), p_expert_bias1(m, block, active[0]), Hm, D, lb);
    ++fc1_fetches[active[0]];
  }
experts_loop:
  for (int j = 0; j < EDGEMOE_MAX_EXPERTS; ++j) {
    if (j >= num_active) break;
    const int e = active[j];
    LinearJob up = {0, queues.length[e], kReadGather, kFromXn, e, 0, 0, 0, 0, kWriteStore, kToHidden, 0, true,
                    edgemoe_ledger::kUnitExpertFc1, edgemoe_ledger::kPortScratch0, edgemoe_ledger::kPortScratch2, no_window(), false};
    // fc1 over the queue, then fc2 is fetched; fc2 over the queue, then the next expert's fc1
    step_on(ping, pong, kPing, up, images, x, xn, qkv, hidden, queues.token, queues.score, weights, weights_odd, params,
            w_expert_fc2(m, block, e), p_expert_bias2(m, block, e), D, Hm, lb);
    ++fc2_fetches[e];
    LinearJob down = {0, queues.length[e], kReadRows, kFromHidden, e, 0, 0, 0, 0, kWriteScatterWeighted, kToX, 0, false, edgemoe_ledger::kUnitExpertFc2, edgemoe_ledger::kPortScratch2, edgemoe_ledger::kPortAct, no_window(), false};
    const bool more = j + 1 < num_active;
    const int next = more ? active[j + 1] : e;
    step_on(ping, pong, kPong, down, images, x, xn, qkv, hidden, queues.token, queues.score, weights, weights_odd,
            params, w_expert_fc1(m, block, next), p_expert_bias1(m, block, next), more ? Hm : 0, D, lb);
    if (more) ++fc1_fetches[next];
  }
  // Three bursts of E words: token counts, fc1 fetches, fc2 fetches.
  write_trace_words(trace, queues.length, m.experts);
  write_trace_words(trace + m.experts, fc1_fetches, m.experts);
  write_trace_words(trace + 2 * m.experts, fc2_fetches, m.experts);
}

}  // namespace edgemoe_hls
