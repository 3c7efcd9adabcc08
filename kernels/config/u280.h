// Alveo U280: sized for ViT-S at NYUD resolution (width 384, 1201 tokens, 12 heads, 16 experts,
// expert hidden 384, top-4), with a larger MAC array and more attention lanes.
#pragma once
#define EDGEMOE_CFG_NAME "u280"
#define EDGEMOE_MAX_DIM 384
#define EDGEMOE_MAX_TOKENS 1201
#define EDGEMOE_MAX_HEADS 12
#define EDGEMOE_MAX_DEPTH 12
#define EDGEMOE_MAX_MLP_HIDDEN 1536
#define EDGEMOE_MAX_EXPERTS 16
#define EDGEMOE_MAX_EXPERT_HIDDEN 768
#define EDGEMOE_MAX_TOP_K 4
#define EDGEMOE_MAX_TASKS 6
#define EDGEMOE_MAX_PATCH_IN 768
// Task heads (head.h): up to 256 channels (M3ViT's), up to 64 output channels per task, maps up to
// 320 pixels wide (8 x the token grid's width at the last 3x3 convolution).
#define EDGEMOE_MAX_HEAD_CHANNELS 256
#define EDGEMOE_MAX_HEAD_OUT 64
#define EDGEMOE_LINE_BUFFER_URAM 1  // the convolution reader's line buffer in URAM (BRAM is what the floorplan runs short of)
#define EDGEMOE_MAX_MAP_W 320
// Heads' conv_1..3 as Winograd's F(2, 3) along window rows (window_reader.h, emit_pairs): 2/3 of the
// MAC steps, the same bits (exact for sums within +-4096). Its pairs' operands fall in different line-buffer banks for an
// odd T_rows (3), each bank read twice a cycle.
#define EDGEMOE_HEAD_WINOGRAD 1
#define EDGEMOE_LINEAR_TIN 32
#define EDGEMOE_LINEAR_TOUT 32
#define EDGEMOE_LINEAR_ROWS 3  // 3 rows share each weight read: 32 x 32 x 3 = 3072 MACs
#define EDGEMOE_ATTN_URAM 1  // K, V and the output rows of 1201 tokens in URAM (BRAM would not hold them)
#define EDGEMOE_ATTN_LANES 32  // head dims must be multiples of 32
#define EDGEMOE_ATTN_BLOCKS 7  // 7 x 4 rows per sweep: 28 x 32 MACs per cycle per pass
#define EDGEMOE_GATE_FEATURES 8  // gate: 8 features x 16 experts per cycle

// The board, for the latency and resource model (../shared/spec/hardware.md §1, §1.2, §6). Each
// m_axi bundle is on its own HBM pseudo-channels; a port gets ~13.2 GB/s (measured, 32 ports; a
// 512-bit port moves at most 64 B per kernel cycle); all 32 channels together 421 GB/s. The model
// turns these into bytes per cycle at the clock it is given.
// Clock: 225 MHz by default. The compute unit cannot fit one SLR (its weight banks alone exceed an
// SLR's BRAM), so its paths cross SLR boundaries, and the shell's HBM switch sits in SLR0
// (hardware.md: "200-250 MHz on the U280"); 225 MHz is the middle of that range. `estimate
// --clock-mhz` models any other.
// The experts' rows move in single beats by token on the act and scratch0 bundles (schedule.h); on
// HBM those bundles keep 32 reads and writes in flight (bursts of 16 beats, the same adapter FIFO),
// so a single beat costs two cycles of the 64-cycle latency, not four: the experts' jobs are then
// MAC-bound (modelled: 64 in flight gains 0.01 ms more, 16 loses 10 ms). How many requests the HBM
// switch's port accepts before it stalls is not in our spec (unconfirmed): check it on the board.
#define EDGEMOE_AXI_ROW_OUTSTANDING 32
#define EDGEMOE_DEVICE_NAME "XCU280"
#define EDGEMOE_CLOCK_MHZ 225
#define EDGEMOE_PORT_WIDTH_BYTES 64
#define EDGEMOE_PORT_MBPS 13200
#define EDGEMOE_DEVICE_MBPS 421200
#define EDGEMOE_DEVICE_DSP 9024
#define EDGEMOE_DEVICE_BRAM36 2016
#define EDGEMOE_DEVICE_URAM 960
#define EDGEMOE_DEVICE_LUT 1303680

// Floorplan (kernels/vitis/README.md, "U280 floorplan"): three SLRs, each part's share per SLR in
// per mille. Neither the MAC array (~3,300 DSPs, 1,056 BRAM36 of weight and bias banks) nor the
// attention unit (~2,200 DSPs, 512 URAM) fits one SLR (3,008 DSP, 672 BRAM36, 320 URAM), and the
// shell's HBM switch and controller sit in SLR0. The MAC array is split by output lanes, 10 / 11 /
// 11 (weight and bias banks and GELUs follow their lanes; the row tile is broadcast across both
// crossings). Attention: pass 1 (K, q rows, q.k, exp, the statistics) in SLR1; pass 2 (V, p.v,
// accumulators) in SLR2 with the output stage (the output rows, write_rows' division), so the
// finishing rows' sums (7 blocks x 32 lanes x 55 bits a cycle) never cross a boundary; the score
// banks in SLR0, whose URAM is otherwise unused (pass 1 writes and pass 2 reads a score per slot).
// SLR0 also holds the m_axi adapters, LayerNorm, the gate and its queues, next to the HBM switch;
// its BRAM (the adapters' FIFOs, the queues) caps its MAC lanes at 10.
#define EDGEMOE_SLRS 3
// BRAM is what the floorplan runs short of (SLR0): GELU's ROMs and LayerNorm's buffers in LUTs.
#define EDGEMOE_SMALL_MEMORIES_IN_LUTS 1
#define EDGEMOE_SLR_LINEAR 313, 344, 343
#define EDGEMOE_SLR_ATTENTION_SCORES 0, 1000, 0
#define EDGEMOE_SLR_ATTENTION_SCORE_BANKS 1000, 0, 0
#define EDGEMOE_SLR_ATTENTION_WEIGHING 0, 0, 1000
#define EDGEMOE_SLR_ATTENTION_OUTPUT 0, 0, 1000
#define EDGEMOE_SLR_LAYERNORM 1000, 0, 0
#define EDGEMOE_SLR_GATE 1000, 0, 0
#define EDGEMOE_SLR_INFRASTRUCTURE 1000, 0, 0
// The heads' line buffer (URAM), window reader and upsampler in SLR1, where URAM is left, one
// boundary from the adapters and from the MAC array's row input (SLR2's URAM holds attention's
// output rows, SLR0's LUTs the HBM controller).
#define EDGEMOE_SLR_HEAD 0, 1000, 0
// The shell (xilinx_u280_gen3x16_xdma_1_202211_1: ~107.6K LUT, 195.5 BRAM36, 4 DSP in the rightmost
// column of every SLR) taken as a third per SLR, plus the HBM controller logic (~100K LUT) in SLR0
// (hardware.md §1.1).
#define EDGEMOE_SHELL_DSP 4, 0, 0
#define EDGEMOE_SHELL_BRAM36 66, 65, 65
#define EDGEMOE_SHELL_URAM 0, 0, 0
#define EDGEMOE_SHELL_LUT 135867, 35867, 35866
