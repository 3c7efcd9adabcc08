// Multi-head attention with Edge-MoE's reordered schedule and a single-pass softmax, all on chip.
//
// K and V of every token are loaded once per layer into on-chip buffers (BRAM, URAM on the U280),
// so no key is re-read from DDR; nothing but q, k, v in and the output out crosses the memory port.
// Rows run in blocks of P (one row per slot); in its block's key sweep, slot s sees the keys in the
// rotated order s, s+1, ..., n-1, 0, ..., s-1 (P is part of the numerics, formats.h), and all slots
// read the same key row at each step. A group of ATTN_BLOCKS blocks shares one sweep (the blocks
// are independent: more rows in flight, the same bits). Pass 1 computes q.k, keeps each score on
// chip and, in the same sweep, each row's online max and sum; as pass 2's group is loaded, its
// maxima go to pass 2 and 1/sum (mantissa and exponent) to the row table. Pass 2 takes
// p = exp(s - max) of the kept scores and accumulates p.v exactly; each finished row's sums go to
// an on-chip row buffer, and write_rows divides them (shift by the exponent, multiply by the
// mantissa) as it writes them out in one burst at the end. K and V are held in 18 bits (kv_t), so
// q.k and p.v take one DSP48E2 a product.
//
// Schedule (kernels/README.md, "Schedules"): sweep g is one pipelined loop over (key step, head,
// lane chunk) at II = 1 that runs pass 1 of group g and pass 2 of group g - 1 side by side: both
// read key row j (K for pass 1, V for pass 2), so the two passes cost one sweep per group. The
// scores and statistics live in two halves (group parity): pass 1 writes one while pass 2 reads
// the other. Per iteration every slot of pass 1 multiplies kAttnLanes elements of its q row with
// kAttnLanes elements of one k row, and every slot of pass 2 kAttnLanes elements of one v row with
// its p: q, the accumulators and the output rows are partitioned by lane, K and V by lane quad
// (and q, the accumulators and the scores by block and slot, the output rows by block), so each
// bank sees at most one read and one write a cycle. A row's running max and sum are updated once per key and head; the
// steps per key are padded to kSoftmaxRecurrence, so two dependent updates are always that many
// cycles apart (DEPENDENCE distance below) and the exp-compare-multiply chain fits.
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

constexpr int kMaxAttnGroups = ceil_div(EDGEMOE_MAX_TOKENS, kAttnRows);
constexpr int kMaxKeySteps = EDGEMOE_MAX_TOKENS + kAttnP - 1;  // key steps of a sweep (the last slot starts P - 1 late)

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
constexpr int kScoreHalf = kMaxKeySteps * EDGEMOE_MAX_HEADS;  // one group's scores per slot
constexpr int kStatHalf = kAttnP * EDGEMOE_MAX_HEADS;         // one group's statistics per block
// K and V rows as [chunk][lane quad]: d = chunk * ATTN_LANES + lane, lane = quad * kKvPack + f. Four
// 18-bit lanes fill a 72-bit URAM word (a 72-bit BRAM36 in simple dual port), so a bank holds four
// lanes; the quad dimension is partitioned completely, so a quad's bank is its (constant, unrolled)
// index. Every access moves whole quads: the sweep reads all lanes of a chunk, and a 16-feature
// activation word fills kWordElems / kKvPack quads of one chunk.
static_assert(kAttnLanes % kKvPack == 0 && kWordElems % kKvPack == 0, "K/V quads are whole in a chunk and a word");
static_assert(kAttnLanes % kWordElems == 0, "a chunk is whole activation words");
static_assert(EDGEMOE_MAX_DIM / kAttnLanes < 128, "lane_acc_t holds a lane's q.k over fewer than 128 chunks exactly");
constexpr int kKvQuads = kAttnLanes / kKvPack;
constexpr int kWordQuads = kWordElems / kKvPack;         // quads an activation word fills
struct KvQuad {
  kv_t lane[kKvPack];
};
typedef KvQuad FeatureRows[EDGEMOE_MAX_TOKENS][kMaxChunks][kKvQuads];
// q rows as [chunk][lane], the lane dimension partitioned completely.
typedef q_t GroupRows[kAttnBlocks][kAttnP][kMaxChunks][kAttnLanes];
typedef pv_acc_t GroupSums[kAttnBlocks][kAttnP][kMaxChunks][kAttnLanes];
// Pass 1's results for pass 2, two halves by group parity: scores [half][key step][head] per slot,
// statistics [half][slot][head] per block.
typedef fm_t ScoreBanks[kAttnBlocks][kAttnP][2 * kScoreHalf];
// A row and head's running statistics at the end of pass 1: its max score and sum exp(s - max).
// 1/sum is formed as pass 2's group is loaded (load_group_stats: one unit at a row a cycle, not one
// per block in the sweep).
struct RowRunning {
  fm_t max;
  sum_t sum;
};
typedef RowRunning StatBanks[kAttnBlocks][2 * kStatHalf];
typedef fm_t GroupMaxima[kAttnBlocks][kAttnP][EDGEMOE_MAX_HEADS];
// Output rows by (group, block, slot): row = group * kAttnRows + block * P + slot, each value its
// row's sum p.v; the division by sum p (a shift by 1/sum's exponent, a product with its mantissa)
// waits for write_rows, which does it for one word a cycle instead of every block's lanes at once
// (the same arithmetic, so the same bits).
static_assert(EDGEMOE_MAX_TOKENS <= 4096, "pv_acc_t holds sum p.v exactly over at most 4096 keys");
typedef pv_acc_t OutputRows[kMaxAttnGroups][kAttnBlocks][kAttnP][kMaxChunks][kAttnLanes];

