// The one place for the numbers that set each unit's schedule: lanes, initiation intervals and
// pipeline depths. The pragmas use them (Vitis HLS takes constexpr values in pragmas, UG1399
// "Using Constants with Pragmas"), every pipelined loop reports them to the cycle ledger
// (cycle_ledger.h), and the resource estimate below counts from them, so the latency model cannot
// drift from the code. Why each II holds is written next to its loop and in kernels/README.md.
#pragma once

#include "cycle_ledger.h"
#include "formats.h"
#include "layout.h"

// Small memories (GELU's ROMs, LayerNorm's row and parameter buffers, the linear unit's input
// FIFO) in LUTs where the board is short of BRAM (config/u280.h), else in BRAM (short of LUTs: the
// ZCU102).
#ifndef EDGEMOE_SMALL_MEMORIES_IN_LUTS
#define EDGEMOE_SMALL_MEMORIES_IN_LUTS 0
#endif

// The platform's static region (shell) per SLR, for what each SLR leaves the kernel; none given: none.
#ifndef EDGEMOE_SHELL_LUT
#define EDGEMOE_SHELL_DSP 0, 0, 0
#define EDGEMOE_SHELL_BRAM36 0, 0, 0
#define EDGEMOE_SHELL_URAM 0, 0, 0
#define EDGEMOE_SHELL_LUT 0, 0, 0
#endif

// The floorplan of a multi-SLR device (config/<board>.h); a single die holds every part in SLR 0.
#ifndef EDGEMOE_SLRS
#define EDGEMOE_SLRS 1
#define EDGEMOE_SLR_LINEAR 1000, 0, 0
#define EDGEMOE_SLR_ATTENTION_SCORES 1000, 0, 0
#define EDGEMOE_SLR_ATTENTION_SCORE_BANKS 1000, 0, 0
#define EDGEMOE_SLR_ATTENTION_WEIGHING 1000, 0, 0
#define EDGEMOE_SLR_ATTENTION_OUTPUT 1000, 0, 0
#define EDGEMOE_SLR_LAYERNORM 1000, 0, 0
#define EDGEMOE_SLR_GATE 1000, 0, 0
#define EDGEMOE_SLR_INFRASTRUCTURE 1000, 0, 0
#define EDGEMOE_SLR_HEAD 1000, 0, 0
#endif

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
constexpr int kKvPack = 4;  // K and V lanes per on-chip word: 4 x 18-bit kv_t = 72 bits, a URAM word
constexpr int kWordsPerAttnChunk = kAttnLanes / kWordElems;  // activation words per lane chunk
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
// ceil(kAxiReadLatency / kAxiOutstanding) = 4 cycles, a bursting one a beat a cycle. 32-beat bursts
// (2 KiB) keep 16 x 32 = 512 beats in flight, far more than a 64-cycle latency needs for a beat a
// cycle, and halve the adapters' FIFOs against 64 (each is outstanding x burst words deep).
constexpr int kAxiOutstanding = 16;
constexpr int kAxiMaxBurstBeats = 32;
// The row bundles, act (x, the heads' outputs) and scratch0 (xn), carry the experts' rows, gathered
// from xn and scattered into x by token: single beats at data-dependent addresses (linear.h). Where
// the memory accepts more requests in flight (config/<board>.h: EDGEMOE_AXI_ROW_OUTSTANDING) they keep
// that many, so a single beat costs ceil(latency / outstanding) cycles, with bursts shortened to keep
// the adapter's FIFO (outstanding x burst words) the size every other bundle has.
#ifndef EDGEMOE_AXI_ROW_OUTSTANDING
#define EDGEMOE_AXI_ROW_OUTSTANDING 16
#endif
constexpr int kAxiRowOutstanding = EDGEMOE_AXI_ROW_OUTSTANDING;
constexpr int kAxiRowBurstBeats = kAxiOutstanding * kAxiMaxBurstBeats / kAxiRowOutstanding;
static_assert(kAxiRowOutstanding >= kAxiOutstanding && kAxiRowBurstBeats >= 8 &&
                  kAxiRowBurstBeats * kAxiRowOutstanding == kAxiOutstanding * kAxiMaxBurstBeats,
              "row bundles trade burst length for requests in flight, bursts of at least 8 beats, the same FIFO");
