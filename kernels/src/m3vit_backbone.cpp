#include "m3vit_backbone.h"

#include "attention.h"
#include "build_record.h"
#include "layernorm.h"
#include "layout.h"
#include "linear.h"
#include "moe.h"

using namespace edgemoe_hls;

namespace {

// On-chip state that outlives one stage: the two weight buffers and the expert queues.
LinearWeights g_ping, g_pong;
ExpertQueues g_queues;

// The build query's answer: the constant record streamed to DDR.
void write_build_record(ap_uint<32>* out) {
write_record:
  for (int i = 0; i < kBuildRecordWords; ++i) {
#pragma HLS PIPELINE II = 1
    out[i] = kBuildRecord[i];
  }
}

void patch_embedding(const pixel_t* image, const wt_t* weights, const fm_t* params, fm_t* x, const ModelDims& m) {
  const int D = m.dim, n = tokens(m);
copy_pos:  // x = pos_embed (row 0 already holds cls_token + pos_embed[0])
  for (int i = 0; i < EDGEMOE_MAX_TOKENS * EDGEMOE_MAX_DIM; ++i) {
#pragma HLS PIPELINE II = 1
    if (i >= n * D) break;
    x[i] = params[p_pos(m) + i];
  }
  load_linear_weights(weights + w_patch(m), params + p_patch_bias(m), D, patch_in(m), g_ping);
  LinearJob job = {0, m.grid_h * m.grid_w, kReadPatches, nullptr, 0, nullptr, image, m.grid_h, m.grid_w, m.patch,
                   kWriteAdd, x + D, D, nullptr, false};
  run_linear(g_ping, job);
}

void attention_half(fm_t* x, fm_t* xn, fm_t* qkv, fm_t* scores, fm_t* info, const wt_t* weights,
                    const fm_t* params, const ModelDims& m, int b, fm_t scale) {
  const int D = m.dim, n = tokens(m);
  layer_norm(x, D, xn, D, params + p_ln1(m, b), params + p_ln1(m, b) + D, n, D);
  load_linear_weights(weights + w_qkv(m, b), params + p_qkv_bias(m, b), 3 * D, D, g_ping);
  LinearJob to_qkv = {0, n, kReadRows, xn, D, nullptr, nullptr, 0, 0, 0, kWriteStore, qkv, 3 * D, nullptr, false};
  run_linear(g_ping, to_qkv);
  load_linear_weights(weights + w_proj(m, b), params + p_proj_bias(m, b), D, D, g_pong);
  run_attention(qkv, scores, info, n, D, m.heads, scale, xn);
  LinearJob proj = {0, n, kReadRows, xn, D, nullptr, nullptr, 0, 0, 0, kWriteAdd, x, D, nullptr, false};
  run_linear(g_pong, proj);
}

void mlp_half(fm_t* x, fm_t* xn, fm_t* hidden, const wt_t* weights, const fm_t* params, const ModelDims& m, int b,
              int task, ap_uint<32>* trace) {
  const int D = m.dim, n = tokens(m);
  layer_norm(x, D, xn, D, params + p_ln2(m, b), params + p_ln2(m, b) + D, n, D);
  if (is_moe(m, b)) {
    moe_layer(xn, x, hidden, n, m, b, task, weights, params, g_ping, g_pong, g_queues,
              trace + (long)moe_index(m, b) * 3 * m.experts);
    return;
  }
  load_linear_weights(weights + w_fc1(m, b), params + p_fc1_bias(m, b), m.mlp_hidden, D, g_ping);
  LinearJob up = {0, n, kReadRows, xn, D, nullptr, nullptr, 0, 0, 0, kWriteStore, hidden, m.mlp_hidden, nullptr, true};
  run_linear(g_ping, up);
  load_linear_weights(weights + w_fc2(m, b), params + p_fc2_bias(m, b), D, m.mlp_hidden, g_pong);
  LinearJob down = {0, n, kReadRows, hidden, m.mlp_hidden, nullptr, nullptr, 0, 0, 0, kWriteAdd, x, D, nullptr, false};
  run_linear(g_pong, down);
}

}  // namespace