// Whether slot s of block `block` holds a row at key step j (rows past n are idle).
inline bool slot_active(int block, int s, int j, int n) { return s <= j && j <= n - 1 + s && block * kAttnP + s < n; }
inline int group_rows(int group, int n) { return n - group * kAttnRows < kAttnRows ? n - group * kAttnRows : kAttnRows; }

// Quad g of an activation word, rounded to kv_t.
inline KvQuad kv_quad(const fm_word_t& word, int g) {
  KvQuad quad;
  for (int f = 0; f < kKvPack; ++f) quad.lane[f] = word.v[g * kKvPack + f];
  return quad;
}

// Word w of a row into its chunk's quads: one statement per quad bank (the bank is a constant, the
// word's position in its chunk chooses which statements write), so each bank sees one write.
inline void store_kv_word(FeatureRows rows, int t, int w, const fm_word_t& word) {
  const int chunk = w / kWordsPerAttnChunk, at = w % kWordsPerAttnChunk;
  for (int p = 0; p < kWordsPerAttnChunk; ++p)
    for (int g = 0; g < kWordQuads; ++g)
      if (at == p) rows[t][chunk][p * kWordQuads + g] = kv_quad(word, g);
}

// Word w of a q row into its chunk's lanes, one statement per lane bank (a constant lane; the word's
// position in its chunk chooses which statements write).
inline void store_q_word(q_t row[kMaxChunks][kAttnLanes], int w, const fm_word_t& word) {
  const int chunk = w / kWordsPerAttnChunk, at = w % kWordsPerAttnChunk;
  for (int p = 0; p < kWordsPerAttnChunk; ++p)
    for (int e = 0; e < kWordElems; ++e)
      if (at == p) row[chunk][p * kWordElems + e] = word.v[e];
}

