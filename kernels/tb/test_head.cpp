// The task head (head.h) against a double-precision golden model of M3ViT's head, written from
// the model's definition (../shared/spec/m3vit.md §2): LayerNorm, 3x3 convolutions with padding 1
// over [C][C_in][3][3] weights (the same wt_t values, never read back through the packed format),
// ReLU, bilinear x2 with align_corners=False computed from its definition (half-pixel centres,
// clamped source coordinates), the 1x1 convolution and the last x2.
//
// Checks, from the formats (kernels/README.md, "Task heads"). A convolution's input lane truncates
// to mac_in_t (< 2^-18) and its output to fm_t (< 2^-22); an upsampled value is an exact convex
// combination of its inputs' mac_in_t values (< 2^-18 from the map's). Where a stage's own input is observable after the run
// (conv_3's map in hidden, the logits in qkv) the stage is checked alone against its worst case:
// conv_4 within sum_k |w[o][k]| 2^-18 + 2^-22, the last upsampling exactly (it blends the logits'
// mac_in_t values, as the golden model does, and 2^-22 holds the result). End to end, the
// worst case compounds (each layer multiplies by its largest row L1 norm, ~10-20 here) and says
// little, so it is only a sanity bound; the tight check is the NMSE: each layer's truncations add a
// relative RMS error of ~2^-18 / rms(x) ~ 1e-6 (NMSE ~1e-12), five layers stay below 1e-10, and
// 1e-9 leaves 10x; one wrong tap of a 3x3 window (1/9 of the sum) gives ~1e-2. The golden model
// applies the formats' two saturations (conv inputs to mac_in_t's range, ReLU outputs to fm_t's),
// which one case drives on purpose: wrapping instead would miss by hundreds.
#include <algorithm>
#include <cmath>
#include <vector>

#include "src/head.h"
#include "access_check_tb.h"
#include "tb_util.h"
#include "tb_weights.h"

using namespace edgemoe_hls;

static WeightBuffer g_ping, g_pong;
static ExpertQueues g_queues;
static LineBuffer g_line;

namespace {

typedef std::vector<double> Map;  // [H][W][C]

// The line buffer's lanes (line_lane_t): a map's value as every convolution and the upsampler read it.
double line_lane_range(double v) { return std::min(std::max(v, -128.0), 128.0 - std::ldexp(1.0, -18)); }
// line_lane_t's value of v: truncated to 2^-18 (toward minus infinity), saturated.
double to_line_lane(double v) { return line_lane_range(std::ldexp(std::floor(std::ldexp(v, 18)), -18)); }
double fm_max() { return 512.0 - std::ldexp(1.0, -22); }

// out[o] at (y, x) = b[o] + sum w[o][c][ky][kx] in(y + ky - p, x + kx - p, c), zero outside.
Map conv(const Map& in, int H, int W, int C, const std::vector<double>& w, const std::vector<double>& b, int O, int K,
         bool relu) {
  const int p = (K - 1) / 2;
  Map out(size_t(H) * W * O);
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x)
      for (int o = 0; o < O; ++o) {
        double s = b[o];
        for (int ky = 0; ky < K; ++ky)
          for (int kx = 0; kx < K; ++kx) {
            const int iy = y + ky - p, ix = x + kx - p;
            if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
            for (int c = 0; c < C; ++c)
              s += w[((size_t(o) * C + c) * K + ky) * K + kx] * line_lane_range(in[(size_t(iy) * W + ix) * C + c]);
          }
        out[(size_t(y) * W + x) * O + o] = relu ? std::min(std::max(s, 0.0), fm_max()) : s;
      }
  return out;
}

// F.interpolate(scale_factor=2, mode='bilinear', align_corners=False): output i samples source
// coordinate (i + 0.5) / 2 - 0.5, clamped below at 0; the upper neighbour clamped to the last pixel.
// The kernel blends the map's line_lane_t values (its line buffer's lanes) exactly: so does this.
Map upsample(const Map& in, int H, int W, int C) {
  Map out(size_t(4) * H * W * C);
  auto source = [](int i, int n, int& i0, int& i1, double& f) {
    double s = std::max((i + 0.5) / 2 - 0.5, 0.0);
    i0 = int(std::floor(s));
    i1 = std::min(i0 + 1, n - 1);
    f = s - i0;
  };
  for (int y = 0; y < 2 * H; ++y)
    for (int x = 0; x < 2 * W; ++x) {
      int y0, y1, x0, x1;
      double fy, fx;
      source(y, H, y0, y1, fy);
      source(x, W, x0, x1, fx);
      for (int c = 0; c < C; ++c) {
        auto at = [&](int yy, int xx) { return to_line_lane(in[(size_t(yy) * W + xx) * C + c]); };
        out[(size_t(y) * 2 * W + x) * C + c] = (1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x1)) +
                                               fy * ((1 - fx) * at(y1, x0) + fx * at(y1, x1));
      }
    }
  return out;
}

