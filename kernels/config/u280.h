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
// m_axi bundle is on its own HBM pseudo-channels; a port gets ~13.2 GB/s (measured, 32 ports:
// 44 B per cycle at 300 MHz, below a 512-bit port's 64); all 32 channels together 421 GB/s.
#define EDGEMOE_DEVICE_NAME "XCU280"
#define EDGEMOE_CLOCK_MHZ 300
#define EDGEMOE_PORT_BYTES_PER_KCYCLE 44000
#define EDGEMOE_DEVICE_BYTES_PER_KCYCLE 1404000
#define EDGEMOE_DEVICE_DSP 9024
#define EDGEMOE_DEVICE_BRAM36 2016
#define EDGEMOE_DEVICE_URAM 960
#define EDGEMOE_DEVICE_LUT 1303680