extern "C" void m3vit_backbone(const pixel_t* images, const wt_t* weights, const fm_t* params, fm_t* x, fm_t* xn,
                               fm_t* qkv, fm_t* hidden, fm_t* scores, fm_t* softmax_info, ap_uint<32>* trace,
                               int num_images, int dim, int heads, int grid_h, int grid_w, int patch, int depth,
                               int mlp_hidden, int experts, int expert_hidden, int top_k, int num_tasks,
                               unsigned moe_mask, int task, fm_t attn_scale, int embed, int first_stage,
                               int last_stage) {
#pragma HLS INTERFACE m_axi port = images offset = slave bundle = act_in max_widen_bitwidth = 512
#pragma HLS INTERFACE m_axi port = weights offset = slave bundle = weights max_widen_bitwidth = 512
#pragma HLS INTERFACE m_axi port = params offset = slave bundle = params max_widen_bitwidth = 512
#pragma HLS INTERFACE m_axi port = x offset = slave bundle = act max_widen_bitwidth = 512
#pragma HLS INTERFACE m_axi port = xn offset = slave bundle = scratch0 max_widen_bitwidth = 512
#pragma HLS INTERFACE m_axi port = qkv offset = slave bundle = scratch1 max_widen_bitwidth = 512
#pragma HLS INTERFACE m_axi port = hidden offset = slave bundle = scratch0 max_widen_bitwidth = 512
#pragma HLS INTERFACE m_axi port = scores offset = slave bundle = scratch2 max_widen_bitwidth = 512
#pragma HLS INTERFACE m_axi port = softmax_info offset = slave bundle = scratch2
#pragma HLS INTERFACE m_axi port = trace offset = slave bundle = params
#pragma HLS INTERFACE s_axilite port = num_images
#pragma HLS INTERFACE s_axilite port = dim
#pragma HLS INTERFACE s_axilite port = heads
#pragma HLS INTERFACE s_axilite port = grid_h
#pragma HLS INTERFACE s_axilite port = grid_w
#pragma HLS INTERFACE s_axilite port = patch
#pragma HLS INTERFACE s_axilite port = depth
#pragma HLS INTERFACE s_axilite port = mlp_hidden
#pragma HLS INTERFACE s_axilite port = experts
#pragma HLS INTERFACE s_axilite port = expert_hidden
#pragma HLS INTERFACE s_axilite port = top_k
#pragma HLS INTERFACE s_axilite port = num_tasks
#pragma HLS INTERFACE s_axilite port = moe_mask
#pragma HLS INTERFACE s_axilite port = task
#pragma HLS INTERFACE s_axilite port = attn_scale
#pragma HLS INTERFACE s_axilite port = embed
#pragma HLS INTERFACE s_axilite port = first_stage
#pragma HLS INTERFACE s_axilite port = last_stage
#pragma HLS INTERFACE s_axilite port = return
  if (first_stage == kBuildQueryStage) {
    write_build_record(trace);
    return;
  }
  const ModelDims m = {dim, heads, grid_h, grid_w, patch, depth, mlp_hidden, experts, expert_hidden, top_k,
                       num_tasks, moe_mask};
  const int n = tokens(m);
  const long image_size = 3L * grid_h * patch * grid_w * patch;
  const long trace_per_image = trace_size(m, 1);
images_loop:
  for (int i = 0; i < kMaxImagesPerRun; ++i) {
    if (i >= num_images) break;
    fm_t* xi = x + (long)i * n * dim;
    if (embed) patch_embedding(images + i * image_size, weights, params, xi, m);
  stages:
    for (int stage = 0; stage < 2 * EDGEMOE_MAX_DEPTH; ++stage) {
      if (stage >= last_stage) break;
      if (stage < first_stage) continue;
      const int b = stage / 2;
      if (stage % 2 == 0) attention_half(xi, xn, qkv, scores, softmax_info, weights, params, m, b, attn_scale);
      else mlp_half(xi, xn, hidden, weights, params, m, b, task, trace + i * trace_per_image);
    }
  }
}