// K and V of every token. qkv holds each token's q | k | v (3 D / 16 words, rows packed): K and V
// are not one contiguous region, the whole buffer is. Where a port moves a word a cycle
// (kWholeQkvRows) one burst over every word (address i) passes q's words over; on a narrower port
// a word costs the same cycles either way, so only the K and V words are read, two single beats an
// iteration. One of the two loops runs. Element e of a word goes to lane (16 w + e) mod ATTN_LANES:
// each lane's bank is written by one statement.
inline void load_kv(const fm_word_t* qkv, int n, int dim, FeatureRows k, FeatureRows v) {
  const int words = dim / kWordElems;
  const int whole = kWholeQkvRows ? n * 3 * words : 0, pairs = kWholeQkvRows ? 0 : n * words;
  ledger::loop(ledger::kUnitAttention, whole, kII, kCopyDepth, ledger::burst(ledger::kPortScratch1),
               (long long)whole * beat_bytes<fm_word_t>(), beat_bytes<fm_word_t>());
  int t = 0, part = 0, w = 0;  // word w of part (0 q, 1 k, 2 v) of token t
load_kv_rows:
  for (int i = 0; i < upto<EDGEMOE_MAX_TOKENS * 3 * kMaxDimWords>(whole); ++i) {
#pragma HLS PIPELINE II = kII
#pragma HLS LOOP_TRIPCOUNT max = EDGEMOE_MAX_TOKENS * 3 * kMaxDimWords
    const fm_word_t word = qkv[i];
    if (part == 1) store_kv_word(k, t, w, word);
    if (part == 2) store_kv_word(v, t, w, word);
    if (++w == words) {
      w = 0;
      if (++part == 3) {
        part = 0;
        ++t;
      }
    }
  }
  ledger::loop(ledger::kUnitAttention, pairs, kKvPairII, kCopyDepth, ledger::single_beat(ledger::kPortScratch1),
               2LL * pairs * beat_bytes<fm_word_t>(), beat_bytes<fm_word_t>());
  t = 0;
  w = 0;
load_kv_pairs:
  for (int i = 0; i < upto<EDGEMOE_MAX_TOKENS * kMaxDimWords>(pairs); ++i) {
#pragma HLS PIPELINE II = kKvPairII
#pragma HLS LOOP_TRIPCOUNT max = EDGEMOE_MAX_TOKENS * kMaxDimWords
    const long row = (long)t * 3 * words;
    const fm_word_t kw = qkv[row + words + w], vw = qkv[row + 2 * words + w];
    store_kv_word(k, t, w, kw);
    store_kv_word(v, t, w, vw);
    if (++w == words) {
      w = 0;
      ++t;
    }
  }
}

// The q rows of one group, one per (block, slot). The group's rows of qkv are contiguous: with
// kWholeQkvRows one burst over their words (address base + i) passes k's and v's over; otherwise
// the q words alone, single beats. One of the two loops runs.
inline void load_group_q(const fm_word_t* qkv, int group, int n, int dim, GroupRows q) {
  const int rows = group_rows(group, n), words = dim / kWordElems;
  const int whole = kWholeQkvRows ? rows * 3 * words : 0, only_q = kWholeQkvRows ? 0 : rows * words;
  const long base = (long)group * kAttnRows * 3 * words;
  ledger::loop(ledger::kUnitAttention, whole, kII, kCopyDepth, ledger::burst(ledger::kPortScratch1),
               (long long)whole * beat_bytes<fm_word_t>(), beat_bytes<fm_word_t>());
  int b = 0, s = 0, part = 0, w = 0;
load_q_rows:
  for (int i = 0; i < upto<kAttnRows * 3 * kMaxDimWords>(whole); ++i) {
#pragma HLS PIPELINE II = kII
#pragma HLS LOOP_TRIPCOUNT max = kAttnRows * 3 * kMaxDimWords
    const fm_word_t word = qkv[base + i];
    if (part == 0) store_q_word(q[b][s], w, word);
    if (++w == words) {
      w = 0;
      if (++part == 3) {
        part = 0;
        if (++s == kAttnP) {
          s = 0;
          ++b;
        }
      }
    }
  }
  ledger::loop(ledger::kUnitAttention, only_q, kII, kCopyDepth, ledger::single_beat(ledger::kPortScratch1),
               (long long)only_q * beat_bytes<fm_word_t>(), beat_bytes<fm_word_t>());
  b = 0;
  s = 0;
  w = 0;
load_q_words:
  for (int i = 0; i < upto<kAttnRows * kMaxDimWords>(only_q); ++i) {
#pragma HLS PIPELINE II = kII
#pragma HLS LOOP_TRIPCOUNT max = kAttnRows * kMaxDimWords
    const fm_word_t qw = qkv[(long)(group * kAttnRows + b * kAttnP + s) * 3 * words + w];
    store_q_word(q[b][s], w, qw);
    if (++w == words) {
      w = 0;
      if (++s == kAttnP) {
        s = 0;
        ++b;
      }
    }
  }
}

