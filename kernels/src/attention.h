// Multi-head attention with Edge-MoE's reordered schedule and a single-pass softmax, all on chip.
//
// K and V of every token are loaded once per layer into on-chip buffers (BRAM, URAM on the U280),
// so no key is re-read from DDR; nothing but q, k, v in and the output out crosses the memory port.
// Rows run in blocks of P (one row per slot); in its block's key sweep, slot s sees the keys in the
// rotated order s, s+1, ..., n-1, 0, ..., s-1 (P is part of the numerics, formats.h), and all slots
// read the same key row at each step. Pass 1 computes q.k and, in the same sweep, each row's
// online max and sum; its max, and 1/sum as mantissa and exponent, stay on chip (`RowSoftmax`).
// Pass 2 recomputes q.k (the same exact integer sums, so the same scores: no score scratch in DDR),
// takes p = exp(s - max) and accumulates p.v exactly; each finished output chunk is normalised
// once (shift by the exponent, multiply by the mantissa) into an on-chip row buffer that is
// written out in one burst at the end.
//
// Schedule (kernels/README.md, "Schedules"): each sweep is one pipelined loop over (key step,
// head, lane chunk) at II = 1. Per iteration every slot multiplies kAttnLanes elements of its q
// row with kAttnLanes elements of one k row: q, k, v and the accumulators are partitioned
// cyclically by kAttnLanes along the feature dimension, and q and the accumulators by slot, so
// each bank is read once (the accumulators read and written once: two ports). A row's running
// max and sum are updated once per key and head; the steps per key are padded to
// kSoftmaxRecurrence, so two dependent updates are always that many cycles apart (DEPENDENCE
// distance below) and the exp-compare-multiply chain fits. Pass 2 accumulates the p.v of key
// step j - 1 while it computes the scores of step j (p is ready only after the last chunk).
#pragma once

#include "fixed_math.h"
#include "layout.h"
#include "schedule.h"

