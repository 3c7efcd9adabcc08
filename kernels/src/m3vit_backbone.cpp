#include "m3vit_backbone.h"

#include "attention.h"
#include "build_record.h"
#include "head.h"
#include "layernorm.h"
#include "layout.h"
#include "linear.h"
#include "moe.h"
#include "word_streams.h"

using namespace edgemoe_hls;

namespace {

// On-chip state that outlives one stage: the two weight buffers (ping, pong: two globals, so a job
// on one and a fetch into the other touch different memories; linear.h) and the expert queues.
// Partitioned in m3vit_backbone: one bank per (o, i) MAC lane of each buffer.
WeightBuffer g_ping, g_pong;
ExpertQueues g_queues;
SoftmaxTable g_softmax;  // each row's softmax statistics between the attention unit's two passes
LineBuffer g_line;       // the convolution reader's input rows (window_reader.h)

// A linear job on buffer `run` while the matrix at (w_offset, p_offset) is fetched into the other
// (linear.h: step_on). fetch_only: the fetch with no job; run_only: the job alone.
void run_and_fetch(int run, const LinearJob& job, const pixel_word_t* images, fm_word_t* x, fm_word_t* xn, fm_word_t* qkv,
                   fm_word_t* hidden, const weight_word_t* weights, const weight_word_t* weights_odd, const fm_t* params, long w_offset, long p_offset, int out,
                   int in) {
#pragma HLS INLINE
  step_on(g_ping, g_pong, run, job, images, x, xn, qkv, hidden, g_queues.token, g_queues.score, weights, weights_odd,
          params, w_offset, p_offset, out, in, g_line);
}

// The build query's answer: the constant record streamed to DDR.
void write_build_record(ap_uint<32>* out) {
write_record:
  for (int i = 0; i < kBuildRecordWords; ++i) {
#pragma HLS PIPELINE II = kII
    out[i] = kBuildRecord[i];
  }
}

// Every stage gets the image's buffers one by one, as linear_step does.
#define EDGEMOE_IMAGE_BUFFERS const pixel_word_t *images, fm_word_t *x, fm_word_t *xn, fm_word_t *qkv, fm_word_t *hidden
#define EDGEMOE_PASS_BUFFERS images, x, xn, qkv, hidden

void fetch_only(EDGEMOE_IMAGE_BUFFERS, const weight_word_t* weights, const weight_word_t* weights_odd, const fm_t* params, long w_offset, long p_offset,
                int out, int in, int fetch) {
#pragma HLS INLINE
  run_and_fetch(1 - fetch, no_linear_job(), EDGEMOE_PASS_BUFFERS, weights, weights_odd, params, w_offset, p_offset, out, in);
}
void run_only(int run, const LinearJob& job, EDGEMOE_IMAGE_BUFFERS, const weight_word_t* weights, const weight_word_t* weights_odd, const fm_t* params) {
#pragma HLS INLINE
  run_and_fetch(run, job, EDGEMOE_PASS_BUFFERS, weights, weights_odd, params, 0, 0, 0, 0);
}

// `count` params (4-byte beats, one burst) packed into words of x (one burst): two processes, as a
// loop that wrote a word every 16 reads would make the write conditional (no burst).
void read_pos_words(const fm_t* pos, int count, hls::stream<fm_word_t>& words) {
#pragma HLS INLINE off
  edgemoe_ledger::region_process(0);
  edgemoe_ledger::loop(edgemoe_ledger::kUnitPosEmbed, count, kII, kCopyDepth, edgemoe_ledger::burst(edgemoe_ledger::kPortParams),
                       (long long)count * beat_bytes<fm_t>(), beat_bytes<fm_t>());
  fm_word_t word;
read_pos:
  for (int i = 0; i < upto<EDGEMOE_MAX_TOKENS * EDGEMOE_MAX_DIM>(count); ++i) {
#pragma HLS PIPELINE II = kII
#pragma HLS LOOP_TRIPCOUNT max = EDGEMOE_MAX_TOKENS * EDGEMOE_MAX_DIM
    word.v[i % kWordElems] = pos[i];
    if (i % kWordElems == kWordElems - 1) words.write(word);
  }
}
void write_pos_words(fm_word_t* x, int count, hls::stream<fm_word_t>& words) {
#pragma HLS INLINE off
  edgemoe_ledger::region_process(1);
  burst_words_out(x, count / kWordElems, edgemoe_ledger::kUnitPosEmbed, edgemoe_ledger::kPortAct, words);
}
void copy_pos_embed(const fm_t* pos, fm_word_t* x, int count) {
#pragma HLS INLINE off
#pragma HLS DATAFLOW
  hls::stream<fm_word_t> words("pos_words");
#pragma HLS STREAM variable = words depth = 2
  edgemoe_ledger::region_begin();
  read_pos_words(pos, count, words);
  write_pos_words(x, count, words);
  edgemoe_ledger::region_end(edgemoe_ledger::kUnitPosEmbed);
}

void patch_embedding(EDGEMOE_IMAGE_BUFFERS, long image_byte, const weight_word_t* weights, const weight_word_t* weights_odd, const fm_t* params, const ModelDims& m) {
#pragma HLS INLINE
  const int D = m.dim, n = tokens(m);
  copy_pos_embed(params + p_pos(m), x, n * D);  // x = pos_embed (row 0 already holds cls_token + pos_embed[0])
  fetch_only(EDGEMOE_PASS_BUFFERS, weights, weights_odd, params, w_patch(m), p_patch_bias(m), D, patch_in(m), kPing);
  // rows 1..N-1 of x (row 0 is the cls token) += the patches' embeddings
  LinearJob job = {0, m.grid_h * m.grid_w, kReadPatches, kFromImage, -1, m.grid_h, m.grid_w, m.patch, image_byte,
                   kWriteAdd, kToX, D, false,
                   edgemoe_ledger::kUnitPatchEmbed, edgemoe_ledger::kPortActIn, edgemoe_ledger::kPortAct, no_window(), false};
  run_only(kPing, job, EDGEMOE_PASS_BUFFERS, weights, weights_odd, params);
}

void attention_half(EDGEMOE_IMAGE_BUFFERS, const weight_word_t* weights, const weight_word_t* weights_odd, const fm_t* params, const ModelDims& m, int b,
                    fm_t scale) {
#pragma HLS INLINE
  const int D = m.dim, n = tokens(m);
  layer_norm(x, xn, params + p_ln1(m, b), params + p_ln1(m, b) + D, n, D);
  fetch_only(EDGEMOE_PASS_BUFFERS, weights, weights_odd, params, w_qkv(m, b), p_qkv_bias(m, b), 3 * D, D, kPing);
  LinearJob to_qkv = {0, n, kReadRows, kFromXn, -1, 0, 0, 0, 0, kWriteStore, kToQkv, 0, false,
                      edgemoe_ledger::kUnitQkv, edgemoe_ledger::kPortScratch0, edgemoe_ledger::kPortScratch1, no_window(), false};
  run_and_fetch(kPing, to_qkv, EDGEMOE_PASS_BUFFERS, weights, weights_odd, params, w_proj(m, b), p_proj_bias(m, b), D, D);
  run_attention(qkv, n, D, m.heads, scale, xn, g_softmax);
  LinearJob proj = {0, n, kReadRows, kFromXn, -1, 0, 0, 0, 0, kWriteAdd, kToX, 0, false,
                    edgemoe_ledger::kUnitProj, edgemoe_ledger::kPortScratch0, edgemoe_ledger::kPortAct, no_window(), false};
  run_only(kPong, proj, EDGEMOE_PASS_BUFFERS, weights, weights_odd, params);
}

void mlp_half(EDGEMOE_IMAGE_BUFFERS, const weight_word_t* weights, const weight_word_t* weights_odd, const fm_t* params, const ModelDims& m, int b,
              int task, ap_uint<32>* trace) {
#pragma HLS INLINE
  const int D = m.dim, n = tokens(m);
  layer_norm(x, xn, params + p_ln2(m, b), params + p_ln2(m, b) + D, n, D);
  if (is_moe(m, b)) {
    moe_layer(EDGEMOE_PASS_BUFFERS, n, m, b, task, weights, weights_odd, params, g_ping, g_pong, g_queues, g_line,
              trace + (long)moe_index(m, b) * 3 * m.experts);
    return;
  }
  fetch_only(EDGEMOE_PASS_BUFFERS, weights, weights_odd, params, w_fc1(m, b), p_fc1_bias(m, b), m.mlp_hidden, D, kPing);
  LinearJob up = {0, n, kReadRows, kFromXn, -1, 0, 0, 0, 0, kWriteStore, kToHidden, 0, true,
                  edgemoe_ledger::kUnitFc1, edgemoe_ledger::kPortScratch0, edgemoe_ledger::kPortScratch2, no_window(), false};
  run_and_fetch(kPing, up, EDGEMOE_PASS_BUFFERS, weights, weights_odd, params, w_fc2(m, b), p_fc2_bias(m, b), D, m.mlp_hidden);
  LinearJob down = {0, n, kReadRows, kFromHidden, -1, 0, 0, 0, 0, kWriteAdd, kToX, 0, false,
                    edgemoe_ledger::kUnitFc2, edgemoe_ledger::kPortScratch2, edgemoe_ledger::kPortAct, no_window(), false};
  run_only(kPong, down, EDGEMOE_PASS_BUFFERS, weights, weights_odd, params);
}

#undef EDGEMOE_IMAGE_BUFFERS
#undef EDGEMOE_PASS_BUFFERS

}  // namespace