// Pass 1's statistics of one group (half `half`), one row and head per cycle (one read of a block's
// bank): the maxima into registers for pass 2's sweep, the maxima and 1/sum into `info` for
// write_rows (and the testbench).
inline void load_group_stats(const StatBanks stats, int group, int half, int n, int heads, GroupMaxima regs,
                             SoftmaxTable info) {
  const int rows = group_rows(group, n);
  ledger::loop(ledger::kUnitAttention, (long long)rows * heads, kII, kCopyDepth + kReciprocalDepth);
  int b = 0, s = 0, h = 0;
load_stats:
  for (int i = 0; i < upto<kAttnRows * EDGEMOE_MAX_HEADS>(rows * heads); ++i) {
#pragma HLS PIPELINE II = kII
#pragma HLS LOOP_TRIPCOUNT max = kAttnRows * EDGEMOE_MAX_HEADS
    const RowRunning r = stats[b][half * kStatHalf + s * EDGEMOE_MAX_HEADS + h];
    RowSoftmax row;
    row.max = r.max;
    reciprocal(r.sum, row.mant, row.exp2);
    regs[b][s][h] = r.max;
    info[group * kAttnRows + b * kAttnP + s][h] = row;
    if (++h == heads) {
      h = 0;
      if (++s == kAttnP) {
        s = 0;
        ++b;
      }
    }
  }
}