constexpr int kAxiPorts = edgemoe_ledger::kPortCount;
constexpr int axi_outstanding(edgemoe_ledger::Port port) {
  return port == edgemoe_ledger::kPortAct || port == edgemoe_ledger::kPortScratch0 ? kAxiRowOutstanding
                                                                                   : kAxiOutstanding;
}
// A pipeline whose lanes span SLRs (the U280 floorplan, config/u280.h) crosses each boundary through
// a register on either side (the SLL pair): two cycles per crossing, two crossings each way.
constexpr int kSlrCrossingDepth = EDGEMOE_SLRS > 1 ? 2 * 2 * 2 : 0;
// The MAC array's cascade (linear.h): a DSP a lane along the chain, then the accumulating add.
static_assert(kTin <= 33, "a cascade lane's operands wait at most 32 cycles: one SRL32 a bit");
constexpr int kLinearDepth =
    kMacDepth + kTin + 1 /* bias */ + kGeluDepth + 1 /* to the stream */ + kSlrCrossingDepth;
// A sweep iteration: a chunk of q.k (MAC), on the last chunk the lane sum, scale and softmax update.
// Pass 1's chain (the longer one): q.k MAC, lane tree, scale, exp, running-sum update (1/sum is
// formed later, as pass 2's group loads).
constexpr int kAttnSweepDepth = kMacDepth + log2_ceil(kAttnLanes) + 2 + kExpDepth + 2 + kSlrCrossingDepth;
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
// The convolution reader's tap table (window_reader.h): a tile's walk over (ky, kx, channel word)
// chains ~5 dependent add/compare steps, two cycles at 225-300 MHz.
constexpr int kTapWalkII = 2;

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
// A shallow bank bound to LUTRAM (BIND_STORAGE impl=lutram), from the distributed RAM shapes of an
// UltraScale+ CLB's eight LUTs (UG574). ram_2p (a read/write port and a read port): 32 x 8 bits
// (a LUT6 as two 32 x 1 halves, so a LUT a bit) or 64 x 4 (two LUTs a bit); deeper banks are 64-entry
// pieces. ram_s2p (a write port and a read port): 32 x 14 or 64 x 7 bits per eight LUTs.
constexpr int lutram_luts(long long depth, int width) {
  return depth <= 0 ? 0 : depth <= 32 ? width : int(2 * width * ((depth + 63) / 64));
}
constexpr int lutram_s2p_luts(long long depth, int width) {
  return depth <= 0 ? 0 : depth <= 32 ? int(8 * cdiv(width, 14)) : int(8 * cdiv(width, 7) * ((depth + 63) / 64));
}
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