extern "C" void m3vit_backbone(const pixel_word_t* images, const weight_word_t* weights, const weight_word_t* weights_odd, const fm_t* params, fm_word_t* x,
                               fm_word_t* xn, fm_word_t* qkv, fm_word_t* hidden, fm_word_t* outputs, ap_uint<32>* trace,
                               int num_images, int dim, int heads, int grid_h, int grid_w, int patch, int depth,
                               int mlp_hidden, int experts, int expert_hidden, int top_k, int num_tasks,
                               unsigned moe_mask, int task, fm_t attn_scale, int embed, int first_stage,
                               int last_stage, int head_channels, int head_out, int head_stages) {
#pragma HLS INTERFACE m_axi port = images offset = slave bundle = act_in max_widen_bitwidth = 512 latency = kAxiReadLatency num_read_outstanding = kAxiOutstanding num_write_outstanding = kAxiOutstanding max_read_burst_length = kAxiMaxBurstBeats max_write_burst_length = kAxiMaxBurstBeats
#pragma HLS INTERFACE m_axi port = weights offset = slave bundle = weights max_widen_bitwidth = 512 latency = kAxiReadLatency num_read_outstanding = kAxiOutstanding num_write_outstanding = kAxiOutstanding max_read_burst_length = kAxiMaxBurstBeats max_write_burst_length = kAxiMaxBurstBeats
#pragma HLS INTERFACE m_axi port = weights_odd offset = slave bundle = weights_odd max_widen_bitwidth = 512 latency = kAxiReadLatency num_read_outstanding = kAxiOutstanding num_write_outstanding = kAxiOutstanding max_read_burst_length = kAxiMaxBurstBeats max_write_burst_length = kAxiMaxBurstBeats
#pragma HLS INTERFACE m_axi port = params offset = slave bundle = params max_widen_bitwidth = 512 latency = kAxiReadLatency num_read_outstanding = kAxiOutstanding num_write_outstanding = kAxiOutstanding max_read_burst_length = kAxiMaxBurstBeats max_write_burst_length = kAxiMaxBurstBeats
#pragma HLS INTERFACE m_axi port = x offset = slave bundle = act max_widen_bitwidth = 512 latency = kAxiReadLatency num_read_outstanding = kAxiRowOutstanding num_write_outstanding = kAxiRowOutstanding max_read_burst_length = kAxiRowBurstBeats max_write_burst_length = kAxiRowBurstBeats
#pragma HLS INTERFACE m_axi port = xn offset = slave bundle = scratch0 max_widen_bitwidth = 512 latency = kAxiReadLatency num_read_outstanding = kAxiRowOutstanding num_write_outstanding = kAxiRowOutstanding max_read_burst_length = kAxiRowBurstBeats max_write_burst_length = kAxiRowBurstBeats
#pragma HLS INTERFACE m_axi port = qkv offset = slave bundle = scratch1 max_widen_bitwidth = 512 latency = kAxiReadLatency num_read_outstanding = kAxiOutstanding num_write_outstanding = kAxiOutstanding max_read_burst_length = kAxiMaxBurstBeats max_write_burst_length = kAxiMaxBurstBeats
#pragma HLS INTERFACE m_axi port = hidden offset = slave bundle = scratch2 max_widen_bitwidth = 512 latency = kAxiReadLatency num_read_outstanding = kAxiOutstanding num_write_outstanding = kAxiOutstanding max_read_burst_length = kAxiMaxBurstBeats max_write_burst_length = kAxiMaxBurstBeats
  // The heads' outputs share x's bundle (one AXI master, one adapter FIFO: SLR0's BRAM is the U280's
  // limit); no dataflow region touches both.
#pragma HLS INTERFACE m_axi port = outputs offset = slave bundle = act max_widen_bitwidth = 512 latency = kAxiReadLatency num_read_outstanding = kAxiRowOutstanding num_write_outstanding = kAxiRowOutstanding max_read_burst_length = kAxiRowBurstBeats max_write_burst_length = kAxiRowBurstBeats
#pragma HLS INTERFACE m_axi port = trace offset = slave bundle = params latency = kAxiReadLatency num_read_outstanding = kAxiOutstanding num_write_outstanding = kAxiOutstanding max_read_burst_length = kAxiMaxBurstBeats max_write_burst_length = kAxiMaxBurstBeats
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
#pragma HLS INTERFACE s_axilite port = head_channels
#pragma HLS INTERFACE s_axilite port = head_out
#pragma HLS INTERFACE s_axilite port = head_stages
#pragma HLS INTERFACE s_axilite port = return
  // One bank per MAC lane (linear.h): every cycle of the MAC array reads each bank of its buffer
  // once, and the fetch writes each bank of the other at most once a cycle (a word pair every
  // two). The bias by output lane. Two globals, not one array with a ping/pong dimension: each call
  // of linear_step names its buffers, so no runtime index reaches the dataflow region.
#pragma HLS ARRAY_PARTITION variable = g_ping.tiles dim = 2 complete
#pragma HLS ARRAY_PARTITION variable = g_ping.tiles dim = 3 complete
#pragma HLS ARRAY_PARTITION variable = g_ping.bias dim = 2 complete
#pragma HLS ARRAY_PARTITION variable = g_pong.tiles dim = 2 complete
#pragma HLS ARRAY_PARTITION variable = g_pong.tiles dim = 3 complete
#pragma HLS ARRAY_PARTITION variable = g_pong.bias dim = 2 complete
  // The expert queues by expert (a global struct is disaggregated into its members, UG1399
  // "Structs"): the gate appends a token to k different experts' queues in one cycle.
#pragma HLS ARRAY_PARTITION variable = g_queues.token dim = 1 complete
#pragma HLS ARRAY_PARTITION variable = g_queues.score dim = 1 complete
#pragma HLS ARRAY_PARTITION variable = g_queues.length complete
  // The convolution reader's line buffer by pixel bank (window_reader.h): a group's window reads each
  // bank at most twice a cycle, as does the upsampler's blend (head.h); with Winograd also by the
  // channel word's parity (emit_pairs: a tile's two words, each bank twice per word).
  // An array of structs is disaggregated by default (UG1399 "Structs"): aggregated, a 16-lane word is
  // one 416-bit memory word.
#pragma HLS AGGREGATE variable = g_line.row
#pragma HLS ARRAY_PARTITION variable = g_line.row dim = 3 complete
#if EDGEMOE_HEAD_WINOGRAD
#pragma HLS ARRAY_PARTITION variable = g_line.row dim = 4 cyclic factor = 2
#endif
#if EDGEMOE_LINE_BUFFER_URAM
#pragma HLS BIND_STORAGE variable = g_line.row type = ram_2p impl = uram
#else
#pragma HLS BIND_STORAGE variable = g_line.row type = ram_2p impl = bram
#endif
  // One linear unit for every job: the stage functions are inlined here, so every call of
  // linear_step (the unit's only caller) is in this scope, with the same buffer arguments, and
  // shares one instance (its DSPs counted once).
#pragma HLS ALLOCATION function instances = linear_step limit = 1
  // One LayerNorm (its ~200 DSPs counted once in schedule.h) for both halves of every block.
#pragma HLS ALLOCATION function instances = layer_norm limit = 1
  // One upsampler for the heads' maps and their outputs.
#pragma HLS ALLOCATION function instances = upsample_plane limit = 1
  if (first_stage == kBuildQueryStage) {
    write_build_record(trace);
    return;
  }
  const ModelDims m = {dim, heads, grid_h, grid_w, patch, depth, mlp_hidden, experts, expert_hidden, top_k,
                       num_tasks, moe_mask, kHeadWinograd};
  const int n = tokens(m);
  const long image_size = 3L * grid_h * patch * grid_w * patch;
  const long trace_per_image = trace_size(m, 1);
images_loop:
  for (int i = 0; i < kMaxImagesPerRun; ++i) {
    if (i >= num_images) break;
    fm_word_t* xi = x + (long)i * n * dim / kWordElems;
    edgemoe_ledger::stage(-1);
    if (embed) patch_embedding(images, xi, xn, qkv, hidden, i * image_size, weights, weights_odd, params, m);
  stages:
    for (int stage = 0; stage < 2 * EDGEMOE_MAX_DEPTH; ++stage) {
      if (stage >= last_stage) break;
      if (stage < first_stage) continue;
      const int b = stage / 2;
      edgemoe_ledger::stage(stage);
      if (stage % 2 == 0) attention_half(images, xi, xn, qkv, hidden, weights, weights_odd, params, m, b, attn_scale);
      else mlp_half(images, xi, xn, qkv, hidden, weights, weights_odd, params, m, b, task, trace + i * trace_per_image);
    }
    if (head_out > 0)
      task_head(images, xi, xn, qkv, hidden, outputs + (long)i * head_output_words(m, head_out), m, head_channels, head_out,
                task, weights, weights_odd, params, g_ping, g_pong, g_queues, g_line, head_stages);
  }
}