namespace edgemoe_hls {

// One row and head's softmax statistics after pass 1: the max score and 1/sum = mant * 2^-exp2.
struct RowSoftmax {
  fm_t max;
  unit_t mant;
  int exp2;
};
typedef RowSoftmax SoftmaxTable[EDGEMOE_MAX_TOKENS][EDGEMOE_MAX_HEADS];

constexpr int kMaxAttnBlocks = ceil_div(EDGEMOE_MAX_TOKENS, kAttnP);

// Cycles per key step of a sweep: one per (head, lane chunk), at least the softmax recurrence.
inline int attention_steps_per_key(int heads, int head_dim) {
  const int work = heads * (head_dim / kAttnLanes);
  return work > kSoftmaxRecurrence ? work : kSoftmaxRecurrence;
}

namespace attention_detail {

namespace ledger = edgemoe_ledger;

static_assert((kAttnLanes & (kAttnLanes - 1)) == 0, "ATTN_LANES must be a power of two (lane = d & (lanes - 1))");
constexpr int kMaxChunks = EDGEMOE_MAX_DIM / kAttnLanes;
constexpr int kLaneMask = kAttnLanes - 1;
constexpr int kLaneShift = log2_ceil(kAttnLanes);
// Feature rows as [chunk][lane]: d = chunk * ATTN_LANES + lane. The lane dimension is partitioned
// completely, so a lane's bank is its (constant, unrolled) index, not a runtime address.
typedef qkv_t FeatureRows[EDGEMOE_MAX_TOKENS][kMaxChunks][kAttnLanes];
typedef qkv_t SlotRows[kAttnP][kMaxChunks][kAttnLanes];
typedef pv_acc_t SlotSums[kAttnP][kMaxChunks][kAttnLanes];
typedef fm_t OutputRows[EDGEMOE_MAX_TOKENS][kMaxChunks][kAttnLanes];

// Whether slot s holds a row at key step j of a block (rows past n are idle).
inline bool slot_active(int block, int s, int j, int n) { return s <= j && j <= n - 1 + s && block * kAttnP + s < n; }
inline int block_rows(int block, int n) { return n - block * kAttnP < kAttnP ? n - block * kAttnP : kAttnP; }

// K and V of every token: a word of each per iteration on one bundle (two beats). Element e of a
// word goes to lane (16 w + e) mod ATTN_LANES: each lane's bank is written by one statement.
inline void load_kv(const fm_word_t* qkv, int n, int dim, FeatureRows k, FeatureRows v) {
  const int words = dim / kWordElems;
  ledger::loop(ledger::kUnitAttnScores, (long long)n * words, kTwoReadsII, kCopyDepth, ledger::kPortScratch1,
               2LL * n * dim * beat_bytes<fm_t>(), beat_bytes<fm_word_t>());
  int t = 0, w = 0;
load_kv_loop:
  for (int i = 0; i < upto<EDGEMOE_MAX_TOKENS * kMaxDimWords>(n * words); ++i) {
#pragma HLS PIPELINE II = kTwoReadsII
#pragma HLS LOOP_TRIPCOUNT max = EDGEMOE_MAX_TOKENS * kMaxDimWords
    const long row = (long)t * 3 * words;
    const fm_word_t kw = qkv[row + words + w], vw = qkv[row + 2 * words + w];
    for (int e = 0; e < kWordElems; ++e) {
      const int d = w * kWordElems + e;
      k[t][d >> kLaneShift][d & kLaneMask] = kw.v[e];
      v[t][d >> kLaneShift][d & kLaneMask] = vw.v[e];
    }
    if (++w == words) {
      w = 0;
      ++t;
    }
  }
}

// The q rows of one block, one per slot (read for each pass: q is not kept for all rows).
inline void load_q(const fm_word_t* qkv, int block, int n, int dim, SlotRows q, ledger::Unit unit) {
  const int rows = block_rows(block, n), words = dim / kWordElems;
  ledger::loop(unit, (long long)rows * words, kII, kCopyDepth, ledger::kPortScratch1,
               (long long)rows * dim * beat_bytes<fm_t>(), beat_bytes<fm_word_t>());
  int s = 0, w = 0;
load_q_loop:
  for (int i = 0; i < upto<kAttnP * kMaxDimWords>(rows * words); ++i) {
#pragma HLS PIPELINE II = kII
#pragma HLS LOOP_TRIPCOUNT max = kAttnP * kMaxDimWords
    const fm_word_t qw = qkv[(long)(block * kAttnP + s) * 3 * words + w];
    for (int e = 0; e < kWordElems; ++e) {
      const int d = w * kWordElems + e;
      q[s][d >> kLaneShift][d & kLaneMask] = qw.v[e];
    }
    if (++w == words) {
      w = 0;
      ++s;
    }
  }
}

// q.k of every slot over one lane chunk (exact products into score_acc_t lanes).
inline void dot_chunk(const SlotRows q, const FeatureRows k, int key, int chunk, score_acc_t lane[kAttnP][kAttnLanes],
                      bool first_chunk) {
  if (first_chunk)  // each lane's DSP starts a new sum (its P register reset)
    for (int s = 0; s < kAttnP; ++s)
      for (int l = 0; l < kAttnLanes; ++l) lane[s][l] = 0;
  for (int s = 0; s < kAttnP; ++s)
    for (int l = 0; l < kAttnLanes; ++l) lane[s][l] += q[s][chunk][l] * k[key][chunk][l];
}

inline fm_t lane_sum(const score_acc_t lane[kAttnLanes], fm_t scale) {
  score_acc_t acc = 0;
  for (int l = 0; l < kAttnLanes; ++l) acc += lane[l];  // wrapping adds are associative: any order
  return fm_t(acc) * scale;
}

// Where a sweep is: key step j, iteration `step` of that key step, head h and its lane chunk c
// (chunk = h * chunks + c, counted only on working iterations; the rest of a key step is padding
// for the softmax recurrence).
struct SweepPosition {
  int j, step, h, c, chunk;
};
inline bool sweep_works(const SweepPosition& at, int heads, int chunks) { return at.step < heads * chunks; }
inline void sweep_advance(SweepPosition& at, int heads, int chunks, int steps) {
  if (sweep_works(at, heads, chunks)) ++at.chunk;
  if (++at.c == chunks) {
    at.c = 0;
    ++at.h;
  }
  if (++at.step == steps) {
    at.step = 0;
    at.c = 0;
    at.h = 0;
    at.chunk = 0;
    ++at.j;
  }
}

// Pass 1 for one block of P rows: scores and the online softmax statistics of its rows. At most
// one slot finishes its row per key step (slot j - n + 1), so `info` gets one write per cycle.
inline void block_softmax(const SlotRows q, const FeatureRows k, int block, int n, int heads, int hd, fm_t scale,
                          SoftmaxTable info) {
  const int chunks = hd / kAttnLanes;
  const int steps = attention_steps_per_key(heads, hd);
  score_acc_t lane[kAttnP][kAttnLanes];
  fm_t run_max[kAttnP][EDGEMOE_MAX_HEADS];
  sum_t run_sum[kAttnP][EDGEMOE_MAX_HEADS];
#pragma HLS ARRAY_PARTITION variable = lane complete dim = 0
#pragma HLS ARRAY_PARTITION variable = run_max dim = 1 complete
#pragma HLS ARRAY_PARTITION variable = run_sum dim = 1 complete
#pragma HLS DEPENDENCE variable = run_max inter distance = kSoftmaxRecurrence true
#pragma HLS DEPENDENCE variable = run_sum inter distance = kSoftmaxRecurrence true
  const int rows = block_rows(block, n);
  ledger::loop(ledger::kUnitAttnScores, (long long)(n + kAttnP - 1) * steps, kII, kAttnSweepDepth, ledger::kNoPort,
               0, 1, (long long)rows * n * heads * hd, kAttnP * kAttnLanes);
  SweepPosition at = {0, 0, 0, 0, 0};
sweep:
  for (int i = 0; i < upto<(EDGEMOE_MAX_TOKENS + kAttnP - 1) * kMaxStepsPerKey>((n + kAttnP - 1) * steps); ++i) {
#pragma HLS PIPELINE II = kII
#pragma HLS LOOP_TRIPCOUNT max = (EDGEMOE_MAX_TOKENS + kAttnP - 1) * kMaxStepsPerKey
    if (sweep_works(at, heads, chunks)) {
      const int j = at.j, h = at.h, c = at.c, chunk = at.chunk;
      const int key = j < n ? j : j - n;
      dot_chunk(q, k, key, chunk, lane, c == 0);
      if (c == chunks - 1) {
        for (int s = 0; s < kAttnP; ++s) {
          if (!slot_active(block, s, j, n)) continue;
          const fm_t score = lane_sum(lane[s], scale);
          if (j == s) {  // the row's first key
            run_max[s][h] = score;
            run_sum[s][h] = 1;
          } else if (score > run_max[s][h]) {
            run_sum[s][h] = run_sum[s][h] * exp_nonpositive(run_max[s][h] - score) + ap_ufixed<1, 1>(1);
            run_max[s][h] = score;
          } else {
            run_sum[s][h] = run_sum[s][h] + exp_nonpositive(score - run_max[s][h]);
          }
        }
        const int done = j - (n - 1);  // the slot whose row saw its last key
        if (done >= 0 && done < kAttnP && slot_active(block, done, j, n)) {
          RowSoftmax& r = info[block * kAttnP + done][h];
          r.max = run_max[done][h];
          reciprocal(run_sum[done][h], r.mant, r.exp2);
        }
      }
    }
    sweep_advance(at, heads, chunks, steps);
  }
}

// Pass 2 for one block: p.v with p from recomputed scores, normalised into the row buffer by the
// one slot that finishes at this key step.
inline void block_values(const SlotRows q, const FeatureRows k, const FeatureRows v, int block, int n, int heads, int hd,
                         fm_t scale, const SoftmaxTable info, OutputRows out) {
  const int chunks = hd / kAttnLanes;
  const int steps = attention_steps_per_key(heads, hd);
  score_acc_t lane[kAttnP][kAttnLanes];
  SlotSums acc;
  unit_t p_prev[kAttnP][EDGEMOE_MAX_HEADS];  // p of key step j - 1, used while step j's scores form
  RowSoftmax stats[kAttnP][EDGEMOE_MAX_HEADS];
#pragma HLS ARRAY_PARTITION variable = lane complete dim = 0
#pragma HLS ARRAY_PARTITION variable = acc dim = 1 complete
#pragma HLS ARRAY_PARTITION variable = acc dim = 3 complete
#pragma HLS BIND_STORAGE variable = acc type = ram_2p impl = lutram
#pragma HLS ARRAY_PARTITION variable = p_prev dim = 1 complete
#pragma HLS ARRAY_PARTITION variable = stats dim = 1 complete
#pragma HLS DEPENDENCE variable = acc inter distance = kSoftmaxRecurrence true
  const int rows = block_rows(block, n);
  ledger::loop(ledger::kUnitAttnValues, (long long)rows * heads, kII, kCopyDepth);
  int stat_slot = 0, stat_head = 0;
load_stats:
  for (int i = 0; i < upto<kAttnP * EDGEMOE_MAX_HEADS>(rows * heads); ++i) {
#pragma HLS PIPELINE II = kII
#pragma HLS LOOP_TRIPCOUNT max = kAttnP * EDGEMOE_MAX_HEADS
    stats[stat_slot][stat_head] = info[block * kAttnP + stat_slot][stat_head];
    if (++stat_head == heads) {
      stat_head = 0;
      ++stat_slot;
    }
  }
  // One more key step than pass 1: step n + P - 1 only accumulates the previous step's p.v.
  ledger::loop(ledger::kUnitAttnValues, (long long)(n + kAttnP) * steps, kII, kAttnSweepDepth + kExpDepth,
               ledger::kNoPort, 0, 1, 2LL * rows * n * heads * hd, 2 * kAttnP * kAttnLanes);
  SweepPosition at = {0, 0, 0, 0, 0};
sweep:
  for (int i = 0; i < upto<(EDGEMOE_MAX_TOKENS + kAttnP) * kMaxStepsPerKey>((n + kAttnP) * steps); ++i) {
#pragma HLS PIPELINE II = kII
#pragma HLS LOOP_TRIPCOUNT max = (EDGEMOE_MAX_TOKENS + kAttnP) * kMaxStepsPerKey
    if (sweep_works(at, heads, chunks)) {
      const int j = at.j, h = at.h, c = at.c, chunk = at.chunk;
      if (j >= 1) {  // p.v of key step j - 1 over this chunk
        const int key = j - 1 < n ? j - 1 : j - 1 - n;
        for (int s = 0; s < kAttnP; ++s) {
          if (!slot_active(block, s, j - 1, n)) continue;
          if (j - 1 == s)  // the row's first key
            for (int l = 0; l < kAttnLanes; ++l) acc[s][chunk][l] = 0;
          const unit_t p = p_prev[s][h];
          for (int l = 0; l < kAttnLanes; ++l) acc[s][chunk][l] += p * v[key][chunk][l];
        }
        const int done = j - 1 - (n - 1);  // the slot whose row saw its last key: sum p.v / sum p
        if (done >= 0 && done < kAttnP && slot_active(block, done, j - 1, n)) {
          for (int l = 0; l < kAttnLanes; ++l) {
            const ap_fixed<39, 10> scaled = acc[done][chunk][l] >> stats[done][h].exp2;
            out[block * kAttnP + done][chunk][l] = fm_t(scaled * stats[done][h].mant);
          }
        }
      }
      if (j < n + kAttnP - 1) {
        const int key = j < n ? j : j - n;
        dot_chunk(q, k, key, chunk, lane, c == 0);
        if (c == chunks - 1)
          for (int s = 0; s < kAttnP; ++s)
            if (slot_active(block, s, j, n)) p_prev[s][h] = exp_nonpositive(lane_sum(lane[s], scale) - stats[s][h].max);
      }
    }
    sweep_advance(at, heads, chunks, steps);
  }
}

inline void write_rows(const OutputRows out, int n, int dim, fm_word_t* dst) {
  const int words = dim / kWordElems;
  ledger::loop(ledger::kUnitAttnValues, (long long)n * words, kII, kCopyDepth, ledger::kPortScratch0,
               (long long)n * dim * beat_bytes<fm_t>(), beat_bytes<fm_word_t>());
  int t = 0, w = 0;
write_rows_loop:
  for (int i = 0; i < upto<EDGEMOE_MAX_TOKENS * kMaxDimWords>(n * words); ++i) {
#pragma HLS PIPELINE II = kII
#pragma HLS LOOP_TRIPCOUNT max = EDGEMOE_MAX_TOKENS * kMaxDimWords
    fm_word_t word;
    for (int e = 0; e < kWordElems; ++e) {
      const int d = w * kWordElems + e;
      word.v[e] = out[t][d >> kLaneShift][d & kLaneMask];
    }
    dst[(long)t * words + w] = word;
    if (++w == words) {
      w = 0;
      ++t;
    }
  }
}

// Both passes over the row blocks [block_begin, block_end).
inline void attention_blocks(const fm_word_t* qkv, const FeatureRows k, const FeatureRows v, int n, int dim, int heads,
                             fm_t scale, SoftmaxTable info, OutputRows out, int block_begin, int block_end) {
  const int hd = dim / heads;
  SlotRows q;
#pragma HLS ARRAY_PARTITION variable = q dim = 1 complete
#pragma HLS ARRAY_PARTITION variable = q dim = 3 complete
#pragma HLS BIND_STORAGE variable = q type = ram_2p impl = lutram
blocks:
  for (int b = block_begin; b < upto<kMaxAttnBlocks>(block_end); ++b) {
#pragma HLS LOOP_TRIPCOUNT max = kMaxAttnBlocks
    load_q(qkv, b, n, dim, q, ledger::kUnitAttnScores);
    block_softmax(q, k, b, n, heads, hd, scale, info);
    block_values(q, k, v, b, n, heads, hd, scale, info, out);
  }
}

}  // namespace attention_detail

// The layer's attention: qkv [n][3D] (q | k | v) in DDR, output [n][D] to DDR. `info` receives each
// row's softmax statistics (on chip; the testbench reads them). In emulation the row blocks are
// split over two threads (blocks share only read-only K, V; each writes its own rows), not while
// the cycle ledger counts, which must see the one run the hardware makes.
inline void run_attention(const fm_word_t* qkv, int n, int dim, int heads, fm_t scale, fm_word_t* out,
                          SoftmaxTable info) {
  using namespace attention_detail;
  // On chip for the layer: K and V of every token (all heads), and the output rows; lanes in banks.
  static FeatureRows k_rows, v_rows;
  static OutputRows rows_out;
#pragma HLS ARRAY_PARTITION variable = k_rows dim = 3 complete
#pragma HLS ARRAY_PARTITION variable = v_rows dim = 3 complete
#pragma HLS ARRAY_PARTITION variable = rows_out dim = 3 complete
#if EDGEMOE_ATTN_URAM
#pragma HLS BIND_STORAGE variable = k_rows type = ram_2p impl = uram
#pragma HLS BIND_STORAGE variable = v_rows type = ram_2p impl = uram
#pragma HLS BIND_STORAGE variable = rows_out type = ram_2p impl = uram
#endif
  load_kv(qkv, n, dim, k_rows, v_rows);
  const int blocks = ceil_div(n, kAttnP);
#ifdef EDGEMOE_EMU_PARALLEL
  if (blocks >= 2 && !edgemoe_ledger::attached()) {
    const int half = blocks / 2;
#pragma omp parallel sections num_threads(2)
    {
#pragma omp section
      attention_blocks(qkv, k_rows, v_rows, n, dim, heads, scale, info, rows_out, 0, half);
#pragma omp section
      attention_blocks(qkv, k_rows, v_rows, n, dim, heads, scale, info, rows_out, half, blocks);
    }
    write_rows(rows_out, n, dim, out);
    return;
  }
#endif
  attention_blocks(qkv, k_rows, v_rows, n, dim, heads, scale, info, rows_out, 0, blocks);
  write_rows(rows_out, n, dim, out);
}

}  // namespace edgemoe_hls
