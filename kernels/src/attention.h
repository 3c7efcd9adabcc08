// Multi-head attention with Edge-MoE's reordered schedule: P query rows are resident in P slots;
// slot s takes its next row when the key sweep reaches k = s, so at most one Q block and one K
// (or V) block are read per step whatever P is (constant DDR bandwidth). Each row sees every key
// once, in rotated order. Pass 1 computes the scores and, in the same sweep, the softmax
// statistics with a single-pass (online) max and sum; pass 2 recomputes exp(s - max), accumulates
// p.v, and normalises once per output (1/sum as mantissa and exponent).
#pragma once

#include "fixed_math.h"
#include "layout.h"
#include "schedule.h"

namespace edgemoe_hls {

namespace ledger = edgemoe_ledger;

// The row held by slot s at key step k of row block b; -1 when the slot is idle.
inline int slot_row(int b, int k, int s, int n) {
  const int row = k >= s ? b * kAttnP + s : (b - 1) * kAttnP + s;
  return (row >= 0 && row < n && !(k < s && b == 0)) ? row : -1;
}
// The key sweep of row block b can stop once no row starts in it (only wrapped rows finish).
inline bool sweep_ends(int b, int k, int n) { return k >= n || (b * kAttnP >= n && k >= kAttnP - 1); }
// At key step k of block b, slot k takes row bP + k: the staggered refill.
inline bool slot_refills(int b, int k, int n) { return k < kAttnP && b * kAttnP + k < n; }
// Whether key k is the last one row `slot s` sees (rotated order s, s+1, ..., n-1, 0, ..., s-1).
inline bool slot_row_done(int k, int s, int n) { return s == 0 ? k == n - 1 : k == s - 1; }

// qkv: [n][3D] (q | k | v). scores: [blocks][n][P][H]. info: [n][H][3].
inline void attention_scores(const fm_t* qkv, int n, int dim, int heads, fm_t scale, fm_t* scores, fm_t* info,
                             int head_begin, int head_end) {
  const int hd = dim / heads, blocks = attn_row_blocks(n, kAttnP);
  qkv_t q_slot[kAttnP][EDGEMOE_MAX_DIM];
  qkv_t k_row[EDGEMOE_MAX_DIM];
  fm_t run_max[kAttnP][EDGEMOE_MAX_HEADS];
  sum_t run_sum[kAttnP][EDGEMOE_MAX_HEADS];
#pragma HLS ARRAY_PARTITION variable = q_slot dim = 1 complete
#pragma HLS ARRAY_PARTITION variable = run_max dim = 1 complete
#pragma HLS ARRAY_PARTITION variable = run_sum dim = 1 complete
row_blocks:
  for (int b = 0; b < EDGEMOE_MAX_TOKENS + kAttnP; ++b) {
    if (b >= blocks) break;
  keys:
    for (int k = 0; k < EDGEMOE_MAX_TOKENS; ++k) {
      if (sweep_ends(b, k, n)) break;
      const int dims = (head_end - head_begin) * hd, nheads = head_end - head_begin;
      if (slot_refills(b, k, n)) {
        ledger::loop(ledger::kUnitAttnScores, dims, kII, kCopyDepth, ledger::kPortScratch1, dims * beat_bytes<fm_t>(),
                     beat_bytes<fm_t>());
      load_q:
        for (int d = head_begin * hd; d < upto<EDGEMOE_MAX_DIM>(head_end * hd); ++d) {
#pragma HLS PIPELINE II = kII
          q_slot[k][d] = qkv[(long)(b * kAttnP + k) * 3 * dim + d];
        }
      }
      ledger::loop(ledger::kUnitAttnScores, dims, kII, kCopyDepth, ledger::kPortScratch1, dims * beat_bytes<fm_t>(),
                   beat_bytes<fm_t>());
    load_k:  // the dims of this call's heads (all heads on hardware)
      for (int d = head_begin * hd; d < upto<EDGEMOE_MAX_DIM>(head_end * hd); ++d) {
#pragma HLS PIPELINE II = kII
        k_row[d] = qkv[(long)k * 3 * dim + dim + d];
      }
    slots:
      for (int s = 0; s < kAttnP; ++s) {
#pragma HLS UNROLL
        const int row = slot_row(b, k, s, n);
        fm_t score[EDGEMOE_MAX_HEADS];
        if (row >= 0) {
          ledger::loop(ledger::kUnitAttnScores, (long long)(hd / kAttnLanes) * nheads, kAttnDotII, kAttnDotDepth,
                       ledger::kNoPort, 0, 1, dims, kAttnLanes);
          // q.k for every head: one accumulator per (head, lane), summed at the end (wrapping adds
          // are associative, so this equals a serial sum bit for bit).
          score_acc_t lane[EDGEMOE_MAX_HEADS][kAttnLanes];
#pragma HLS ARRAY_PARTITION variable = lane complete dim = 2
          for (int h = head_begin; h < upto<EDGEMOE_MAX_HEADS>(head_end); ++h)
            for (int l = 0; l < kAttnLanes; ++l) lane[h][l] = 0;
        dot:
          for (int c = 0; c < upto<EDGEMOE_MAX_DIM / kAttnLanes>(hd / kAttnLanes); ++c) {
            for (int h = head_begin; h < upto<EDGEMOE_MAX_HEADS>(head_end); ++h) {
#pragma HLS PIPELINE II = kAttnDotII
              for (int l = 0; l < kAttnLanes; ++l) {
                const int d = h * hd + c * kAttnLanes + l;
                lane[h][l] += q_slot[s][d] * k_row[d];
              }
            }
          }
          for (int h = head_begin; h < upto<EDGEMOE_MAX_HEADS>(head_end); ++h) {
            score_acc_t acc = 0;
            for (int l = 0; l < kAttnLanes; ++l) acc += lane[h][l];
            score[h] = fm_t(acc) * scale;
          }
        }
        // Rolled: per head a lane reduction, the online-softmax update and a DDR write of the score
        // (and of the row's softmax info after its last key).
        ledger::loop(ledger::kUnitAttnScores, nheads, kAttnLanes + kAttnSoftmaxCycles, 0, ledger::kPortScratch2,
                     (long long)nheads * (row >= 0 && slot_row_done(k, s, n) ? 1 + kSoftmaxInfoWords : 1) *
                         beat_bytes<fm_t>(),
                     beat_bytes<fm_t>());
      heads_loop:
        for (int h = head_begin; h < upto<EDGEMOE_MAX_HEADS>(head_end); ++h) {
#pragma HLS LOOP_TRIPCOUNT max = EDGEMOE_MAX_HEADS
          if (row >= 0) {
            if (k == s) {  // the row's first key
              run_max[s][h] = score[h];
              run_sum[s][h] = 1;
            } else if (score[h] > run_max[s][h]) {
              run_sum[s][h] = run_sum[s][h] * exp_nonpositive(run_max[s][h] - score[h]) + ap_ufixed<1, 1>(1);
              run_max[s][h] = score[h];
            } else {
              run_sum[s][h] = run_sum[s][h] + exp_nonpositive(score[h] - run_max[s][h]);
            }
            if (slot_row_done(k, s, n)) {
              unit_t mant;
              int exp2;
              reciprocal(run_sum[s][h], mant, exp2);
              fm_t* out = info + ((long)row * heads + h) * kSoftmaxInfoWords;
              out[0] = run_max[s][h];
              out[1] = mant;
              out[2] = exp2;
            }
          }
          scores[(((long)b * n + k) * kAttnP + s) * heads + h] = row >= 0 ? score[h] : fm_t(0);
        }
      }
    }
  }
}

inline void attention_values(const fm_t* qkv, const fm_t* scores, const fm_t* info, int n, int dim, int heads,
                             fm_t* out, int head_begin, int head_end) {
  const int hd = dim / heads, blocks = attn_row_blocks(n, kAttnP);
  qkv_t v_row[EDGEMOE_MAX_DIM];
  pv_acc_t acc[kAttnP][EDGEMOE_MAX_DIM];
  fm_t row_max[kAttnP][EDGEMOE_MAX_HEADS];
  unit_t row_mant[kAttnP][EDGEMOE_MAX_HEADS];
  int row_exp[kAttnP][EDGEMOE_MAX_HEADS];
#pragma HLS ARRAY_PARTITION variable = acc dim = 1 complete
row_blocks:
  for (int b = 0; b < EDGEMOE_MAX_TOKENS + kAttnP; ++b) {
    if (b >= blocks) break;
  keys:
    for (int k = 0; k < EDGEMOE_MAX_TOKENS; ++k) {
      if (sweep_ends(b, k, n)) break;
      const int dims = (head_end - head_begin) * hd, nheads = head_end - head_begin;
      if (slot_refills(b, k, n)) {
        const int row = b * kAttnP + k;
        // Rolled: three dependent DDR reads per head, each waiting the port's read latency.
        ledger::loop(ledger::kUnitAttnValues, nheads, kSoftmaxInfoWords * kAxiReadLatency, 0, ledger::kPortScratch2,
                     (long long)nheads * kSoftmaxInfoWords * beat_bytes<fm_t>(), beat_bytes<fm_t>());
      load_info:
        for (int h = head_begin; h < upto<EDGEMOE_MAX_HEADS>(head_end); ++h) {
          const fm_t* in = info + ((long)row * heads + h) * kSoftmaxInfoWords;
          row_max[k][h] = in[0];
          row_mant[k][h] = in[1];
          row_exp[k][h] = in[2].to_int();
        }
        ledger::loop(ledger::kUnitAttnValues, dims, kII, 1);
      clear:
        for (int d = head_begin * hd; d < upto<EDGEMOE_MAX_DIM>(head_end * hd); ++d) acc[k][d] = 0;
      }
      ledger::loop(ledger::kUnitAttnValues, dims, kII, kCopyDepth, ledger::kPortScratch1, dims * beat_bytes<fm_t>(),
                   beat_bytes<fm_t>());
    load_v:  // the dims of this call's heads (all heads on hardware)
      for (int d = head_begin * hd; d < upto<EDGEMOE_MAX_DIM>(head_end * hd); ++d) {
#pragma HLS PIPELINE II = kII
        v_row[d] = qkv[(long)k * 3 * dim + 2 * dim + d];
      }
    slots:
      for (int s = 0; s < kAttnP; ++s) {
#pragma HLS UNROLL
        const int row = slot_row(b, k, s, n);
        if (row < 0) continue;
        // Per head: a dependent DDR read of the score and an exp (rolled), then the p.v loop.
        ledger::loop(ledger::kUnitAttnValues, nheads, kAxiReadLatency + kExpDepth, 0, ledger::kPortScratch2,
                     (long long)nheads * beat_bytes<fm_t>(), beat_bytes<fm_t>());
        ledger::loop(ledger::kUnitAttnValues, (long long)nheads * (hd / kAttnLanes), kAttnAccumulateII,
                     nheads * kMacDepth, ledger::kNoPort, 0, 1, dims, kAttnLanes);
      heads_loop:
        for (int h = head_begin; h < upto<EDGEMOE_MAX_HEADS>(head_end); ++h) {
          const fm_t score = scores[(((long)b * n + k) * kAttnP + s) * heads + h];
          const unit_t p = exp_nonpositive(score - row_max[s][h]);
        accumulate:
          for (int d = 0; d < upto<EDGEMOE_MAX_DIM>(hd); ++d) {
#pragma HLS PIPELINE II = kAttnAccumulateII
            _Pragma(EDGEMOE_STR(HLS UNROLL factor = EDGEMOE_ATTN_LANES))
            acc[s][h * hd + d] += p * v_row[h * hd + d];  // elementwise over d: vectorises as is
          }
        }
        if (slot_row_done(k, s, n)) {
          ledger::loop(ledger::kUnitAttnValues, dims, kII, kMacDepth + 2, ledger::kPortScratch0,
                       dims * beat_bytes<fm_t>(), beat_bytes<fm_t>());
        emit:
          for (int d = head_begin * hd; d < upto<EDGEMOE_MAX_DIM>(head_end * hd); ++d) {
#pragma HLS PIPELINE II = kII
            const int h = d / hd;
            // sum p.v / sum p = (acc >> e) * mant, with 2^e <= sum < 2^(e+1)
            const ap_fixed<39, 10> scaled = acc[s][d] >> row_exp[s][h];
            out[(long)row * dim + d] = fm_t(scaled * row_mant[s][h]);
          }
        }
      }
    }
  }
}

// Both passes over all heads. In emulation the heads are split over two threads: heads share
// nothing but the (read-only) q, k, v rows, so each half computes exactly what it would alone
// (not while the cycle ledger counts, which must see the one run the hardware makes).
inline void run_attention(const fm_t* qkv, fm_t* scores, fm_t* info, int n, int dim, int heads, fm_t scale,
                          fm_t* out) {
#ifdef EDGEMOE_EMU_PARALLEL
  if (heads >= 2 && !edgemoe_ledger::attached()) {
    const int half = heads / 2;
#pragma omp parallel sections num_threads(2)
    {
#pragma omp section
      {
        attention_scores(qkv, n, dim, heads, scale, scores, info, 0, half);
        attention_values(qkv, scores, info, n, dim, heads, out, 0, half);
      }
#pragma omp section
      {
        attention_scores(qkv, n, dim, heads, scale, scores, info, half, heads);
        attention_values(qkv, scores, info, n, dim, heads, out, half, heads);
      }
    }
    return;
  }
#endif
  attention_scores(qkv, n, dim, heads, scale, scores, info, 0, heads);
  attention_values(qkv, scores, info, n, dim, heads, out, 0, heads);
}

}  // namespace edgemoe_hls