// Task heads (head.h, window_reader.h): a convolution's input map rows hold up to kMaxMapW pixels
// of up to kMaxMapChWords words (the token grid's D features at conv_0, the head's channels after).
constexpr int kMaxMapW = EDGEMOE_MAX_MAP_W;
constexpr int kMaxHeadChannelWords = EDGEMOE_MAX_HEAD_CHANNELS / kWordElems;
constexpr int kMaxMapChWords = max2(kMaxDimWords, kMaxHeadChannelWords);
constexpr int kMaxHeadOutWords = ceil_div(EDGEMOE_MAX_HEAD_OUT, kWordElems);
// Winograd's F(2, 3) along window rows for conv_1..3 (window_reader.h, emit_pairs), on builds whose
// config sets EDGEMOE_HEAD_WINOGRAD: four terms, each a GEMM over pixel pairs with K = 3 C.
#ifndef EDGEMOE_HEAD_WINOGRAD
#define EDGEMOE_HEAD_WINOGRAD 0
#endif
constexpr bool kHeadWinograd = EDGEMOE_HEAD_WINOGRAD != 0;
constexpr int kWinogradTerms = kHeadWinogradTerms;
constexpr int kMaxWinogradInTiles = kHeadWinograd ? ceil_div(3 * EDGEMOE_MAX_HEAD_CHANNELS, kTin) : 0;
// The MAC array's row cache holds a group's whole K: a backbone row's, a direct 3x3 window's
// (9 C_in of the widest input map), or a pair group's four terms (12 C).
constexpr int kMaxDirectWindowInTiles = ceil_div(9 * kMaxMapChWords * kWordElems, kTin);
constexpr int kMaxWindowInTiles = max2(kMaxDirectWindowInTiles, kMaxWinogradInTiles);  // a job's tap table
constexpr int kMaxCachedInTiles = max3(kMaxInTiles, kMaxDirectWindowInTiles, kWinogradTerms * kMaxWinogradInTiles);
// A pair group's pixels: the Winograd rows are pairs, so its outputs fill two row groups.
constexpr int kPairGroupPixels = 2 * kTrows;
// Output tiles the MAC array's epilogue forms at once (a Winograd pair group's two halves on builds
// with kHeadWinograd, else one), and the rows of a group the writer's store holds.
constexpr int kEpilogueSides = kHeadWinograd ? 2 : 1;
constexpr int kCollectRows = kEpilogueSides * kTrows;
// Map rows: the last maps are 8 x the token grid's height, itself at most the tokens.
constexpr int kMaxMapRows = 8 * EDGEMOE_MAX_TOKENS;
static_assert(EDGEMOE_MAX_HEAD_CHANNELS % kWordElems == 0, "head channels are whole words");
static_assert(kMaxMapW <= EDGEMOE_MAX_TOKENS, "a map row is one linear job: at most a job's rows");
// Passes (slices of its output channels) a head convolution with K = `in` takes (layout.h).
constexpr int head_slices(int out, int in, int terms) {
  return head_slices_for(out, in, terms, kTin, kTout, kMaxWeightTiles, EDGEMOE_MAX_HEAD_CHANNELS);
}
// The most passes any head convolution needs (conv_0 of the widest model: K = 9 D).
constexpr int kMaxMapSlices = max3(head_slices(EDGEMOE_MAX_HEAD_CHANNELS, 9 * EDGEMOE_MAX_DIM, 1),
                                   head_slices(EDGEMOE_MAX_HEAD_CHANNELS, 9 * EDGEMOE_MAX_HEAD_CHANNELS, 1),
                                   kHeadWinograd ? head_slices(EDGEMOE_MAX_HEAD_CHANNELS, 3 * EDGEMOE_MAX_HEAD_CHANNELS,
                                                               kWinogradTerms)
                                                 : 0);
static_assert(head_slices(EDGEMOE_MAX_HEAD_CHANNELS, 9 * EDGEMOE_MAX_DIM, 1) >= 1 &&
                  head_slices(EDGEMOE_MAX_HEAD_CHANNELS, 9 * EDGEMOE_MAX_HEAD_CHANNELS, 1) >= 1 &&
                  (!kHeadWinograd || head_slices(EDGEMOE_MAX_HEAD_CHANNELS, 3 * EDGEMOE_MAX_HEAD_CHANNELS, kWinogradTerms) >= 1),
              "every head convolution (direct, and Winograd's four terms) fits a weight buffer for 16 channels");

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
// a shift and costs none; so is every table position: times its 256 or 128 steps): exp: x log2(e)
// (33 x 25) and the interpolation (16 x 26); 1/x: interpolation (16 x 25), m r0 (25 x 25), the
// Newton product (25 x 28); 1/sqrt: interpolation, y0^2, m y0^2 (26 x 26), y0 (3 - m y0^2)
// (25 x 30); GELU: the interpolation only (22 x 25).
constexpr int kExpDsp = dsps_for(33, 25) + dsps_for(16, 26);
constexpr int kReciprocalDsp = dsps_for(16, 25) + dsps_for(25, 25) + dsps_for(25, 28);
constexpr int kRsqrtDsp = dsps_for(16, 25) + dsps_for(25, 25) + dsps_for(26, 26) + dsps_for(25, 30);
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
// written: params (the trace), act (x and the heads' outputs), scratch0-2.
constexpr int kAxiDataBits = 512;
constexpr int kAxiFifos = 3 * 1 + 5 * 2;
static_assert(3 + 5 == edgemoe_ledger::kPortCount, "every m_axi bundle counted once above");
constexpr int kAxiFifoBram18 = bram18_for((long long)kAxiOutstanding * kAxiMaxBurstBeats, kAxiDataBits);