#ifndef __SYNTHESIS__
// What this build is and what it costs, for the host's latency model (not part of the hardware).
extern "C" void m3vit_board_model(edgemoe_ledger::BoardModel* out) {
  const ResourceEstimate r = resource_estimate();
  out->config = EDGEMOE_CFG_NAME;
  out->dsp = r.dsp;
  out->bram36 = (r.bram18 + 1) / 2;
  out->uram = r.uram;
  out->lut = r.lut;
#ifdef EDGEMOE_DEVICE_NAME
  out->device = EDGEMOE_DEVICE_NAME;
  out->clock_mhz = EDGEMOE_CLOCK_MHZ;
  out->port_width_bytes = EDGEMOE_PORT_WIDTH_BYTES;
  out->port_mbps = EDGEMOE_PORT_MBPS;
  out->device_mbps = EDGEMOE_DEVICE_MBPS;
  out->read_latency = kAxiReadLatency;
  for (int p = 0; p < kAxiPorts; ++p) out->outstanding[p] = axi_outstanding(edgemoe_ledger::Port(p));
  out->device_dsp = EDGEMOE_DEVICE_DSP;
  out->device_bram36 = EDGEMOE_DEVICE_BRAM36;
  out->device_uram = EDGEMOE_DEVICE_URAM;
  out->device_lut = EDGEMOE_DEVICE_LUT;
  out->slrs = kSlrs;
  // the platform's static region, per SLR (schedule.h: none unless the board config gives it)
  const int shell_dsp[kMaxSlrs] = {EDGEMOE_SHELL_DSP}, shell_bram36[kMaxSlrs] = {EDGEMOE_SHELL_BRAM36},
            shell_uram[kMaxSlrs] = {EDGEMOE_SHELL_URAM}, shell_lut[kMaxSlrs] = {EDGEMOE_SHELL_LUT};
  for (int slr = 0; slr < kMaxSlrs; ++slr) {
    const ResourceEstimate part = slr_estimate(slr);
    const bool real = slr < kSlrs;
    out->slr_dsp[slr] = real ? part.dsp : 0;
    out->slr_bram36[slr] = real ? (part.bram18 + 1) / 2 : 0;
    out->slr_uram[slr] = real ? part.uram : 0;
    out->slr_lut[slr] = real ? part.lut : 0;
    out->slr_device_dsp[slr] = real ? EDGEMOE_DEVICE_DSP / kSlrs - shell_dsp[slr] : 0;
    out->slr_device_bram36[slr] = real ? EDGEMOE_DEVICE_BRAM36 / kSlrs - shell_bram36[slr] : 0;
    out->slr_device_uram[slr] = real ? EDGEMOE_DEVICE_URAM / kSlrs - shell_uram[slr] : 0;
    out->slr_device_lut[slr] = real ? EDGEMOE_DEVICE_LUT / kSlrs - shell_lut[slr] : 0;
  }
#else  // the emulation build targets no board
  out->device = nullptr;
  out->clock_mhz = 0;
  out->port_width_bytes = 0;
  out->port_mbps = out->device_mbps = 0;
  out->read_latency = 0;
  for (int p = 0; p < kAxiPorts; ++p) out->outstanding[p] = 0;
  out->device_dsp = out->device_bram36 = out->device_uram = out->device_lut = 0;
  out->slrs = 0;
  for (int slr = 0; slr < kMaxSlrs; ++slr) {
    out->slr_dsp[slr] = out->slr_bram36[slr] = out->slr_uram[slr] = out->slr_lut[slr] = 0;
    out->slr_device_dsp[slr] = out->slr_device_bram36[slr] = out->slr_device_uram[slr] = out->slr_device_lut[slr] = 0;
  }
#endif
}
#endif