inline fm_t lane_sum(const lane_acc_t lane[kAttnLanes], attn_scale_t scale) {
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

// What one sweep does: pass 1 of group `scoring` and pass 2 of group `weighing` (-1: none).
struct SweepGroups {
  int scoring, weighing;
};

// One sweep. Pass 1: each slot's scores into its score bank (one write per head, at its last
// chunk) and its running max and sum; at most one slot per block finishes its row per key step
// (slot j - n + 1), so a block's statistics bank gets one write a cycle. Pass 2: at a head's first
// chunk each slot reads that key's score (one read of its bank) and forms p; every chunk adds p.v
// into the slot's accumulators; the finishing slot of each block writes its chunk's sums into the
// output rows (one write per block and lane bank).
inline void sweep(const GroupRows q, const FeatureRows k, const FeatureRows v, SweepGroups groups, int n, int heads,
                  int hd, attn_scale_t scale, ScoreBanks scores, StatBanks stats, const GroupMaxima weigh_max,
                  OutputRows out) {
  const int chunks = hd / kAttnLanes;
  const int steps = attention_steps_per_key(heads, hd);
  const bool scoring = groups.scoring >= 0, weighing = groups.weighing >= 0;
  const int write_half = groups.scoring & 1, read_half = groups.weighing & 1;
  lane_acc_t lane[kAttnBlocks][kAttnP][kAttnLanes];
  fm_t run_max[kAttnBlocks][kAttnP][EDGEMOE_MAX_HEADS];
  sum_t run_sum[kAttnBlocks][kAttnP][EDGEMOE_MAX_HEADS];
  // (new_max / new_sum below are unrolled registers: complete partitions by construction.)
  GroupSums acc;
  unit_t p[kAttnBlocks][kAttnP];  // a head's p of this key step, formed on its first chunk
  pv_acc_t fresh[kAttnBlocks][kAttnP][kAttnLanes];  // this iteration's accumulator values
#pragma HLS ARRAY_PARTITION variable = lane complete dim = 0
#pragma HLS ARRAY_PARTITION variable = run_max dim = 1 complete
#pragma HLS ARRAY_PARTITION variable = run_max dim = 2 complete
#pragma HLS ARRAY_PARTITION variable = run_sum dim = 1 complete
#pragma HLS ARRAY_PARTITION variable = run_sum dim = 2 complete
#pragma HLS ARRAY_PARTITION variable = acc dim = 1 complete
#pragma HLS ARRAY_PARTITION variable = acc dim = 2 complete
#pragma HLS ARRAY_PARTITION variable = acc dim = 4 complete
#pragma HLS BIND_STORAGE variable = acc type = ram_s2p impl = lutram
#pragma HLS ARRAY_PARTITION variable = p complete dim = 0
#pragma HLS ARRAY_PARTITION variable = fresh complete dim = 0
#pragma HLS DEPENDENCE variable = run_max inter distance = kSoftmaxRecurrence true
#pragma HLS DEPENDENCE variable = run_sum inter distance = kSoftmaxRecurrence true
#pragma HLS DEPENDENCE variable = acc inter distance = kSoftmaxRecurrence true
  // Pass 1 writes the half of group parity `scoring`, pass 2 reads the other one.
#pragma HLS DEPENDENCE variable = scores inter false
#pragma HLS DEPENDENCE variable = scores intra false
  const long long score_rows = scoring ? group_rows(groups.scoring, n) : 0;
  const long long weigh_rows = weighing ? group_rows(groups.weighing, n) : 0;
  ledger::loop(ledger::kUnitAttention, (long long)(n + kAttnP - 1) * steps, kII, kAttnSweepDepth, ledger::kNoPort, 0,
               1, (score_rows + weigh_rows) * n * heads * hd, 2 * kAttnRows * kAttnLanes);
  SweepPosition at = {0, 0, 0, 0, 0};
sweep_loop:
  for (int i = 0; i < upto<kMaxKeySteps * kMaxStepsPerKey>((n + kAttnP - 1) * steps); ++i) {
#pragma HLS PIPELINE II = kII
#pragma HLS LOOP_TRIPCOUNT max = kMaxKeySteps * kMaxStepsPerKey
    if (sweep_works(at, heads, chunks)) {
      const int j = at.j, h = at.h, c = at.c, chunk = at.chunk;
      const int key = j < n ? j : j - n;
      const int done = j - (n - 1);  // the slot whose row sees its last key at this step
      const bool someone_done = done >= 0 && done < kAttnP;
      const int score_at = j * EDGEMOE_MAX_HEADS + h;
      // This key step's K and V chunk, read once (one read of each quad bank) for every slot.
      KvQuad kq[kKvQuads], vq[kKvQuads];
      for (int g = 0; g < kKvQuads; ++g) {
        kq[g] = k[key][chunk][g];
        vq[g] = v[key][chunk][g];
      }
      if (scoring) {
        if (c == 0)  // each lane's DSP starts a new sum on a head's first chunk
          for (int b = 0; b < kAttnBlocks; ++b)
            for (int s = 0; s < kAttnP; ++s)
              for (int l = 0; l < kAttnLanes; ++l) lane[b][s][l] = 0;
        for (int b = 0; b < kAttnBlocks; ++b)
          for (int s = 0; s < kAttnP; ++s)
            for (int l = 0; l < kAttnLanes; ++l) lane[b][s][l] += q[b][s][chunk][l] * kq[l / kKvPack].lane[l % kKvPack];
        if (c == chunks - 1) {
          for (int b = 0; b < kAttnBlocks; ++b) {
            const int block = groups.scoring * kAttnBlocks + b;
            // Each slot's updated max and sum, in registers: the banks see one read and one write,
            // and the finishing slot's statistics come from here, not from a third bank access.
            fm_t new_max[kAttnP];
            sum_t new_sum[kAttnP];
            for (int s = 0; s < kAttnP; ++s) {
              if (!slot_active(block, s, j, n)) continue;
              const fm_t score = lane_sum(lane[b][s], scale);
              scores[b][s][write_half * kScoreHalf + score_at] = score;
              const bool first = j == s;  // the row's first key: nothing to read yet
              const fm_t old_max = first ? score : run_max[b][s][h];
              const sum_t old_sum = first ? sum_t(0) : run_sum[b][s][h];
              const bool larger = score > old_max;
              // One exp per slot: of the old max against a larger score, or of the score against the max.
              const unit_t e = exp_nonpositive(larger ? old_max - score : score - old_max);
              new_max[s] = first || larger ? score : old_max;
              new_sum[s] = first ? sum_t(1) : larger ? sum_t(old_sum * e + ap_ufixed<1, 1>(1)) : sum_t(old_sum + e);
              run_max[b][s][h] = new_max[s];
              run_sum[b][s][h] = new_sum[s];
            }
            if (someone_done && slot_active(block, done, j, n)) {
              RowRunning r;
              r.max = new_max[done];
              r.sum = new_sum[done];
              stats[b][write_half * kStatHalf + done * EDGEMOE_MAX_HEADS + h] = r;
            }
          }
        }
      }
      if (weighing) {
        for (int b = 0; b < kAttnBlocks; ++b) {
          const int block = groups.weighing * kAttnBlocks + b;
          for (int s = 0; s < kAttnP; ++s) {
            if (!slot_active(block, s, j, n)) continue;
            if (c == 0) p[b][s] = exp_nonpositive(scores[b][s][read_half * kScoreHalf + score_at] - weigh_max[b][s][h]);
            for (int l = 0; l < kAttnLanes; ++l) {  // the row's first key starts its sums
              fresh[b][s][l] = (j == s ? pv_acc_t(0) : acc[b][s][chunk][l]) +
                               p[b][s] * vq[l / kKvPack].lane[l % kKvPack];
              acc[b][s][chunk][l] = fresh[b][s][l];
            }
          }
          if (someone_done && slot_active(block, done, j, n))  // the finished row's sum p.v
            for (int l = 0; l < kAttnLanes; ++l) out[groups.weighing][b][done][chunk][l] = fresh[b][done][l];
        }
      }
    }
    sweep_advance(at, heads, chunks, steps);
  }
}

// The output rows, each sum p.v times its row and head's 1/sum = mant 2^-exp2: a word is one head's
// (head dims are multiples of 16), so one read of `info` a cycle.
inline void write_rows(const OutputRows out, const SoftmaxTable info, int n, int dim, int heads, fm_word_t* dst) {
  const int words = dim / kWordElems, head_words = words / heads;
  ledger::loop(ledger::kUnitAttention, (long long)n * words, kII, kCopyDepth + kMacDepth,
               ledger::burst(ledger::kPortScratch0), (long long)n * dim * beat_bytes<fm_t>(), beat_bytes<fm_word_t>());
  int w = 0, g = 0, b = 0, s = 0;  // word w of token g * kAttnRows + b * P + s: rows in order, address i
  int h = 0, hw = 0;               // the word's head, and the word within it
write_rows_loop:
  for (int i = 0; i < upto<EDGEMOE_MAX_TOKENS * kMaxDimWords>(n * words); ++i) {
#pragma HLS PIPELINE II = kII
#pragma HLS LOOP_TRIPCOUNT max = EDGEMOE_MAX_TOKENS * kMaxDimWords
    const RowSoftmax st = info[g * kAttnRows + b * kAttnP + s][h];
    const unsigned shift = unsigned(st.exp2) & 15u;  // reciprocal() gives 0 ... 11: a 4-bit right shift
    fm_word_t word;
    for (int e = 0; e < kWordElems; ++e) {
      const int d = w * kWordElems + e;
      const shifted_sum_t shifted = out[g][b][s][d >> kLaneShift][d & kLaneMask] >> shift;
      word.v[e] = fm_t(shifted * st.mant);
    }
    dst[i] = word;
    if (++hw == head_words) {
      hw = 0;
      ++h;
    }
    if (++w == words) {
      w = 0;
      h = 0;
      if (++s == kAttnP) {
        s = 0;
        if (++b == kAttnBlocks) {
          b = 0;
          ++g;
        }
      }
    }
  }
}

// Sweeps over the groups [group_begin, group_end): one more sweep than groups, pass 1 running a
// group ahead of pass 2. Before each sweep the next group's q rows and the previous group's
// statistics are loaded (on the U280 ~2,300 cycles against a ViT-S sweep's ~12,000; the ledger
// charges them).
inline void attention_groups(const fm_word_t* qkv, const FeatureRows k, const FeatureRows v, int n, int dim, int heads,
                             attn_scale_t scale, SoftmaxTable info, OutputRows out, int group_begin, int group_end,
                             ScoreBanks scores, StatBanks stats) {
  const int hd = dim / heads;
  GroupRows q;
  GroupMaxima weigh_max;
#pragma HLS ARRAY_PARTITION variable = q dim = 1 complete
#pragma HLS ARRAY_PARTITION variable = q dim = 2 complete
#pragma HLS ARRAY_PARTITION variable = q dim = 4 complete
#pragma HLS BIND_STORAGE variable = q type = ram_s2p impl = lutram
#pragma HLS ARRAY_PARTITION variable = weigh_max dim = 1 complete
#pragma HLS ARRAY_PARTITION variable = weigh_max dim = 2 complete
groups_loop:
  for (int g = group_begin; g < upto<kMaxAttnGroups + 1>(group_end + 1); ++g) {
#pragma HLS LOOP_TRIPCOUNT max = kMaxAttnGroups + 1
    const SweepGroups now = {g < group_end ? g : -1, g > group_begin ? g - 1 : -1};
    if (now.scoring >= 0) load_group_q(qkv, now.scoring, n, dim, q);
    if (now.weighing >= 0) load_group_stats(stats, now.weighing, now.weighing & 1, n, heads, weigh_max, info);
    sweep(q, k, v, now, n, heads, hd, scale, scores, stats, weigh_max, out);
  }
}

}  // namespace attention_detail

