// The accelerator's one top-level kernel: the M3ViT backbone for one task, on `images` images, and
// that task's head. m_axi: images, weights (two ports), params (read-only), x (result), scratch
// activations, the heads' outputs, trace; s_axilite: the scalars. Runs the stages [first_stage,
// last_stage) where stage 2b is block b's attention half and 2b+1 its MLP/MoE half; `embed` runs the
// patch embedding first. The host uses the range to compute the task-independent prefix once and
// the task-gated rest per task. head_out > 0: then the task's head (head.h; head_channels C, the
// heads packed after the backbone) runs per image on x, its first head_stages stages (6: all, the
// output in `outputs`; fewer: a trace reads the scratch maps).
#pragma once

#include "formats.h"

extern "C" void m3vit_backbone(
    const edgemoe_hls::pixel_word_t* images,  // [images][3][H][W] bytes, k/256, 64 to a word
    const edgemoe_hls::weight_word_t* weights,      // layout.h: the even 512-bit words (28 18-bit weights each)
    const edgemoe_hls::weight_word_t* weights_odd,  // layout.h: the odd words, on a second port
    const edgemoe_hls::fm_t* params,     // layout.h
    edgemoe_hls::fm_word_t* x,           // [images][N][D] residual stream (in/out), 16 fm_t per word
    edgemoe_hls::fm_word_t* xn,          // [N][max(D, ...)] scratch: normalised tokens / attention output
    edgemoe_hls::fm_word_t* qkv,         // [N][3D] scratch
    edgemoe_hls::fm_word_t* hidden,      // [N][max(Hd, Hm)] scratch; a head's convolution outputs
    edgemoe_hls::fm_word_t* outputs,     // [images][16 h][16 w][out words]: the task heads' outputs
    ap_uint<32>* trace,                  // [images][moe layers][3][E]
    int num_images, int dim, int heads, int grid_h, int grid_w, int patch, int depth, int mlp_hidden,
    int experts, int expert_hidden, int top_k, int num_tasks, unsigned moe_mask, int task,
    edgemoe_hls::fm_t attn_scale, int embed, int first_stage, int last_stage, int head_channels, int head_out,
    int head_stages);

#ifndef __SYNTHESIS__
#include "cycle_ledger.h"
// Host builds only: the build's board facts and resource estimate (cycle_ledger.h).
extern "C" void m3vit_board_model(edgemoe_ledger::BoardModel* out);
#endif
