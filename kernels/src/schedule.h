// The one place for the numbers that set each unit's schedule: lanes, initiation intervals and
// pipeline depths. The pragmas use them (Vitis HLS takes constexpr values in pragmas, UG1399
// "Using Constants with Pragmas"), every pipelined loop reports them to the cycle ledger
// (cycle_ledger.h), and the resource estimate below counts from them, so the latency model cannot
// drift from the code. Why each II holds is written next to its loop and in kernels/README.md.
#pragma once

#include "cycle_ledger.h"
#include "formats.h"

namespace edgemoe_hls {

constexpr int ceil_div(int a, int b) { return (a + b - 1) / b; }
constexpr int max2(int a, int b) { return a > b ? a : b; }
constexpr int max3(int a, int b, int c) { return max2(max2(a, b), c); }
constexpr int log2_ceil(int n) {
  int bits = 0;
  for (int i = 0; i < 31; ++i) bits += (1 << i) < n ? 1 : 0;
  return bits;
}

// --- lanes -----------------------------------------------------------------------------------
constexpr int kTin = EDGEMOE_LINEAR_TIN;    // MAC array: input lanes ...
constexpr int kTout = EDGEMOE_LINEAR_TOUT;  // ... x output lanes ...
constexpr int kTrows = EDGEMOE_LINEAR_ROWS;  // ... x rows sharing each weight read, one DSP48E2 each
constexpr int kAttnP = EDGEMOE_ATTN_P;      // query rows in flight (formats.h: part of the numerics)
constexpr int kAttnLanes = EDGEMOE_ATTN_LANES;  // head-dimension lanes per slot
constexpr int kAttnBlocks = EDGEMOE_ATTN_BLOCKS;  // blocks of P rows sharing one sweep (not numerics)
constexpr int kAttnRows = kAttnBlocks * kAttnP;   // rows per sweep group
constexpr int kGateFeatures = EDGEMOE_GATE_FEATURES;  // token features per gate step ...
constexpr int kGateLanes = EDGEMOE_MAX_EXPERTS * kGateFeatures;  // ... times every expert: MACs per cycle

// --- pipeline depths (cycles from an iteration's first operand to its last result) ------------
// Engineering estimates in the sense of ../shared/spec/hardware.md §7, not synthesis results: a
// 27x18 MAC into the DSP's P register 4, a table function (exp, 1/x, 1/sqrt, GELU: index
// arithmetic, a ROM read, one interpolating multiply) 5-8, an adder tree 1 per level.
constexpr int kMacDepth = 4;
constexpr int kExpDepth = 6;
constexpr int kReciprocalDepth = 8;  // table + one Newton step
constexpr int kGeluDepth = 6;
constexpr int kCopyDepth = 2;        // read, convert, write
// The read latency HLS schedules an m_axi read with (the INTERFACE `latency` option, default 64):
// a rolled loop waits it per read; a pipelined loop once per run (the ledger adds it).
constexpr int kAxiReadLatency = 64;
// Requests each m_axi port keeps in flight (INTERFACE num_read/write_outstanding, default 16) and
// the longest burst (max_read/write_burst_length, in beats): a single-beat loop moves a beat every
// ceil(kAxiReadLatency / kAxiOutstanding) = 4 cycles, a bursting one a beat a cycle.
constexpr int kAxiOutstanding = 16;
constexpr int kAxiMaxBurstBeats = 64;
constexpr int kLinearDepth = kMacDepth + log2_ceil(kTin) + 1 /* bias */ + kGeluDepth + 1 /* to the stream */;
// A sweep iteration: a chunk of q.k (MAC), on the last chunk the lane sum, scale and softmax update.
// Pass 1's chain (the longer one): q.k MAC, lane tree, scale, exp, running-sum update, 1/sum of the
// finishing row.
constexpr int kAttnSweepDepth = kMacDepth + log2_ceil(kAttnLanes) + 2 + kExpDepth + 2 + kReciprocalDepth;
constexpr int kLayerNormDepth = kMacDepth + 2;
constexpr int kGateDepth = kMacDepth + log2_ceil(kGateFeatures);
// The gate's per-token tail, unrolled in the pipeline as written: a serial max scan, exp, a serial
// sum, 1/x, the probability multiply, k serial arg-max scans, the queue appends.
constexpr int kGateTailDepth = EDGEMOE_MAX_EXPERTS + kExpDepth + EDGEMOE_MAX_EXPERTS + kReciprocalDepth + kMacDepth +
                               EDGEMOE_MAX_TOP_K * EDGEMOE_MAX_EXPERTS + 1;

// --- initiation intervals ----------------------------------------------------------------------
// Loops whose II is 1 by construction (each array read in the unrolled body is partitioned to the
// unroll; accumulators are DSP P registers; at most one access per port per cycle).
constexpr int kII = 1;
// The online softmax's loop-carried chain per (row, head): compare, exp of the difference, multiply-
// add into the running sum. A key step takes at least this many cycles, so dependent updates of one
// row never come closer (attention.h pads the step).
constexpr int kSoftmaxRecurrence = 2 + kExpDepth + 2;
constexpr int kMaxStepsPerKey = max2(EDGEMOE_MAX_DIM / kAttnLanes, kSoftmaxRecurrence);
// Loops that move more than one beat of one m_axi bundle per iteration declare that many cycles.
// Activations move as 512-bit words of kWordElems fm_t (formats.h); pixels and params one element
// per beat.
static_assert(kTin % kWordElems == 0, "an input tile is whole activation words");
constexpr int kWordsPerInTile = kTin / kWordElems;
constexpr int kMaxDimWords = EDGEMOE_MAX_DIM / kWordElems;  // activation words of a model-width row
static_assert(kTout >= kWordElems ? kTout % kWordElems == 0 : kWordElems % kTout == 0,
              "output tiles and activation words nest");
// Output tiles that share an activation word: with T_out < 16 a word spans 16 / T_out tiles (the
// writer's group store is partitioned cyclically by it).
constexpr int kTilesPerWord = kTout >= kWordElems ? 1 : kWordElems / kTout;
// The patch reader: a patch row of P <= 16 pixels per iteration, one image word or (straddling a
// word boundary) two from the one images port.
constexpr int kPatchRunII = 2;
constexpr int isqrt_floor(int n) {
  int r = 0;
  for (int i = 1; i < 64; ++i) r += i * i <= n ? 1 : 0;
  return r;
}
constexpr int kMaxPatch = isqrt_floor(EDGEMOE_MAX_PATCH_IN / 3);  // 3 P^2 <= EDGEMOE_MAX_PATCH_IN
static_assert(kMaxPatch <= kWordElems, "a patch row travels as one activation word's lanes");
constexpr int kKvPairII = 2;                     // attention's K and V words, single beats, one each
constexpr int kWeightPairII = 2;                  // weight fetch: a word of each weight port, written in turn

// Whether an m_axi port moves a whole 512-bit word a cycle (the U280's HBM ports; the emulation
// build too, which models no board): then reading a buffer's rows whole in one burst beats single
// beats of part of each row (attention.h's q, k and v loads). On a narrower port (the ZCU102's
// 128-bit HP ports) a word costs four cycles either way, so only the words needed are read.
#if defined(EDGEMOE_PORT_WIDTH_BYTES) && EDGEMOE_PORT_WIDTH_BYTES < 64
constexpr bool kWholeQkvRows = false;
#else
constexpr bool kWholeQkvRows = true;
#endif

// --- element sizes on the m_axi ports (each element is one beat: ap_fixed pointers are not widened)
template <class T>
constexpr int beat_bytes() {
  return int(sizeof(T));
}

// --- the resource estimate -------------------------------------------------------------------
// Counted from the lanes and buffers above (hardware.md §2-3): a 27x18 MAC is one DSP48E2, a 24x24
// or 25x24 product two; a BRAM18 holds 1K x 18 (512 x 36); banks of a partitioned array cost one
// BRAM18 each at least. LUTs: a per-lane allowance for operand muxes, control and the AXI
// adapters, stated in kernels/README.md; an estimate, not a synthesis result.
constexpr long long cdiv(long long a, long long b) { return (a + b - 1) / b; }
constexpr int bram18_for(long long depth, int width) {
  // the cheapest of the BRAM18 aspect ratios 1K x 18 and 512 x 36 (UG573)
  return depth <= 0 ? 0 : int(cdiv(width, 18) * cdiv(depth, 1024) < cdiv(width, 36) * cdiv(depth, 512)
                                  ? cdiv(width, 18) * cdiv(depth, 1024)
                                  : cdiv(width, 36) * cdiv(depth, 512));
}
// A shallow bank bound to LUTRAM (BIND_STORAGE impl=lutram): a LUT6 holds 64 x 1 bits; a second
// port doubles it.
constexpr int lutram_luts(long long depth, int width) { return depth <= 0 ? 0 : int(2 * width * ((depth + 63) / 64)); }
constexpr int kMaxLinearOut = max3(3 * EDGEMOE_MAX_DIM, EDGEMOE_MAX_MLP_HIDDEN, EDGEMOE_MAX_EXPERT_HIDDEN);
constexpr int kMaxLinearIn = max3(EDGEMOE_MAX_MLP_HIDDEN, EDGEMOE_MAX_EXPERT_HIDDEN,
                                  EDGEMOE_MAX_PATCH_IN > EDGEMOE_MAX_DIM ? EDGEMOE_MAX_PATCH_IN : EDGEMOE_MAX_DIM);
constexpr int kMaxOutTiles = ceil_div(kMaxLinearOut, kTout);
constexpr int kMaxInTiles = ceil_div(kMaxLinearIn, kTin);
constexpr int kMaxRowGroups = ceil_div(EDGEMOE_MAX_TOKENS, kTrows);
// The largest matrix: max over qkv (3D x D), MLP (Hd x D and D x Hd), experts (Hm x D, D x Hm), patch (D x 3P^2).
constexpr int tiles(int out, int in) { return ceil_div(out, kTout) * ceil_div(in, kTin); }
constexpr int kMaxWeightTiles =
    max3(max3(tiles(3 * EDGEMOE_MAX_DIM, EDGEMOE_MAX_DIM), tiles(EDGEMOE_MAX_MLP_HIDDEN, EDGEMOE_MAX_DIM),
              tiles(EDGEMOE_MAX_DIM, EDGEMOE_MAX_MLP_HIDDEN)),
         max2(tiles(EDGEMOE_MAX_EXPERT_HIDDEN, EDGEMOE_MAX_DIM), tiles(EDGEMOE_MAX_DIM, EDGEMOE_MAX_EXPERT_HIDDEN)),
         tiles(EDGEMOE_MAX_DIM, EDGEMOE_MAX_PATCH_IN));
constexpr int kWeightBuffers = 2;  // ping and pong

struct ResourceEstimate {
  int dsp, bram18, uram, lut;
};
// A buffer of `banks` banks, each `depth` x `width` bits, in BRAM18 or (EDGEMOE_ATTN_URAM) URAM288 (4K x 72).
constexpr int uram_for(long long depth, int width) {
  return depth <= 0 ? 0 : int(((width + 71) / 72) * ((depth + 4095) / 4096));
}
// DSP48E2s for one a x b-bit product: the multiplier is 27 x 18 (signed), so the wider operand is
// split into 27-bit and the narrower into 18-bit pieces, whichever way round needs fewer (UG579).
constexpr int dsps_for(int a, int b) {
  return int(cdiv(a, 27) * cdiv(b, 18) < cdiv(b, 27) * cdiv(a, 18) ? cdiv(a, 27) * cdiv(b, 18) : cdiv(b, 27) * cdiv(a, 18));
}
// The table functions' products, from fixed_math.h's operand widths (a product by a power of two is
// a shift and costs none): exp: x log2(e) (33 x 25), f times the 256 steps (24 x 9), the
// interpolation (16 x 26); 1/x: position (25 x 9), interpolation (16 x 25), m r0 (25 x 25), the
// Newton product (25 x 28); 1/sqrt: position (25 x 8), interpolation, y0^2, m y0^2 (26 x 26),
// y0 (3 - m y0^2) (25 x 30); GELU: the interpolation only (22 x 25; x 128 is a shift).
constexpr int kExpDsp = dsps_for(33, 25) + dsps_for(24, 9) + dsps_for(16, 26);
constexpr int kReciprocalDsp = dsps_for(25, 9) + dsps_for(16, 25) + dsps_for(25, 25) + dsps_for(25, 28);
constexpr int kRsqrtDsp = dsps_for(25, 8) + dsps_for(16, 25) + dsps_for(25, 25) + dsps_for(26, 26) + dsps_for(25, 30);
constexpr int kGeluDsp = dsps_for(22, 25);
// LayerNorm (layernorm.h), one instance (ALLOCATION at the kernel top), per word lane: d/D (32 x 25),
// d^2/D (32 x 32), (x - mean) mant (33 x 25), times gamma (32 x 32); per row the mean's square
// (32 x 32) and one 1/sqrt.
constexpr int kLayerNormDsp =
    kWordElems * (dsps_for(32, 25) + dsps_for(32, 32) + dsps_for(33, 25) + dsps_for(32, 32)) + dsps_for(32, 32) + kRsqrtDsp;
// Runtime address products (row x stride, both runtime), a 32 x 32 product each: the linear unit's
// reader (row), writer (row) and patch origin (two), LayerNorm's source and destination rows, the
// attention unit's q, k/v and output rows, the gate's token row.
constexpr int kAddressProducts = 10;
constexpr int kAddressDsp = kAddressProducts * dsps_for(32, 32);
// An m_axi adapter buffers what its outstanding requests can return: a FIFO of
// num_*_outstanding x max_*_burst_length words of the port's width per direction (UG1399, m_axi
// INTERFACE options), 512 bits here. Bundles only read: act_in, weights, weights_odd; read and
// written: params (the trace), act, scratch0-2.
constexpr int kAxiDataBits = 512;
constexpr int kAxiFifos = 3 * 1 + 5 * 2;
static_assert(3 + 5 == edgemoe_ledger::kPortCount, "every m_axi bundle counted once above");
constexpr int kAxiFifoBram18 = bram18_for((long long)kAxiOutstanding * kAxiMaxBurstBeats, kAxiDataBits);

constexpr ResourceEstimate resource_estimate() {
  const int linear_dsp = kTrows * (kTin * kTout + kTout * kGeluDsp) + 2 * kTout /* scatter score x y */;
  // Per block and slot: q.k (pass 1) and p.v (pass 2), kAttnLanes each (24 x 24 and 25 x 24 bits:
  // two DSPs each), one exp unit per pass, the scale (fm_t x fm_t: four); per block the output
  // normalisation (39 x 25 bits: three DSPs per lane) and 1/sum.
  const int attention_dsp = kAttnRows * (2 * 2 * kAttnLanes + 2 * kExpDsp + dsps_for(32, 32)) +
                            kAttnBlocks * (3 * kAttnLanes + kReciprocalDsp);
  const int other_dsp = kGateLanes /* gate MACs */ + EDGEMOE_MAX_EXPERTS * (kExpDsp + dsps_for(25, 25)) /* gate exp, probabilities */ +
                        kReciprocalDsp /* gate 1/sum */ + kLayerNormDsp + kAddressDsp;
  // Two buffers (ping, pong), each a bank per (o, i) lane and a bias bank per o lane.
  const int weight_bram = kWeightBuffers * (kTout * kTin * bram18_for(kMaxWeightTiles, wt_t::width) +
                                            kTout * bram18_for(kMaxOutTiles, fm_t::width));
  // The one linear_step instance reads ping or pong: a 2:1 mux per read bit (two per LUT6_2).
  const int weight_mux_luts = (kTout * kTin * wt_t::width + kTout * fm_t::width) / 2;
  const int row_cache_luts = kTrows * kTin * lutram_luts(kMaxInTiles, mac_in_t::width);
  // The reader's and the writer's double-buffered group stores (linear.h: assemble_tiles,
  // collect_rows), a LUTRAM bank per (row, lane), the writer's also per tile mod kTilesPerWord.
  const int group_store_luts = kTrows * kTin * lutram_luts(2LL * kMaxInTiles, mac_in_t::width) +
                               kTilesPerWord * kTrows * kTout * lutram_luts(2LL * ceil_div(kMaxOutTiles, kTilesPerWord), fm_t::width);
  const int queue_bram = EDGEMOE_MAX_EXPERTS * (bram18_for(EDGEMOE_MAX_TOKENS, 16) + bram18_for(EDGEMOE_MAX_TOKENS, unit_t::width));
  // The gate: a LUTRAM bank per (expert, feature lane).
  const int gate_luts = kGateLanes * lutram_luts(EDGEMOE_MAX_DIM / kGateFeatures, wt_t::width);
  // Attention: K and V (kAttnLanes banks each), the output rows (a bank per block and lane), pass
  // 1's scores (two halves, a bank per block and slot) and statistics (a bank per block).
  const long long kv_depth = (long long)EDGEMOE_MAX_TOKENS * EDGEMOE_MAX_DIM / kAttnLanes;
  const long long out_depth = (long long)ceil_div(EDGEMOE_MAX_TOKENS, kAttnRows) * kAttnP * (EDGEMOE_MAX_DIM / kAttnLanes);
  const long long score_depth = 2LL * (EDGEMOE_MAX_TOKENS + kAttnP - 1) * EDGEMOE_MAX_HEADS;
#if EDGEMOE_ATTN_URAM
  const int attention_uram = kAttnLanes * 2 * uram_for(kv_depth, qkv_t::width) +
                             kAttnBlocks * kAttnLanes * uram_for(out_depth, fm_t::width) +
                             kAttnRows * uram_for(score_depth, fm_t::width);
  const int attention_rows_bram = 0;
#else
  const int attention_uram = 0;
  const int attention_rows_bram = kAttnLanes * 2 * bram18_for(kv_depth, qkv_t::width) +
                                  kAttnBlocks * kAttnLanes * bram18_for(out_depth, fm_t::width) +
                                  kAttnRows * bram18_for(score_depth, fm_t::width);
#endif
  const int stats_width = fm_t::width + unit_t::width + 32;  // exp2 is an int
  const int attention_bram = attention_rows_bram + kAttnBlocks * bram18_for(2LL * kAttnP * EDGEMOE_MAX_HEADS, stats_width) +
                             bram18_for((long long)EDGEMOE_MAX_TOKENS * EDGEMOE_MAX_HEADS, stats_width);
  // LUTRAM: q and the p.v accumulators, a bank per block, slot and lane.
  const int attention_luts = kAttnRows * kAttnLanes * (lutram_luts(EDGEMOE_MAX_DIM / kAttnLanes, qkv_t::width) +
                                                      lutram_luts(EDGEMOE_MAX_DIM / kAttnLanes, pv_acc_t::width));
  const int layernorm_bram = 3 * bram18_for(EDGEMOE_MAX_DIM, fm_t::width);
  // Table ROMs: an interpolating lookup reads two neighbouring entries, both ports of its ROM, so
  // every unit has its own copy: exp (two per attention slot, one per expert in the gate), GELU
  // (one per output lane and row), 1/x (one per attention block, the gate's, LayerNorm's rsqrt).
  const int table_bram = (2 * kAttnRows + EDGEMOE_MAX_EXPERTS) * bram18_for(257, 32) +
                         kTrows * kTout * bram18_for(1025, 32) + (kAttnBlocks + 1) * bram18_for(257, 32) +
                         bram18_for(385, 32);
  // The linear unit's input stream: a group's tiles (T_rows x T_in lanes, kMaxInTiles deep) in LUTRAM.
  const int stream_luts = lutram_luts(kMaxInTiles, kTrows * kTin * mac_in_t::width);
  const int axi_bram = kAxiFifos * kAxiFifoBram18;
  const int dsp = linear_dsp + attention_dsp + other_dsp;
  const int bram18 = weight_bram + queue_bram + attention_bram + layernorm_bram + table_bram + axi_bram;
  // ~40 LUTs per DSP lane (operand muxes and pipeline control), ~30 per BRAM bank (address and
  // write-enable decode), the LUTRAM banks, 25K for the AXI masters, the control FSMs and the
  // s_axilite block.
  const int lut = 40 * dsp + 30 * (bram18 + attention_uram) + row_cache_luts + group_store_luts + attention_luts +
                  gate_luts + stream_luts + weight_mux_luts + 25000;
  return {dsp, bram18, attention_uram, lut};
}

}  // namespace edgemoe_hls