// The largest row L1 norm of a [O][rest] weight tensor.
double max_row_l1(const std::vector<double>& w, int O) {
  const size_t per = w.size() / O;
  double best = 0;
  for (int o = 0; o < O; ++o) {
    double s = 0;
    for (size_t k = 0; k < per; ++k) s += std::abs(w[o * per + k]);
    best = std::max(best, s);
  }
  return best;
}

struct Case {
  const char* name;
  int dim, channels, outs, grid_h, grid_w;
  bool saturate;  // conv_1's channel 0 driven past fm_t's range
};

void run_case(const Case& k, unsigned seed) {
  tb::Rng rng(seed);
  const int D = k.dim, C = k.channels, OUT = k.outs, n = 1 + k.grid_h * k.grid_w;
  ModelDims m = {D, 1, k.grid_h, k.grid_w, 16, 0, 4 * D, 0, 0, 0, 1, 0u, kHeadWinograd};
  const int task = 0;
  char what_slices[160];
  // The heads packed as the host packs the direct layout ([O][(ky, kx, c)]); a build with Winograd
  // heads takes the same taps as tb::winograd_heads re-packs them.
  ModelDims m_direct = m;
  m_direct.head_winograd = false;
  std::vector<weight_word_t> direct(size_t(model_weights_size(m_direct, C)), weight_word_t{});
  std::vector<fm_t> params(size_t(model_params_size(m, C)), fm_t(0));
  // Golden parameters: the wt_t / fm_t values the kernel gets, as doubles.
  std::vector<double> gamma(D), beta(D);
  for (int d = 0; d < D; ++d) {
    params[p_head_ln(m, C, task) + d] = rng.normal(1, 0.2);
    params[p_head_ln(m, C, task) + D + d] = rng.normal(0, 0.2);
    gamma[d] = params[p_head_ln(m, C, task) + d].to_double();
    beta[d] = params[p_head_ln(m, C, task) + D + d].to_double();
  }
  std::vector<std::vector<double>> w(kHeadLayers), b(kHeadLayers);
  for (int l = 0; l < kHeadLayers; ++l) {
    const int cin = l == 0 ? D : C, O = l < 4 ? C : OUT, K = l < 4 ? 3 : 1;
    w[l].resize(size_t(O) * cin * K * K);
    b[l].resize(O);
    const double scale = std::sqrt(2.0 / (cin * K * K));  // BN-folded weights of trained heads: ~this RMS
    for (size_t i = 0; i < w[l].size(); ++i) w[l][i] = wt_t(rng.normal(0, scale)).to_double();
    for (int o = 0; o < O; ++o) b[l][o] = fm_t(rng.normal(0.3, 0.5)).to_double();
    // channel 0 past 512: its taps as large as Winograd's terms allow (g0 + g1 + g2 < 2), its bias 400
    if (k.saturate && l == 1) {
      for (size_t i = 0; i < size_t(cin) * 9; ++i) w[l][i] = wt_t(0.66).to_double();
      b[l][0] = 400;
    }
    // conv_4's rows up to kHeadOutRows zero.
    const int rows = head_rows(m_direct, C, l), in = head_in(m_direct, C, l);
    std::vector<wt_t> packed(size_t(rows) * in, wt_t(0));
    for (int o = 0; o < O; ++o)
      for (int c = 0; c < cin; ++c)
        for (int ky = 0; ky < K; ++ky)
          for (int kx = 0; kx < K; ++kx)
            packed[size_t(o) * in + (ky * K + kx) * cin + c] = w[l][((size_t(o) * cin + c) * K + ky) * K + kx];
    const std::vector<weight_word_t> words = tb::pack(packed, rows, in);
    std::copy(words.begin(), words.end(), direct.begin() + w_head(m_direct, C, task, l));
    for (int o = 0; o < O; ++o) params[p_head_bias(m, C, task, l) + o] = b[l][o];
  }
  const std::vector<weight_word_t> weights = kHeadWinograd ? tb::winograd_heads(direct, m, C) : direct;
  tb::expect(!weights.empty(), "every Winograd weight fits wt_t");
  if (weights.empty()) return;
  // The backbone's output rows (the cls row first, which the head drops).
  std::vector<fm_t> x(size_t(n) * D);
  for (auto& v : x) v = rng.normal(0.5, 2);
  // Scratch maps as the host sizes them: hidden holds a convolution's output, qkv an upsampled map.
  const int H3 = 8 * k.grid_h, W3 = 8 * k.grid_w;
  const size_t map_elems = size_t(H3) * W3 * std::max(C, kHeadOutRows) + 16 * kMaxMapSlices * size_t(H3) * W3;
  std::vector<fm_t> xn(size_t(n) * D), qkv(map_elems), hidden(map_elems);
  const int out_words = ceil_div(OUT, kWordElems);
  std::vector<fm_t> outputs(size_t(4) * H3 * W3 * out_words * kWordElems);
  if (k.dim == 384) {
    std::snprintf(what_slices, sizeof what_slices, "%s: conv_0 runs as %d passes", k.name, head_layer_slices(m, C, OUT, 0));
    tb::expect(head_layer_slices(m, C, OUT, 0) == 2, what_slices);
  }
  const tb::WeightPorts ports = tb::split_ports(weights);
  task_head(nullptr, tb::words(x), tb::words(xn), tb::words(qkv), tb::words(hidden), tb::words(outputs), m, C, OUT, task,
            ports.even.data(), ports.odd.data(), params.data(), g_ping, g_pong, g_queues, g_line,
            edgemoe_ledger::kHeadStages);
  {
    // The run above took the emulation's exact MAC array (no cycle ledger: the rows straight from
    // the line buffer, 3x3 windows through Winograd's F(2, 3), exact); with a ledger attached the
    // pipelined loops Vitis synthesises run instead. The bits must be the same, map by map.
    static edgemoe_ledger::Ledger ledger;
    std::vector<fm_t> xn2(xn.size()), qkv2(qkv.size()), hidden2(hidden.size()), outputs2(outputs.size());
    edgemoe_ledger::active() = &ledger;
    task_head(nullptr, tb::words(x), tb::words(xn2), tb::words(qkv2), tb::words(hidden2), tb::words(outputs2), m, C, OUT,
              task, ports.even.data(), ports.odd.data(), params.data(), g_ping, g_pong, g_queues, g_line,
              edgemoe_ledger::kHeadStages);
    edgemoe_ledger::active() = nullptr;
    const auto same = [](const std::vector<fm_t>& a, const std::vector<fm_t>& b) {
      for (size_t i = 0; i < a.size(); ++i)
        if (a[i].raw() != b[i].raw()) return false;
      return true;
    };
    char what_same[160];
    std::snprintf(what_same, sizeof what_same, "%s: the emulated MAC array's maps and output equal the pipelined loops'",
                  k.name);
    tb::expect(same(xn, xn2) && same(qkv, qkv2) && same(hidden, hidden2) && same(outputs, outputs2), what_same);
  }

  // Golden: LayerNorm of rows 1.., then the layers.
  Map y(size_t(n - 1) * D);
  for (int t = 1; t < n; ++t) {
    double mean = 0, var = 0;
    for (int d = 0; d < D; ++d) mean += x[size_t(t) * D + d].to_double() / D;
    for (int d = 0; d < D; ++d) var += std::pow(x[size_t(t) * D + d].to_double() - mean, 2) / D;
    for (int d = 0; d < D; ++d)
      y[size_t(t - 1) * D + d] = (x[size_t(t) * D + d].to_double() - mean) / std::sqrt(var + 1e-6) * gamma[d] + beta[d];
  }
  double e = 0;  // the LayerNorm's error: xn still holds it (conv_0's input)
  for (size_t i = 0; i < y.size(); ++i) e = std::max(e, std::abs(xn[i].to_double() - y[i]));
  char what[160];
  std::snprintf(what, sizeof what, "%s: head LayerNorm max abs error", k.name);
  tb::bound(what, e, 1e-5);
  const double in_lsb = std::ldexp(1.0, -18), out_lsb = std::ldexp(1.0, -22);
  int H = k.grid_h, W = k.grid_w;
  for (int l = 0; l < 4; ++l) {
    y = conv(y, H, W, l == 0 ? D : C, w[l], b[l], C, 3, true);
    if (k.saturate && l == 1) {
      double peak = 0;
      for (size_t p = 0; p < size_t(H) * W; ++p) peak = std::max(peak, y[p * C]);
      std::snprintf(what, sizeof what, "%s: conv_1's channel 0 reaches fm_t's largest value", k.name);
      tb::expect(peak == fm_max(), what);
    }
    e = max_row_l1(w[l], C) * (e + in_lsb) + out_lsb;
    if (l < 3) {
      y = upsample(y, H, W, C);
      H *= 2;
      W *= 2;
      e += in_lsb;  // the blend's inputs truncated to mac_in_t; the blend itself is exact
    }
  }
  Map logits = conv(y, H, W, C, w[4], b[4], OUT, 1, false);
  const double e_logits = max_row_l1(w[4], OUT) * (e + in_lsb) + out_lsb;
  Map out = upsample(logits, H, W, OUT);
  const double e_out = e_logits + in_lsb;

  // The logits (conv_4's map, left in qkv) and the output, padded to whole words per pixel.
  auto compare = [&](const Map& golden, const std::vector<fm_t>& got, int pixels, const char* name, double bound,
                     double nmse_limit) {
    double worst = 0, err2 = 0, ref2 = 0, peak = 0;
    for (int p = 0; p < pixels; ++p)
      for (int c = 0; c < OUT; ++c) {
        const double g = golden[size_t(p) * OUT + c], v = got[size_t(p) * out_words * kWordElems + c].to_double();
        worst = std::max(worst, std::abs(v - g));
        err2 += (v - g) * (v - g);
        ref2 += g * g;
        peak = std::max(peak, std::abs(g));
      }
    std::printf("  %s %s: NMSE %.3g, peak |ref| %.3g\n", k.name, name, err2 / std::max(ref2, 1e-300), peak);
    std::snprintf(what, sizeof what, "%s: %s max abs error", k.name, name);
    tb::bound(what, worst, bound);
    if (nmse_limit > 0) {
      std::snprintf(what, sizeof what, "%s: %s NMSE", k.name, name);
      tb::bound(what, err2 / std::max(ref2, 1e-300), nmse_limit);
    }
  };
  compare(logits, qkv, H * W, "logits end to end", e_logits, 1e-9);
  compare(out, outputs, 4 * H * W, "output end to end", e_out, 1e-9);
  // Stage by stage: conv_4 from the kernel's conv_3 map (hidden, a plane per pass), the last upsampling
  // from the kernel's logits.
  Map conv3(size_t(H) * W * C), got_logits(size_t(H) * W * OUT);
  const int conv3_slices = head_layer_slices(m, C, OUT, 3), per_words = slice_stride_words(C / kWordElems, conv3_slices);
  for (size_t p = 0; p < size_t(H) * W; ++p) {
    for (int c = 0; c < C; ++c) {
      // conv_3's map is one plane per pass (head.h): channel c in plane c / per.
      const int plane = c / (per_words * kWordElems), cc = c - plane * per_words * kWordElems;
      const int plane_channels = slice_words(C / kWordElems, conv3_slices, plane) * kWordElems;
      conv3[p * C + c] = hidden[size_t(plane) * H * W * per_words * kWordElems + p * plane_channels + cc].to_double();
    }
    for (int c = 0; c < OUT; ++c) got_logits[p * OUT + c] = qkv[p * out_words * kWordElems + c].to_double();
  }
  compare(conv(conv3, H, W, C, w[4], b[4], OUT, 1, false), qkv, H * W, "conv_4 alone", max_row_l1(w[4], OUT) * in_lsb + out_lsb,
          0);
  compare(upsample(got_logits, H, W, OUT), outputs, 4 * H * W, "last upsampling alone (exact)", 0, 0);
}

}  // namespace