// The kernel's parts, as the floorplan places them (a part's share of an SLR is counted in its
// lanes: output lanes of the MAC array, blocks of the attention unit).
enum ResourcePart {
  kPartLinear = 0,
  kPartAttentionScores,
  kPartAttentionScoreBanks,
  kPartAttentionWeighing,
  kPartAttentionOutput,
  kPartLayerNorm,
  kPartGate,
  kPartInfrastructure,
  kPartHead,
  kResourceParts
};
constexpr int kMaxSlrs = 3;
constexpr int kSlrs = EDGEMOE_SLRS;
// Per mille of each part per SLR (config/<board>.h: the floorplan, and why).
constexpr int kSlrShare[kResourceParts][kMaxSlrs] = {{EDGEMOE_SLR_LINEAR},
                                                     {EDGEMOE_SLR_ATTENTION_SCORES},
                                                     {EDGEMOE_SLR_ATTENTION_SCORE_BANKS},
                                                     {EDGEMOE_SLR_ATTENTION_WEIGHING},
                                                     {EDGEMOE_SLR_ATTENTION_OUTPUT},
                                                     {EDGEMOE_SLR_LAYERNORM},
                                                     {EDGEMOE_SLR_GATE},
                                                     {EDGEMOE_SLR_INFRASTRUCTURE},
                                                     {EDGEMOE_SLR_HEAD}};
constexpr bool floorplan_complete() {
  for (int p = 0; p < kResourceParts; ++p) {
    int sum = 0;
    for (int slr = 0; slr < kMaxSlrs; ++slr) sum += slr < kSlrs ? kSlrShare[p][slr] : (kSlrShare[p][slr] != 0 ? 10000 : 0);
    if (sum != 1000) return false;
  }
  return true;
}
static_assert(kSlrs >= 1 && kSlrs <= kMaxSlrs && floorplan_complete(),
              "every part's SLR shares add up to 1000 per mille over the device's SLRs");

// ~40 LUTs per DSP lane (operand muxes and pipeline control), ~30 per BRAM or URAM bank (address and
// write-enable decode), plus each part's LUTRAM banks.
constexpr int logic_luts(int dsp, int bram18, int uram) { return 40 * dsp + 30 * (bram18 + uram); }

