// ZCU102 (XCZU9EG): sized for Edge-MoE's model, ViT-T 128x256 (width 192, 129 tokens, 3 heads,
// 16 experts, expert hidden 384). See kernels/README.md for the resource estimate.
#pragma once
#define EDGEMOE_CFG_NAME "zcu102"
#define EDGEMOE_MAX_DIM 192
#define EDGEMOE_MAX_TOKENS 129
#define EDGEMOE_MAX_HEADS 3
#define EDGEMOE_MAX_DEPTH 12
#define EDGEMOE_MAX_MLP_HIDDEN 768
#define EDGEMOE_MAX_EXPERTS 16
#define EDGEMOE_MAX_EXPERT_HIDDEN 384
#define EDGEMOE_MAX_TOP_K 4
#define EDGEMOE_MAX_TASKS 6
#define EDGEMOE_MAX_PATCH_IN 768
// Task heads (head.h): up to 256 channels (M3ViT's), up to 64 output channels per task, maps up to
// 128 pixels wide (8 x the token grid's width at the last 3x3 convolution).
#define EDGEMOE_MAX_HEAD_CHANNELS 256
#define EDGEMOE_MAX_HEAD_OUT 64
#define EDGEMOE_LINE_BUFFER_URAM 0  // the convolution reader's line buffer in URAM (no URAM on the XCZU9EG)
#define EDGEMOE_MAX_MAP_W 128
// Heads' convolutions direct (9 C_in MACs an output): Winograd's F(2, 3) (emit_pairs) needs an odd
// T_rows and a line buffer split by channel-word parity, which at 128 pixels is 36 BRAM36 more
// (1,032 words a bank where 1,024 fit: over 80 %). Four rows of the direct array meet the target.
#define EDGEMOE_HEAD_WINOGRAD 0
// A MAC array shaped unlike emu's 32 x 16 x 2 rows: the cross-board bit-identity test (ctest
// kernel_boards_bit_identical) then compares different tilings and row groupings.
#define EDGEMOE_LINEAR_TIN 32
#define EDGEMOE_LINEAR_TOUT 8
#define EDGEMOE_LINEAR_ROWS 4  // 4 rows share each weight read: 32 x 8 x 4 = 1024 MACs
#define EDGEMOE_ATTN_URAM 0  // no URAM on the XCZU9EG: K, V and the output rows in BRAM
#define EDGEMOE_ATTN_LANES 16  // ViT-T's head dim 64 is a multiple
#define EDGEMOE_ATTN_BLOCKS 1  // 4 rows per sweep: a second block (-1.2 ms of ViT-T at 250 MHz) would take ~23 K LUTs (85 %)
#define EDGEMOE_GATE_FEATURES 4  // gate: 4 features x 16 experts per cycle

// The board, for the latency and resource model (../shared/spec/hardware.md §1, §1.3, §6). Each
// m_axi bundle reaches PS DDR through a 128-bit HP port: 16 B per kernel cycle, at most 5.3 GB/s
// (the port's 333 MHz); all ports together get at most 75 % of DDR4-2133's 17.1 GB/s (measured,
// FPT'19): 12.8 GB/s. The model turns these into bytes per cycle at the clock it is given.
// Clock: 250 MHz by default. The design fills ~60-85 % of the XCZU9EG's DSPs with long MAC adder
// chains and wide partition muxes; at that load 300 MHz is marginal on a single congested die
// (hardware.md: "plan 250 MHz on the ZCU102"), and Edge-MoE itself reports 300 MHz only for its
// smaller array. `estimate --clock-mhz` models any other.
#define EDGEMOE_DEVICE_NAME "XCZU9EG"
#define EDGEMOE_CLOCK_MHZ 250
#define EDGEMOE_PORT_WIDTH_BYTES 16
#define EDGEMOE_PORT_MBPS 5328
#define EDGEMOE_DEVICE_MBPS 12825
#define EDGEMOE_DEVICE_DSP 2520
#define EDGEMOE_DEVICE_BRAM36 912
#define EDGEMOE_DEVICE_URAM 0
#define EDGEMOE_DEVICE_LUT 274080