// The layer's attention: qkv [n][3D] (q | k | v) in DDR, output [n][D] to DDR. `info` receives each
// row's softmax statistics (the testbench reads them). In emulation the groups are split over two
// threads (groups share only read-only K, V; each writes its own rows, and each thread has its own
// score and statistics banks), not while the cycle ledger counts, which must see the one run the
// hardware makes.
inline void run_attention(const fm_word_t* qkv, int n, int dim, int heads, fm_t attn_scale, fm_word_t* out,
                          SoftmaxTable info) {
  using namespace attention_detail;
  // Its fraction bits alone (the scale is below 1): the scale's products take half the DSPs.
  const attn_scale_t scale = attn_scale;
  // On chip for the layer: K and V of every token (all heads), the output rows, and pass 1's
  // scores and statistics for pass 2; lanes, blocks and slots in banks.
#ifdef EDGEMOE_EMU_PARALLEL
  constexpr int kParts = 2;
#else
  constexpr int kParts = 1;
#endif
  static FeatureRows k_rows, v_rows;
  static OutputRows rows_out;
  static ScoreBanks scores[kParts];
  static StatBanks stats[kParts];
#pragma HLS ARRAY_PARTITION variable = k_rows dim = 3 complete
#pragma HLS ARRAY_PARTITION variable = v_rows dim = 3 complete
#pragma HLS AGGREGATE variable = k_rows compact = bit
#pragma HLS AGGREGATE variable = v_rows compact = bit
  // The output rows by block and lane (not by slot: the finishing slot is a runtime index, so it
  // addresses its block's bank rather than selecting one).
#pragma HLS ARRAY_PARTITION variable = rows_out dim = 2 complete
#pragma HLS ARRAY_PARTITION variable = rows_out dim = 5 complete
#pragma HLS ARRAY_PARTITION variable = scores dim = 2 complete
#pragma HLS ARRAY_PARTITION variable = scores dim = 3 complete
#pragma HLS ARRAY_PARTITION variable = stats dim = 2 complete
#if EDGEMOE_ATTN_URAM
#pragma HLS BIND_STORAGE variable = k_rows type = ram_2p impl = uram
#pragma HLS BIND_STORAGE variable = v_rows type = ram_2p impl = uram
#pragma HLS BIND_STORAGE variable = rows_out type = ram_2p impl = uram
#pragma HLS BIND_STORAGE variable = scores type = ram_2p impl = uram
#endif
  load_kv(qkv, n, dim, k_rows, v_rows);
  const int groups = ceil_div(n, kAttnRows);
#ifdef EDGEMOE_EMU_PARALLEL
  if (groups >= 2 && !edgemoe_ledger::attached()) {
    const int half = groups / 2;
    emu_run_halves([&](int64_t part) {
      if (part == 0)
        attention_groups(qkv, k_rows, v_rows, n, dim, heads, scale, info, rows_out, 0, half, scores[0], stats[0]);
      else
        attention_groups(qkv, k_rows, v_rows, n, dim, heads, scale, info, rows_out, half, groups, scores[1], stats[1]);
    });
    write_rows(rows_out, info, n, dim, heads, out);
    return;
  }
#endif
  attention_groups(qkv, k_rows, v_rows, n, dim, heads, scale, info, rows_out, 0, groups, scores[0], stats[0]);
  write_rows(rows_out, info, n, dim, heads, out);
}

}  // namespace edgemoe_hls
