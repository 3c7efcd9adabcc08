// Emulation build: maxima that cover ViT-T/S/B at PASCAL (1025 tokens) and NYUD (1201 tokens).
#pragma once
#define EDGEMOE_CFG_NAME "emu"
#define EDGEMOE_MAX_DIM 768
#define EDGEMOE_MAX_TOKENS 1201
#define EDGEMOE_MAX_HEADS 12
#define EDGEMOE_MAX_DEPTH 12
#define EDGEMOE_MAX_MLP_HIDDEN 3072
#define EDGEMOE_MAX_EXPERTS 16
#define EDGEMOE_MAX_EXPERT_HIDDEN 1536
#define EDGEMOE_MAX_TOP_K 4
#define EDGEMOE_MAX_TASKS 6
#define EDGEMOE_MAX_PATCH_IN 768   // 3 x 16 x 16
// Task heads (head.h): up to 256 channels (M3ViT's), up to 64 output channels per task, maps up to
// 320 pixels wide (8 x the token grid's width at the last 3x3 convolution).
#define EDGEMOE_MAX_HEAD_CHANNELS 256
#define EDGEMOE_MAX_HEAD_OUT 64
#define EDGEMOE_LINE_BUFFER_URAM 0  // the convolution reader's line buffer in URAM
#define EDGEMOE_MAX_MAP_W 320
// Heads' conv_1..3 as Winograd's F(2, 3) along window rows (window_reader.h, emit_pairs): exact, the
// same bits as the direct convolution for sums within +-4096 (kernels/README.md, Known limits).
#define EDGEMOE_HEAD_WINOGRAD 1
#define EDGEMOE_LINEAR_TIN 32      // MAC array: T_in x T_out (T_in >= 28: a packed weight word per cycle)
#define EDGEMOE_LINEAR_TOUT 16
#define EDGEMOE_LINEAR_ROWS 2      // rows sharing each weight read (throughput only: rows are independent)
#define EDGEMOE_ATTN_URAM 0
#define EDGEMOE_ATTN_LANES 16      // feature lanes per attention cycle
#define EDGEMOE_ATTN_BLOCKS 2      // blocks of P rows per sweep (throughput only: the bits do not depend on it)
#define EDGEMOE_GATE_FEATURES 16   // gate: token features per cycle (times every expert)
