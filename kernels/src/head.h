// M3ViT's task head on the accelerator (kernels/README.md, "Task heads"): LayerNorm over the
// patch tokens (the cls token dropped), four 3x3 convolutions of C channels with BatchNorm folded
// into weight and bias (the host folds) and ReLU, each of the first three followed by bilinear x2
// upsampling (align_corners=False), a 1x1 convolution to the task's outputs and a last x2.
//
// Every convolution runs on the unified linear unit (the one MAC array, packed weights, bursts):
// a job per output row, the convolution reader (window_reader.h) feeding it windows from the line
// buffer. A convolution whose weights do not fit one buffer runs as passes over slices of its
// output channels, each pass's map a plane of its own. The upsampler is a dataflow of three burst
// processes. Maps live in the activation scratch buffers the backbone is done with: the token grid
// after LayerNorm in xn, convolution outputs in hidden, upsampled maps and the logits in qkv; the
// task's output in `outputs`.
#pragma once

#include "layernorm.h"
#include "layout.h"
#include "linear.h"
#include "moe.h"
#include "word_streams.h"

namespace edgemoe_hls {

// --- the upsampler -----------------------------------------------------------------------------
// Bilinear x2 with half-pixel centres: output pixel 2x takes 1/4 of input x - 1 and 3/4 of x,
// output 2x + 1 3/4 of x and 1/4 of x + 1, indices clamped to the map; the same along rows. Each
// output element is (9 a + 3 b + 3 c + d) / 16 of its four inputs, formed exactly (fm_t plus 4
// integer and 4 fraction bits) from the line buffer's lanes (line_lane_t: the map truncated to 2^-18 and
// saturated as it is loaded, as the next convolution's lanes would be): 2^-22 holds it, so the fm_t
// result is exact.
// (4 more fraction bits than the lanes: the final >> 4 keeps its type's width and drops what falls off.)
typedef ap_fixed<mac_in_t::width + 8, mac_in_t::iwidth + 4> upsample_acc_t;
// 3 near + far, exact (adds only). The callers choose the operands, then blend: one set of adders.
inline upsample_acc_t blend(const upsample_acc_t& near, const upsample_acc_t& far) { return near + near + near + far; }

// A plane is upsampled in bands of input rows, one dataflow run each: a band's streams then hold
// rows, not a plane (emulation runs a region's processes one after the other), at the cost of one
// halo row read again per band and the pipelines' fill.
constexpr int kUpsampleBandRows = 8;
struct UpsampleShape {
  int height, width, channel_words;  // the input plane (the output is 2H x 2W)
  int first_row, rows;               // the band: output rows 2i - 1 and 2i for i in [first_row, first_row + rows)
};
// A band's words: input rows (the band and its halo row) and output rows (two per input row, and
// the map's last), each at most a line-buffer row.
constexpr int kUpsampleReadWords = (kUpsampleBandRows + 1) * kMaxMapW * kMaxMapChWords;
constexpr int kUpsampleWriteWords = (2 * kUpsampleBandRows + 1) * 2 * kMaxMapW * kMaxMapChWords;
// The band reads input rows [halo_row, first_row + rows): the one above it too (the blend's other row).
inline int halo_row(const UpsampleShape& s) { return s.first_row > 0 ? s.first_row - 1 : 0; }
inline int band_end(const UpsampleShape& s) { return s.first_row + s.rows; }
// Output rows [first_out_row, last_out_row]: the band's, and the map's last with the last band.
inline int first_out_row(const UpsampleShape& s) { return s.first_row == 0 ? 0 : 2 * s.first_row - 1; }
inline int last_out_row(const UpsampleShape& s) { return band_end(s) == s.height ? 2 * s.height - 1 : 2 * band_end(s) - 2; }

// The plane's words from hidden (a convolution's output) or qkv (the logits): one burst, one loop per
// source (only one runs).
inline void read_upsample_source(const fm_word_t* hidden, const fm_word_t* qkv, bool final_output, const UpsampleShape& s,
                                 hls::stream<fm_word_t>& words) {
#pragma HLS INLINE off
  edgemoe_ledger::region_process(0);
  const int row_words = s.width * s.channel_words, total = (band_end(s) - halo_row(s)) * row_words;
  const long base = (long)halo_row(s) * row_words;
  burst_words_in<kUpsampleReadWords>(hidden + base, final_output ? 0 : total, edgemoe_ledger::kUnitHeadUpsample,
                                     edgemoe_ledger::kPortScratch2, words);
  burst_words_in<kUpsampleReadWords>(qkv + base, final_output ? total : 0, edgemoe_ledger::kUnitHeadUpsample,
                                     edgemoe_ledger::kPortScratch1, words);
}

// Per input row i (and once more): load row i (if any) into line-buffer slot i & 1, then send
// output rows 2i - 1 and 2i (those inside the map), each a pipelined loop at II = 1: a word per
// cycle in, a word per cycle out. The line buffer (the convolution reader's, idle meanwhile) keeps
// pixel x in bank x mod T_rows: an output pixel blends two neighbouring pixels, always in two
// different banks (T_rows >= 2), of two rows (two slots): each bank is read at most twice a cycle,
// once per row. The bank indices are constants (each bank is read at the pair's pixel it holds, if
// any); the pair's banks and groups are counters (no dividers); the blend picks the two words by
// the pair's banks.
inline void upsample_rows(const UpsampleShape& s, LineBuffer& lb, hls::stream<fm_word_t>& in,
                          hls::stream<fm_word_t>& out) {
#pragma HLS INLINE off
  edgemoe_ledger::region_process(1);
  const int H = s.height, W = s.width, cw = s.channel_words;
  const int row_words = W * cw, out_row_words = 2 * row_words;
  // Rows [halo, end) are loaded; rows from first_row on also send; the last band sends the map's
  // last output row after its last load.
  const int first = halo_row(s), end = band_end(s), steps = end - first + (end == H ? 1 : 0);
input_rows:
  for (int step = 0; step < upto<kUpsampleBandRows + 2>(steps); ++step) {
#pragma HLS LOOP_TRIPCOUNT max = kUpsampleBandRows + 2
    const int i = first + step;
    const int load = i < end ? row_words : 0;
    edgemoe_ledger::loop(edgemoe_ledger::kUnitHeadUpsample, load, kII, kCopyDepth);
    int xg = 0, xb = 0, c = 0;  // pixel x = xg T_rows + xb
  load_row:
    for (int k = 0; k < upto<kMaxMapW * kMaxMapChWords>(load); ++k) {
#pragma HLS PIPELINE II = kII
#pragma HLS LOOP_TRIPCOUNT max = kMaxMapW * kMaxMapChWords
      lb.row[i & 1][xg][xb][c] = to_lanes(in.read());
      next_line_word(xg, xb, c, cw);
    }
    // Output rows 2i - 1 (near row i - 1) and 2i (near row i), of rows i - 1 and i clamped.
    const int first_out = i == 0 ? 0 : 2 * i - 1, last_out = i == H ? 2 * H - 1 : 2 * i;
    const int sends = i >= s.first_row ? (last_out - first_out + 1) * out_row_words : 0;
    edgemoe_ledger::loop(edgemoe_ledger::kUnitHeadUpsample, sends, kII, kCopyDepth + kMacDepth);
    int oy = first_out, ox = 0, oc = 0;
    int qg = 0, qb = 0;  // q = (ox + 1) >> 1 = qg T_rows + qb: the pair is (q - 1, q), clamped
    const int last_group = (W - 1) / kTrows, last_bank = (W - 1) - last_group * kTrows;  // once per row step
  send_rows:
    for (int k = 0; k < upto<2 * 2 * kMaxMapW * kMaxMapChWords>(sends); ++k) {
#pragma HLS PIPELINE II = kII
#pragma HLS LOOP_TRIPCOUNT max = 2 * 2 * kMaxMapW * kMaxMapChWords
      // Rows: the pair (p, p + 1), p = (oy - 1) >> 1, clamped; the near one is p + 1 for even oy.
      const int py = (oy - 1) >> 1;
      const int ya = py < 0 ? 0 : py, yb = py + 1 > H - 1 ? H - 1 : py + 1;
      // Columns: xa = q - 1 (0 at the left edge), xz = q (W - 1 at the right edge).
      const bool left_edge = qg == 0 && qb == 0, right_edge = qg == last_group && qb == last_bank + 1;
      const int prev_bank = qb == 0 ? kTrows - 1 : qb - 1, prev_group = qb == 0 ? qg - 1 : qg;
      const int bank_a = left_edge ? 0 : prev_bank, group_a = left_edge ? 0 : prev_group;
      const int bank_z = right_edge ? prev_bank : (qb == kTrows ? 0 : qb), group_z = right_edge ? prev_group : qg;
      lane_word_t w[2][2];  // [row ya / yb][column xa / xz]
#pragma HLS ARRAY_PARTITION variable = w complete dim = 0
      for (int r = 0; r < 2; ++r) {
        const int slot = (r == 0 ? ya : yb) & 1;
        lane_word_t bank_word[kTrows];
#pragma HLS ARRAY_PARTITION variable = bank_word complete dim = 0
        for (int b = 0; b < kTrows; ++b) bank_word[b] = lb.row[slot][b == bank_a ? group_a : group_z][b][oc];
        w[r][0] = bank_word[bank_a];
        w[r][1] = bank_word[bank_z];
      }
      const bool near_b_row = (oy & 1) == 0, near_b_col = (ox & 1) == 0;
      fm_word_t o;
      for (int e = 0; e < kWordElems; ++e) {
        const upsample_acc_t aa = w[0][0].v[e], az = w[0][1].v[e], ba = w[1][0].v[e], bz = w[1][1].v[e];
        const upsample_acc_t row_a = blend(near_b_col ? az : aa, near_b_col ? aa : az);
        const upsample_acc_t row_b = blend(near_b_col ? bz : ba, near_b_col ? ba : bz);
        const upsample_acc_t sum = blend(near_b_row ? row_b : row_a, near_b_row ? row_a : row_b);
        o.v[e] = fm_t(sum >> 4);
      }
      out.write(o);
      if (++oc == cw) {
        oc = 0;
        if (++ox == 2 * W) {
          ox = 0;
          qg = qb = 0;
          ++oy;
        } else if (ox & 1) {  // q = (ox + 1) >> 1 steps at every odd ox
          if (++qb == kTrows && !(qg == last_group && last_bank == kTrows - 1)) {
            qb = 0;
            ++qg;
          }
        }
      }
    }
  }
}

// The upsampled plane to qkv (a map for the next convolution) or to the task's output: one burst,
// one loop per destination.
inline void write_upsample_dest(fm_word_t* qkv, fm_word_t* outputs, bool to_outputs, const UpsampleShape& s,
                                hls::stream<fm_word_t>& words) {
#pragma HLS INLINE off
  edgemoe_ledger::region_process(2);
  const int row_words = 2 * s.width * s.channel_words, total = (last_out_row(s) - first_out_row(s) + 1) * row_words;
  const long base = (long)first_out_row(s) * row_words;
  burst_words_out<kUpsampleWriteWords>(qkv + base, to_outputs ? 0 : total, edgemoe_ledger::kUnitHeadUpsample,
                                       edgemoe_ledger::kPortScratch1, words);
  burst_words_out<kUpsampleWriteWords>(outputs + base, to_outputs ? total : 0, edgemoe_ledger::kUnitHeadUpsample,
                                       edgemoe_ledger::kPortAct, words);
}

// hidden -> qkv (between convolutions) or qkv -> outputs (the logits): source and destination are
// different bundles in either case, each with one reader or one writer here.
inline void upsample_plane(const fm_word_t* hidden, fm_word_t* qkv, fm_word_t* outputs, bool final_output,
                           const UpsampleShape& s, LineBuffer& lb) {
#pragma HLS INLINE off
#pragma HLS DATAFLOW
  hls::stream<fm_word_t> in("upsample_in"), out("upsample_out");
#pragma HLS STREAM variable = in depth = 4
#pragma HLS STREAM variable = out depth = 4
  edgemoe_ledger::region_begin();
  read_upsample_source(hidden, qkv, final_output, s, in);
  upsample_rows(s, lb, in, out);
  write_upsample_dest(qkv, outputs, final_output, s, out);
  edgemoe_ledger::region_end(edgemoe_ledger::kUnitHeadUpsample);
}

// A plane's bands in order (hidden -> qkv, or the logits qkv -> outputs). In emulation, when no
// cycle ledger counts them, on two threads: a band writes output rows of its own and only reads
// the input, so the bands share nothing but the line buffer, and the second thread has its own.
inline void upsample_bands(const fm_word_t* hidden, fm_word_t* qkv, fm_word_t* outputs, bool final_output, int height,
                           int width, int channel_words, LineBuffer& lb) {
#pragma HLS INLINE
#ifdef EDGEMOE_EMU_EXACT_MAC
  if (!edgemoe_ledger::attached()) {  // the same bits in integers, the output rows split over two threads
    const fm_word_t* src = final_output ? qkv : hidden;
    fm_word_t* dst = final_output ? outputs : qkv;
    emu_run_halves([&](int64_t part) {
      ap_host::upsample_rows<line_lane_t>(src, dst, height, width, channel_words, part == 0 ? 0 : height,
                                       part == 0 ? height : 2 * height);
    });
    return;
  }
#endif
#ifdef EDGEMOE_EMU_PARALLEL
  if (!edgemoe_ledger::attached() && height > kUpsampleBandRows) {
    static LineBuffer second_line_buffer;  // the other thread's (one kernel run at a time)
    emu_run_halves([&](int64_t part) {
      for (int r = int(part) * kUpsampleBandRows; r < kMaxMapRows; r += 2 * kUpsampleBandRows) {
        if (r >= height) break;
        UpsampleShape u = {height, width, channel_words, r,
                           height - r < kUpsampleBandRows ? height - r : kUpsampleBandRows};
        upsample_plane(hidden, qkv, outputs, final_output, u, part == 0 ? lb : second_line_buffer);
      }
    });
    return;
  }
#endif
bands:
  for (int r = 0; r < kMaxMapRows; r += kUpsampleBandRows) {
    if (r >= height) break;
    UpsampleShape u = {height, width, channel_words, r, height - r < kUpsampleBandRows ? height - r : kUpsampleBandRows};
    upsample_plane(hidden, qkv, outputs, final_output, u, lb);
  }
}

// --- the head's sequence -------------------------------------------------------------------------
// One convolution's pass: the matrix rows [first, first + out) of layer `layer`.
struct HeadPass {
  int layer, out_first, out;  // out == 0: none
};
inline int head_layer_in_channels(const ModelDims& m, int channels, int layer) { return layer == 0 ? m.dim : channels; }
inline int head_layer_out(int channels, int out_channels, int layer) {
  return layer < 4 ? channels : ceil_div(out_channels, kWordElems) * kWordElems;
}
inline int head_layer_slices(const ModelDims& m, int channels, int out_channels, int layer) {
  return head_slices(head_layer_out(channels, out_channels, layer), head_in(m, channels, layer),
                     head_terms(m, channels, layer));
}
// Pass s of `layer`: slice s of its output words (window_reader.h's slice_words).
inline HeadPass head_pass(const ModelDims& m, int channels, int out_channels, int layer, int s) {
  const int out = head_layer_out(channels, out_channels, layer), slices = head_layer_slices(m, channels, out_channels, layer);
  HeadPass p;
  p.layer = layer;
  p.out_first = s * slice_stride_words(out / kWordElems, slices) * kWordElems;
  p.out = slice_words(out / kWordElems, slices, s) * kWordElems;
  return p;
}
// The pass after (layer, s), or none.
inline HeadPass next_head_pass(const ModelDims& m, int channels, int out_channels, int layer, int s) {
  if (s + 1 < head_layer_slices(m, channels, out_channels, layer)) return head_pass(m, channels, out_channels, layer, s + 1);
  if (layer + 1 < kHeadLayers) return head_pass(m, channels, out_channels, layer + 1, 0);
  HeadPass none = {0, 0, 0};
  return none;
}
inline long head_pass_weights(const ModelDims& m, int channels, int task, const HeadPass& p) {
  return w_head(m, channels, task, p.layer) + (long)p.out_first * words_per_row(head_in(m, channels, p.layer));
}
inline long head_pass_bias(const ModelDims& m, int channels, int task, const HeadPass& p) {
  return p_head_bias(m, channels, task, p.layer) + p.out_first;
}
// A Winograd layer's terms are matrices of `channels` rows one after the other: a pass fetches its
// rows of each.
inline long head_term_words(const ModelDims& m, int channels, int layer) {
  return (long)channels * words_per_row(head_in(m, channels, layer));
}

// The task's head for one image whose backbone output is x (rows of `tokens` x D). out_channels:
// the task's outputs (<= kHeadOutRows); the output is [16 h][16 w][ceil(out / 16) words] in
// `outputs`. Runs the first `stages` of its kHeadStages stages (ledger.h: conv_0..3 with their
// upsampling, conv_4, the last upsampling); fewer leave a stage's map in the scratch buffers for a
// trace to read: stages 0-2 the upsampled map in qkv, stage 3 conv_3's in hidden, stage 4 the
// logits in qkv.
inline void task_head(const pixel_word_t* images, fm_word_t* x, fm_word_t* xn, fm_word_t* qkv, fm_word_t* hidden,
                      fm_word_t* outputs, const ModelDims& m, int channels, int out_channels, int task,
                      const weight_word_t* weights, const weight_word_t* weights_odd, const fm_t* params,
                      WeightBuffer& ping, WeightBuffer& pong, ExpertQueues& queues, LineBuffer& lb, int stages) {
#pragma HLS INLINE
  namespace ledger = edgemoe_ledger;
  const int D = m.dim;
  ledger::stage(edgemoe_ledger::kHeadStage + 0);
  // The patch tokens (rows 1..) normalised into xn: the token grid as an HWC map of D channels.
  layer_norm(x + D / kWordElems, xn, params + p_head_ln(m, channels, task), params + p_head_ln(m, channels, task) + D,
             m.grid_h * m.grid_w, D);
  HeadPass first = head_pass(m, channels, out_channels, 0, 0);
  step_on(ping, pong, kPong, no_linear_job(), images, x, xn, qkv, hidden, queues.token, queues.score, weights,
          weights_odd, params, head_pass_weights(m, channels, task, first), head_pass_bias(m, channels, task, first),
          first.out, head_in(m, channels, 0), lb, head_terms(m, channels, 0), head_term_words(m, channels, 0));
  int height = m.grid_h, width = m.grid_w, in_slices = 1, run = kPing;
  Source src = kFromXn;
  ledger::Port src_port = ledger::kPortScratch0;
layers:
  for (int layer = 0; layer < kHeadLayers; ++layer) {
    if (layer >= stages) break;
    ledger::stage(edgemoe_ledger::kHeadStage + layer);
    const int in_ch = head_layer_in_channels(m, channels, layer), kernel = layer < 4 ? 3 : 1;
    const int out = head_layer_out(channels, out_channels, layer), slices = head_layer_slices(m, channels, out_channels, layer);
    const long in_plane_words = (long)height * width * slice_stride_words(in_ch / kWordElems, in_slices);
  passes:
    for (int s = 0; s < kMaxMapSlices; ++s) {
      if (s >= slices) break;
      const HeadPass pass = head_pass(m, channels, out_channels, layer, s);
      const HeadPass next = next_head_pass(m, channels, out_channels, layer, s);
      const long out_plane = (long)s * height * width * (slice_stride_words(out / kWordElems, slices) * kWordElems);
    output_rows:
      for (int y = 0; y < kMaxMapRows; ++y) {
        if (y >= height) break;
        WindowShape w = {height, width, in_ch, in_slices, kernel, y, in_plane_words, false,
                         head_layer_winograd(m, channels, layer)};
        // conv_0..3 to hidden, conv_4 (the logits) to qkv
        LinearJob job = {0, width, kReadWindows, src, -1, 0, 0, 0, 0, kWriteStore, layer < 4 ? kToHidden : kToQkv,
                         out_plane + (long)y * width * pass.out, false,
                         ledger::kUnitHeadConv, src_port, layer < 4 ? ledger::kPortScratch2 : ledger::kPortScratch1,
                         w, layer < 4};
        const bool last_row = y + 1 == height;
        const int next_out = last_row ? next.out : 0;
        step_on(ping, pong, run, job, images, x, xn, qkv, hidden, queues.token, queues.score, weights, weights_odd,
                params, head_pass_weights(m, channels, task, next), head_pass_bias(m, channels, task, next), next_out,
                head_in(m, channels, next.layer), lb, head_terms(m, channels, next.layer),
                head_term_words(m, channels, next.layer));
      }
      run = 1 - run;
    }
    if (layer < 3) {
      // hidden -> qkv, plane by plane (upsampling is per channel: slices stay slices)
    upsample_planes:
      for (int s = 0; s < kMaxMapSlices; ++s) {
        if (s >= slices) break;
        const int sw = slice_words(out / kWordElems, slices, s);
        const long plane = (long)s * height * width * slice_stride_words(out / kWordElems, slices);
        upsample_bands(hidden + plane, qkv + 4 * plane, outputs, false, height, width, sw, lb);
      }
      height *= 2;
      width *= 2;
      src = kFromQkv;
      src_port = ledger::kPortScratch1;
    } else {
      src = kFromHidden;  // conv_4 reads conv_3's planes
      src_port = ledger::kPortScratch2;
    }
    in_slices = slices;
  }
  if (stages <= kHeadLayers) return;
  ledger::stage(edgemoe_ledger::kHeadStage + kHeadLayers);
  upsample_bands(hidden, qkv, outputs, true, height, width, ceil_div(out_channels, kWordElems), lb);
}

}  // namespace edgemoe_hls