constexpr ResourceEstimate resource_part(ResourcePart part) {
  // Table ROMs: an interpolating lookup reads two neighbouring entries, both ports of its ROM, so
  // every lookup instance has its own copy (fixed_math.h).
  const int exp_rom = bram18_for(257, 32), recip_rom = bram18_for(257, 32), rsqrt_rom = bram18_for(385, 32);
  // GELU's ROM (1,025 x 24 bits) in BRAM, or in LUTs (a LUT6 is a 64 x 1 ROM, a copy per read port).
  const bool small_in_luts = EDGEMOE_SMALL_MEMORIES_IN_LUTS != 0;
  const int gelu_rom_bram18 = small_in_luts ? 0 : bram18_for(1025, 24);
  const int gelu_rom_luts = small_in_luts ? 2 * 24 * int(cdiv(1025, 64)) : 0;
  if (part == kPartLinear) {
    const int dsp = kTrows * (kTin * kTout + kTout * kGeluDsp) +
                    kWordElems * dsps_for(unit_t::width, fm_t::width) /* the scatter's score x y, a word a cycle */;
    // The input stream: a group's tiles (T_rows x T_in lanes, kMaxInTiles deep), in LUTRAM or BRAM.
    const int stream_luts = small_in_luts ? lutram_luts(kMaxInTiles, kTrows * kTin * mac_in_t::width) : 0;
    const int stream_bram18 = small_in_luts ? 0 : bram18_for(kMaxInTiles, kTrows * kTin * mac_in_t::width);
    // Two buffers (ping, pong), each a bank per (o, i) lane and a bias bank per o lane; a GELU ROM per
    // output lane and row.
    const int bram18 = kWeightBuffers * (kTout * kTin * bram18_for(kMaxWeightTiles, wt_t::width) +
                                         kTout * bram18_for(kMaxOutTiles, fm_t::width)) +
                       kTrows * kTout * gelu_rom_bram18 + stream_bram18;
    // Each output's T_in products are summed along a DSP cascade (PCIN), not a fabric tree: lane i's
    // operands wait i cycles, an SRL32 (one LUT) a bit: the activations per (row, lane), the weights
    // per (output, lane) (read with the address the step had, then delayed); each output's
    // accumulating add counted in fabric (48 bits) in case it does not fold into the last DSP.
    const int cascade_luts = (kTin - 1) * (kTrows * mac_in_t::width + kTout * wt_t::width) +
                             kTrows * kTout * acc_t::width;
    // The one linear_step instance reads ping or pong: a 2:1 mux per read bit (two per LUT6_2).
    const int weight_mux_luts = (kTout * kTin * wt_t::width + kTout * fm_t::width) / 2;
    const int row_cache_luts = kTrows * kTin * lutram_s2p_luts(kMaxCachedInTiles, mac_in_t::width);
    // The reader's and the writer's double-buffered group stores (linear.h: assemble_tiles,
    // collect_rows), a LUTRAM bank per (row, lane), the writer's also per tile mod kTilesPerWord.
    // The writer's holds a Winograd pair group's 2 T_rows rows (kCollectRows).
    const int group_store_luts = kTrows * kTin * lutram_s2p_luts(2LL * kMaxInTiles, mac_in_t::width) +
                                 kTilesPerWord * kCollectRows * kTout *
                                     lutram_s2p_luts(2LL * ceil_div(kMaxOutTiles, kTilesPerWord), fm_t::width);
    // The epilogue's bias add per (row, output lane): 48 bits, a LUT and a carry bit each.
    const int bias_add_luts = kTrows * kTout * acc_t::width;
    // Winograd (kHeadWinograd): per (row, output lane) the pair's 2 y0 and 2 y1 (a 48-bit add or
    // subtract each, the term's choice of sign), the first half's choice of the sum or a halved 2 y
    // (a 2:1 mux a bit, two per LUT6_2), the second half's bias add and ReLU, its pending register's
    // way into the output tile (a 2:1 mux a bit), and the writer's row read choice over 2 T_rows rows
    // instead of T_rows (a LUT a bit of a word).
    const int winograd_luts = kHeadWinograd ? 2 * kTrows * kTout * acc_t::width + kTrows * kTout * acc_t::width / 2 +
                                                  kTrows * kTout * (acc_t::width + 80) + kTrows * kTout * fm_t::width / 2 +
                                                  kWordElems * fm_t::width
                                            : 0;
    // The heads' epilogue: ReLU and saturation per output lane and row (a 48-bit compare and a 32-bit
    // select, ~80 LUTs); the window tiles' stream (2 deep, an SRL per bit) and the MAC array's choice
    // between it and the reader's tiles (a 2:1 mux per bit, two per LUT6_2).
    const int tile_bits = kTrows * kTin * mac_in_t::width;
    const int relu_luts = kTrows * kTout * 80 + tile_bits + tile_bits / 2;
    return {dsp, bram18, 0,
            logic_luts(dsp, bram18, 0) + weight_mux_luts + row_cache_luts + group_store_luts + stream_luts +
                cascade_luts + bias_add_luts + kTrows * kTout * gelu_rom_luts + relu_luts + winograd_luts};
  }
  if (part == kPartHead) {
    // The convolution reader (window_reader.h): the line buffer, a bank per pixel mod T_rows of
    // 3 rows x pixel groups x channel words of 16 line_lane_t lanes (416 bits), read twice a cycle:
    // true dual-port, so BRAM18s as 1K x 18 (the 512 x 36 shape is simple dual-port only), or URAM
    // (EDGEMOE_LINE_BUFFER_URAM); with Winograd each bank split by channel-word parity (half as
    // deep). Its write data: four load sites (three sources, the upsampler), each converting 16
    // lanes (~30 LUTs a lane), and their muxes (a LUT per bit); per tile word and row a T_rows:1
    // choice of bank (a LUT per bit). Winograd's emitter (emit_pairs): per word, operand and pair a
    // T_rows:1 choice of bank (a LUT per bit), and per lane the operands' zero gating and their add
    // or subtract (27 bits, a LUT a bit each). The upsampler (head.h): per lane three blends of
    // three 35-bit adds and their operand muxes; its four words each a T_rows:1 choice of bank. The
    // runtime address products of the head's loops (row x width x words per plane, 16, 32 x 32
    // each) and three constant dividers (by 3, once per job or row).
    const int lane_bits = kWordElems * line_lane_t::width;
    const int parities = kHeadWinograd ? 2 : 1;
    const long long line_depth = cdiv(3LL * ceil_div(kMaxMapW, kTrows) * kMaxMapChWords, parities);
    const bool line_in_uram = EDGEMOE_LINE_BUFFER_URAM != 0;
    const int line_bram18 = line_in_uram ? 0 : parities * kTrows * int(cdiv(lane_bits, 18) * cdiv(line_depth, 1024));
    const int line_uram = line_in_uram ? parities * kTrows * uram_for(line_depth, lane_bits) : 0;
    const int load_luts = 4 * kWordElems * 30 + 3 * lane_bits;
    const int window_luts = kWordsPerInTile * kTrows * lane_bits;
    const int pair_luts = kHeadWinograd ? kWordsPerInTile * 2 * kTrows * lane_bits +
                                              kWordsPerInTile * kTrows * kWordElems * 2 * mac_in_t::width
                                        : 0;
    const int upsampler_luts = kWordElems * (9 * 35 + 6 * 35 / 2) + 4 * lane_bits;
    const int address_dsp = 16 * dsps_for(32, 32);
    const int divider_luts = 3 * 500;
    return {address_dsp, line_bram18, line_uram,
            logic_luts(address_dsp, line_bram18, line_uram) + load_luts + window_luts + pair_luts + upsampler_luts +
                divider_luts};
  }
  if (part == kPartAttentionScores || part == kPartAttentionScoreBanks || part == kPartAttentionWeighing ||
      part == kPartAttentionOutput) {
    // The attention unit in four parts (attention.h). Pass 1 (scores) holds K and the q rows, and
    // per block and slot q.k over kAttnLanes (q_t x kv_t: one DSP a lane, accumulating in its P
    // register), the lanes' adder tree (score_acc_t adds), the scale (fm_t x attn_scale_t), an exp
    // unit, the running sum's rescale (sum_t x unit_t) and the softmax update's compares, differences
    // and adds in fabric; the running maxima and sums (LUTRAM per block and slot, by head), its
    // statistics banks, the one 1/sum unit (load_group_stats) and the rows' maxima and 1/sum for
    // write_rows (`info`: its three fields are three arrays). The score banks (pass 1 writes them,
    // pass 2 reads them) are a part of their own, so the floorplan can place them apart from both
    // passes. Pass 2 (weighing) holds V and per block and slot p.v (unit_t x kv_t: one DSP a lane)
    // added to its accumulator in fabric (pv_acc_t is wider than the P register), an exp unit, the
    // accumulators, and per block the finishing slot's choice of sums (a P:1 mux a bit), and the
    // maxima it is given per group (registers). The output holds the output rows
    // (each row's sum p.v) and write_rows' division for a word a cycle: the row's read from a bank of
    // its block (a blocks x chunk-words : 1 mux a bit), a shift by 1/sum's exponent (4 bits: a
    // barrel shifter, two levels per LUT) and the product with its mantissa (shifted_sum_t x unit_t).
    // K and V are banks of kKvPack lanes (kv_t each: a 72-bit word).
    const long long kv_depth = (long long)EDGEMOE_MAX_TOKENS * EDGEMOE_MAX_DIM / kAttnLanes;
    const int kv_banks = kAttnLanes / kKvPack, kv_width = kKvPack * kv_t::width;
    const long long out_depth =
        (long long)ceil_div(EDGEMOE_MAX_TOKENS, kAttnRows) * kAttnP * (EDGEMOE_MAX_DIM / kAttnLanes);
    const int out_width = pv_acc_t::width;
    const long long score_depth = 2LL * (EDGEMOE_MAX_TOKENS + kAttnP - 1) * EDGEMOE_MAX_HEADS;
    const int fm_diff_width = fm_t::width + 1;
    const int running_width = fm_t::width + sum_t::width;      // pass 1's statistics: max and sum
#if EDGEMOE_ATTN_URAM
    const bool in_uram = true;
#else
    const bool in_uram = false;
#endif
    const int kv_uram = kv_banks * uram_for(kv_depth, kv_width), kv_bram18 = kv_banks * bram18_for(kv_depth, kv_width);
    // Banks of `count` x `depth` x `width`, in URAM or BRAM18 as the build binds them.
    int uram = 0, bram18 = 0, dsp = 0, lutram = 0, fabric_luts = 0;
    if (part == kPartAttentionScores) {
      dsp = kAttnRows * (kAttnLanes * dsps_for(q_t::width, kv_t::width) + dsps_for(fm_t::width, attn_scale_t::width + 1) +
                         kExpDsp + dsps_for(sum_t::width + 1, unit_t::width + 1)) +
            kReciprocalDsp;
      // per row: the score against the max (a compare), two differences and their choice, the sum's
      // add and the new max and sum's choices
      fabric_luts = kAttnRows * (kAttnLanes - 1) * score_acc_t::width +
                    kAttnRows * (fm_t::width + 3 * fm_diff_width + 2 * sum_t::width);
      (in_uram ? uram : bram18) += in_uram ? kv_uram : kv_bram18;
      lutram = kAttnRows * kAttnLanes * lutram_s2p_luts(EDGEMOE_MAX_DIM / kAttnLanes, q_t::width) +
               kAttnRows * lutram_luts(EDGEMOE_MAX_HEADS, running_width);
      const long long rows_heads = (long long)EDGEMOE_MAX_TOKENS * EDGEMOE_MAX_HEADS;
      bram18 += kAttnRows * exp_rom + kAttnBlocks * bram18_for(2LL * kAttnP * EDGEMOE_MAX_HEADS, running_width) +
                recip_rom + bram18_for(rows_heads, fm_t::width) + bram18_for(rows_heads, unit_t::width) +
                bram18_for(rows_heads, 32);
    } else if (part == kPartAttentionScoreBanks) {
      (in_uram ? uram : bram18) += kAttnRows * (in_uram ? uram_for(score_depth, fm_t::width) : bram18_for(score_depth, fm_t::width));
    } else if (part == kPartAttentionWeighing) {
      dsp = kAttnRows * (kAttnLanes * dsps_for(unit_t::width + 1 /* signed */, kv_t::width) + kExpDsp);
      (in_uram ? uram : bram18) += in_uram ? kv_uram : kv_bram18;
      bram18 += kAttnRows * exp_rom;
      lutram = kAttnRows * kAttnLanes * lutram_s2p_luts(EDGEMOE_MAX_DIM / kAttnLanes, pv_acc_t::width);
      fabric_luts = kAttnRows * kAttnLanes * pv_acc_t::width + kAttnBlocks * kAttnLanes * pv_acc_t::width * (kAttnP > 1) +
                    kAttnRows * EDGEMOE_MAX_HEADS * fm_t::width / 2 /* the maxima's registers' read mux */;
    } else {
      dsp = kWordElems * dsps_for(shifted_sum_t::width, unit_t::width);
      (in_uram ? uram : bram18) += kAttnBlocks * kAttnLanes * (in_uram ? uram_for(out_depth, out_width) : bram18_for(out_depth, out_width));
      const int out_banks_per_read = kAttnBlocks * kWordsPerAttnChunk;  // a bank of (block, word in chunk) per element
      fabric_luts = kWordElems * (shifted_sum_t::width * 4 / 2 + pv_acc_t::width * int(cdiv(out_banks_per_read, 4)));
    }
    return {dsp, bram18, uram, logic_luts(dsp, bram18, uram) + lutram + fabric_luts};
  }
  if (part == kPartLayerNorm) {
    // gamma, beta (a bank per word lane, kMaxDimWords deep) and the two row buffers (a bank per
    // word lane, 2 kMaxDimWords deep): 48 small banks, in BRAM or LUTs.
    const int buffer_bram18 = small_in_luts ? 0
                                            : 2 * kWordElems * bram18_for(kMaxDimWords, fm_t::width) +
                                                  kWordElems * bram18_for(2LL * kMaxDimWords, fm_t::width);
    const int buffer_luts = small_in_luts ? 2 * kWordElems * lutram_luts(kMaxDimWords, fm_t::width) +
                                                kWordElems * lutram_luts(2LL * kMaxDimWords, fm_t::width)
                                          : 0;
    const int bram18 = buffer_bram18 + rsqrt_rom;
    return {kLayerNormDsp, bram18, 0, logic_luts(kLayerNormDsp, bram18, 0) + buffer_luts};
  }
  if (part == kPartGate) {
    const int dsp = kGateLanes /* MACs */ + EDGEMOE_MAX_EXPERTS * (kExpDsp + dsps_for(25, 25)) /* exp, probability */ +
                    kReciprocalDsp /* 1/sum */;
    // The expert queues (tokens, scores) by expert; an exp ROM per expert and the 1/x ROM; the gate
    // matrix in a LUTRAM bank per (expert, feature lane).
    const int bram18 = EDGEMOE_MAX_EXPERTS * (bram18_for(EDGEMOE_MAX_TOKENS, 16) + bram18_for(EDGEMOE_MAX_TOKENS, unit_t::width)) +
                       EDGEMOE_MAX_EXPERTS * exp_rom + recip_rom;
    return {dsp, bram18, 0, logic_luts(dsp, bram18, 0) + kGateLanes * lutram_luts(EDGEMOE_MAX_DIM / kGateFeatures, wt_t::width)};
  }
  // The m_axi adapters' FIFOs, the address products, 25K LUTs for the AXI masters, the control FSMs
  // and the s_axilite block.
  const int bram18 = kAxiFifos * kAxiFifoBram18;
  return {kAddressDsp, bram18, 0, logic_luts(kAddressDsp, bram18, 0) + 25000};
}

constexpr ResourceEstimate resource_estimate() {
  ResourceEstimate total = {0, 0, 0, 0};
  for (int p = 0; p < kResourceParts; ++p) {
    const ResourceEstimate r = resource_part(ResourcePart(p));
    total = {total.dsp + r.dsp, total.bram18 + r.bram18, total.uram + r.uram, total.lut + r.lut};
  }
  return total;
}

// One SLR's share: each part's resources times its share there (rounded up).
constexpr ResourceEstimate slr_estimate(int slr) {
  ResourceEstimate total = {0, 0, 0, 0};
  for (int p = 0; p < kResourceParts; ++p) {
    const ResourceEstimate r = resource_part(ResourcePart(p));
    const int share = kSlrShare[p][slr];
    total = {total.dsp + int(cdiv((long long)r.dsp * share, 1000)), total.bram18 + int(cdiv((long long)r.bram18 * share, 1000)),
             total.uram + int(cdiv((long long)r.uram * share, 1000)), total.lut + int(cdiv((long long)r.lut * share, 1000))};
  }
  return total;
}

}  // namespace edgemoe_hls
