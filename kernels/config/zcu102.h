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
#define EDGEMOE_MAX_TASKS 2
#define EDGEMOE_MAX_PATCH_IN 768
// A MAC array shaped unlike emu's 16 x 16 (same 256 DSPs) and twice emu's attention lanes: the
// cross-board bit-identity test (ctest kernel_boards_bit_identical) then compares different tilings.
#define EDGEMOE_LINEAR_TIN 32
#define EDGEMOE_LINEAR_TOUT 8
#define EDGEMOE_ATTN_LANES 16  // ViT-T's head dim 64 is a multiple
