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
#define EDGEMOE_LINEAR_TIN 32
#define EDGEMOE_LINEAR_TOUT 32
#define EDGEMOE_LINEAR_ROWS 3  // 3 rows share each weight read: 32 x 32 x 3 = 3072 MACs
#define EDGEMOE_ATTN_URAM 1  // K, V and the output rows of 1201 tokens in URAM (BRAM would not hold them)
#define EDGEMOE_ATTN_LANES 32  // head dims must be multiples of 32
#define EDGEMOE_ATTN_BLOCKS 4  // 4 x 4 rows per sweep: 16 x 32 MACs per cycle per pass
#define EDGEMOE_GATE_FEATURES 8  // gate: 8 features x 16 experts per cycle

// The board, for the latency and resource model (../shared/spec/hardware.md §1, §1.2, §6). Each
// m_axi bundle is on its own HBM pseudo-channels; a port gets ~13.2 GB/s (measured, 32 ports; a
// 512-bit port moves at most 64 B per kernel cycle); all 32 channels together 421 GB/s. The model
// turns these into bytes per cycle at the clock it is given.
// Clock: 225 MHz by default. The compute unit cannot fit one SLR (its weight banks alone exceed an
// SLR's BRAM), so its paths cross SLR boundaries, and the shell's HBM switch sits in SLR0
// (hardware.md: "200-250 MHz on the U280"); 225 MHz is the middle of that range. `estimate
// --clock-mhz` models any other.
#define EDGEMOE_DEVICE_NAME "XCU280"
#define EDGEMOE_CLOCK_MHZ 225
#define EDGEMOE_PORT_WIDTH_BYTES 64
#define EDGEMOE_PORT_MBPS 13200
#define EDGEMOE_DEVICE_MBPS 421200
#define EDGEMOE_DEVICE_DSP 9024
#define EDGEMOE_DEVICE_BRAM36 2016
#define EDGEMOE_DEVICE_URAM 960
#define EDGEMOE_DEVICE_LUT 1303680