int main() {
  // The epilogue's saturation and the MAC lane's, on their own.
  tb::expect(relu_saturated(acc_t(4000)) == fm_t(fm_max()), "ReLU output saturates at fm_t's largest value");
  tb::expect(relu_saturated(acc_t(-4000)) == fm_t(0), "ReLU of a large negative sum is 0");
  tb::expect(mac_in_t(fm_t(400)) == mac_in_t(256.0 - std::ldexp(1.0, -18)), "a MAC lane saturates at mac_in_t's range");
  tb::expect(line_lane_t(fm_t(200)) == line_lane_t(128.0 - std::ldexp(1.0, -18)) &&
                 line_lane_t(fm_t(-200)) == line_lane_t(-128.0),
             "a line-buffer lane saturates at line_lane_t's range");
  // Odd word counts (D = 80, C = 48: 5 and 3 words, so input tiles of 2 words straddle taps), 7
  // outputs (one padded word), a 2 x 8 grid: conv_3's rows of 64 pixels split in emulation.
  run_case({"D80 C48 out7 2x8", 80, 48, 7, 2, 8, false}, 11);
  run_case({"saturating D64 C32 out3 3x2", 64, 32, 3, 3, 2, true}, 12);
  // Odd map widths (3, 6, 12, 24 pixels: a last pixel without a Winograd partner) and C = 16.
  run_case({"D32 C16 out1 2x3", 32, 16, 1, 2, 3, false}, 14);
  // Map rows of 160 pixels: each half of a row job (80 pixels) spans two of the emulated MAC
  // array's blocks of rows, so a block starts inside a half (its first pair and group past 0).
  run_case({"wide D32 C16 out2 1x20", 32, 16, 2, 1, 20, false}, 15);
  // kMaxMapSlices > 1 (the U280 build): conv_0 of ViT-S (K = 9 x 384) runs as two passes.
  if (kMaxMapSlices > 1) run_case({"ViT-S D384 C256 out21 1x2", 384, 256, 21, 1, 2, false}, 13);
  return tb::finish();
}
