// The unified linear unit in each of its modes against a double golden model computed on the same
// quantised inputs: errors come only from the 2^-18 input lane, the 2^-22 output and GELU's table.
#include <cmath>
#include <string>
#include <vector>

#include "src/linear.h"
#include "access_check_tb.h"
#include "tb_util.h"
#include "tb_weights.h"

using namespace edgemoe_hls;

static WeightBuffer g_weights;
static void load(const std::vector<wt_t>& w, const std::vector<fm_t>& b, int out, int in, WeightBuffer& buf) {
  const tb::WeightPorts ports = tb::split_ports(tb::pack(w, out, in));
  load_linear_weights(ports.even.data(), ports.odd.data(), 0, b.data(), 0, out, in, buf.tiles, buf.bias, buf.shape);
}
// The expert queue of jobs that gather or scatter (expert 0).
static QueueTokens g_tokens;
static QueueScores g_scores;
static LineBuffer g_line;
// A job on testbench vectors: it reads `src` (passed as the kernel's xn) or the image, and writes
// `dst` (passed as qkv for a store, as x for add and scatter).
static LinearJob job_of(int rows, ReadMode read, WriteMode write, bool gelu,
                        int grid_h = 0, int grid_w = 0, int patch = 0) {
  LinearJob job = {0, rows, read, read == kReadPatches ? kFromImage : kFromXn, 0, grid_h, grid_w, patch, 0,
                   write, write == kWriteStore ? kToQkv : kToX, 0, gelu,
                   edgemoe_ledger::kUnitQkv, edgemoe_ledger::kNoPort, edgemoe_ledger::kNoPort, no_window(), false};
  return job;
}
static void run(const WeightBuffer& buf, const LinearJob& job, const fm_t* src, fm_t* dst,
                const pixel_word_t* image = nullptr) {
  fm_word_t* out = reinterpret_cast<fm_word_t*>(dst);
  run_linear(buf.tiles, buf.bias, buf.shape, job, image, out, reinterpret_cast<const fm_word_t*>(src), out, nullptr,
             g_tokens, g_scores, g_line);
}

int main() {
  tb::Rng rng(1);
  const int rows = 37, in = 112, out = 80;  // whole 16-value words; input tiles ragged (T_in = 32)
  std::vector<wt_t> w(out * in);
  std::vector<fm_t> bias(out), x(rows * in), y(rows * out, fm_t(0));
  for (auto& v : w) v = rng.normal(0, 0.1);
  for (auto& v : bias) v = rng.normal(0, 0.5);
  for (auto& v : x) v = rng.normal(0, 2);
  load(w, bias, out, in, g_weights);
  auto golden = [&](int r, int o, bool gelu_on) {
    double s = bias[o].to_double();
    for (int i = 0; i < in; ++i) s += mac_in_t(x[r * in + i]).to_double() * w[o * in + i].to_double();
    return gelu_on ? 0.5 * s * (1 + std::erf(s / std::sqrt(2.0))) : s;
  };
  for (bool gelu_on : {false, true}) {
    LinearJob job = job_of(rows, kReadRows, kWriteStore, gelu_on);
    run(g_weights, job, x.data(), y.data());
    double worst = 0;
    for (int r = 0; r < rows; ++r)
      for (int o = 0; o < out; ++o) worst = std::max(worst, std::abs(y[r * out + o].to_double() - golden(r, o, gelu_on)));
    tb::bound(gelu_on ? "linear + GELU, rows in order: max abs error" : "linear, rows in order: max abs error", worst,
              gelu_on ? 8e-6 : 3e-7);
  }
  // Residual add: y += W x + b.
  std::vector<fm_t> base(rows * out);
  for (auto& v : base) v = rng.normal(0, 1);
  std::vector<fm_t> acc = base;
  LinearJob add = job_of(rows, kReadRows, kWriteAdd, false);
  run(g_weights, add, x.data(), acc.data());
  double worst = 0;
  for (int r = 0; r < rows; ++r)
    for (int o = 0; o < out; ++o)
      worst = std::max(worst, std::abs(acc[r * out + o].to_double() - base[r * out + o].to_double() - golden(r, o, false)));
  tb::bound("linear, residual add: max abs error", worst, 3e-7);
  // Gather through a queue, then scatter with score-weighted accumulate.
  const short queue[5] = {3, 17, 4, 36, 0};
  const unit_t scores[5] = {0.5, 0.25, 0.125, 0.9, 0.01};
  for (int j = 0; j < 5; ++j) g_tokens[0][j] = queue[j], g_scores[0][j] = scores[j];
  std::vector<fm_t> hidden(5 * out), scattered = base;
  LinearJob gather = job_of(5, kReadGather, kWriteStore, false);
  run(g_weights, gather, x.data(), hidden.data());
  worst = 0;
  for (int j = 0; j < 5; ++j)
    for (int o = 0; o < out; ++o) worst = std::max(worst, std::abs(hidden[j * out + o].to_double() - golden(queue[j], o, false)));
  tb::bound("linear, gathered rows: max abs error", worst, 3e-7);
  // identity-free check of the scatter: reuse the same weights on hidden rows truncated to `in` columns
  std::vector<fm_t> src(5 * in);
  for (int j = 0; j < 5; ++j)
    for (int i = 0; i < in; ++i) src[j * in + i] = x[queue[j] * in + i];
  LinearJob scatter = job_of(5, kReadRows, kWriteScatterWeighted, false);
  run(g_weights, scatter, src.data(), scattered.data());
  worst = 0;
  for (int r = 0; r < rows; ++r)
    for (int o = 0; o < out; ++o) {
      double expect_v = base[r * out + o].to_double();
      for (int j = 0; j < 5; ++j)
        if (queue[j] == r) expect_v += scores[j].to_double() * golden(r, o, false);
      worst = std::max(worst, std::abs(scattered[r * out + o].to_double() - expect_v));
    }
  // Two roundings here (score * y, then the accumulate) plus the input lane: 2 LSB + 2^-18 * |x| * |w|.
  tb::bound("linear, score-weighted scatter-accumulate: max abs error", worst, 6e-7);
  // The residual reader and the writer, access by access: each word of x is read once, then written
  // once, per job; none is touched after it was written (src/access_check.h) ...
  tb::expect(tb::checked_accesses() > 0 && tb::collisions() == 0,
             "add and scatter: no word of x is touched after the job wrote it");
  {  // ... and the check does see a collision: a queue that lists token 17 twice
    g_tokens[0][2] = 17;
    std::vector<fm_t> twice = base;
    run(g_weights, scatter, src.data(), twice.data());
    tb::expect(tb::collisions() > 0, "a queue listing a token twice collides: the check can fail");
    g_tokens[0][2] = queue[2];
    tb::collisions() = 0;
  }

  // Saturating input lanes: activations beyond mac_in_t's +-256 clamp (AP_SAT) before the MACs.
  // The golden model clamps and floors to the lane's 18 fraction bits itself, without ap_fixed, so a
  // wrapping mac_in_t fails here.
  {
    static WeightBuffer small_weights;
    std::vector<wt_t> ws(out * in);
    for (auto& v : ws) v = rng.normal(0, 0.01);
    std::vector<fm_t> big(rows * in), ys(rows * out);
    int saturated = 0;
    for (auto& v : big) {
      v = rng.normal(0, 250);
      saturated += std::abs(v.to_double()) >= 256;
    }
    load(ws, bias, out, in, small_weights);
    LinearJob job = job_of(rows, kReadRows, kWriteStore, false);
    run(small_weights, job, big.data(), ys.data());
    const double lsb = std::ldexp(1.0, -18);
    double worst_sat = 0;
    for (int r = 0; r < rows; ++r)
      for (int o = 0; o < out; ++o) {
        double s = bias[o].to_double();
        for (int i = 0; i < in; ++i) {
          const double lane = std::floor(std::min(std::max(big[r * in + i].to_double(), -256.0), 256.0 - lsb) / lsb) * lsb;
          s += lane * ws[o * in + i].to_double();
        }
        worst_sat = std::max(worst_sat, std::abs(ys[r * out + o].to_double() - s));
      }
    tb::expect(saturated > rows, "the saturation case has inputs beyond mac_in_t's range");
    tb::bound("linear, saturating input lanes (|x| ~ 250): max abs error", worst_sat, 3e-7);
  }

  // Patch embedding: the reader cuts 3 x P x P patches out of the image (Conv2d weight order), a
  // patch row at a time from 64-byte image words: P = 4 never straddles a word, P = 6 and 12 do
  // (two words per patch row), and the image ends inside its last word.
  for (const int P : {4, 6, 12}) {
    const int gh = 3, gw = 5, K = 3 * P * P, D = 32, H = gh * P, W = gw * P;
    static WeightBuffer patch_weights;
    std::vector<wt_t> pw(D * K);
    std::vector<fm_t> pb(D), emb(gh * gw * D);
    std::vector<pixel_t> image(3 * H * W);
    for (auto& v : pw) v = rng.normal(0, 0.2);
    for (auto& v : pb) v = rng.normal(0, 0.1);
    for (auto& v : image) v = rng.uniform(0, 0.99);
    load(pw, pb, D, K, patch_weights);
    LinearJob patches = job_of(gh * gw, kReadPatches, kWriteStore, false, gh, gw, P);
    const std::vector<pixel_word_t> image_words = tb::pixel_words(image);
    run(patch_weights, patches, nullptr, emb.data(), image_words.data());
    double worst_patch = 0;
    for (int py = 0; py < gh; ++py)
      for (int px = 0; px < gw; ++px)
        for (int d = 0; d < D; ++d) {
          double s = pb[d].to_double();
          for (int c = 0; c < 3; ++c)
            for (int ky = 0; ky < P; ++ky)
              for (int kx = 0; kx < P; ++kx)
                s += image[(c * H + py * P + ky) * W + px * P + kx].to_double() * pw[d * K + (c * P + ky) * P + kx].to_double();
          worst_patch = std::max(worst_patch, std::abs(emb[(py * gw + px) * D + d].to_double() - s));
        }
    tb::bound("linear, image patches (patch embedding), P = " + std::to_string(P) + ": max abs error", worst_patch, 3e-7);
  }
  // Rows split over two threads (emulation) give exactly the single-call result, in every mode.
  {
    const int many = 150;
    std::vector<fm_t> xs(many * in), a(many * out, fm_t(0)), b(many * out, fm_t(0));
    for (auto& v : xs) v = rng.normal(0, 2);
    LinearJob whole = job_of(many, kReadRows, kWriteStore, true);
    LinearJob split = whole;
    linear_unit(g_weights.tiles, g_weights.bias, g_weights.shape, whole, nullptr, tb::words(a), tb::words(xs),
                tb::words(a), nullptr, g_tokens, g_scores, g_line);
    run(g_weights, split, xs.data(), b.data());
    int differing = 0;
    for (int i = 0; i < many * out; ++i) differing += !(a[i] == b[i]);
    tb::expect(differing == 0, "run_linear's row split is bit-identical to one call");
  }
  // The emulated MAC array (hls_host/exact_mac.h: exact sums in a CPU's order, used whenever no
  // cycle ledger is attached) against the pipelined loop (run with a ledger attached), bit for bit:
  // every epilogue; ragged tiles; more than one block of rows; a K past the exact chunk of
  // double sums (1024 products: the build's largest row K, 1536 or more); and operands at both
  // ends of their ranges, whose 45-bit products summed over that K wrap acc_t's 48 bits.
  {
    static edgemoe_ledger::Ledger ledger;
    static WeightBuffer wide;
    struct Case {
      const char* name;
      int rows, out, in;
      double x_sd, w_sd;  // normal values; 0: the extremes of the formats
      bool gelu, relu;
    };
    const int big_k = std::min(2304, kMaxLinearIn);
    static_assert(kMaxLinearIn > 1024, "a row K past one exact chunk of double sums");
    const Case cases[] = {{"normal, plain", 150, 80, 112, 2, 0.1, false, false},
                          {"normal, GELU", 37, 48, 200, 2, 0.1, true, false},
                          {"normal, ReLU, largest K", 70, 32, big_k, 1, 0.05, false, true},
                          {"extremes, largest K (acc_t wraps)", 9, 32, big_k, 0, 0, false, false},
                          {"extremes, ReLU, K = 1056", 5, 16, 1056, 0, 0, false, true}};
    for (const Case& c : cases) {
      std::vector<wt_t> wc(c.out * c.in);
      std::vector<fm_t> bc(c.out), xc(c.rows * c.in), piped(c.rows * c.out, fm_t(0)), exact(c.rows * c.out, fm_t(1));
      // extremes: mac_in_t saturates at -256 and 256 - 2^-18, wt_t spans [-2, 2 - 2^-16]
      for (auto& v : wc) v = c.w_sd > 0 ? wt_t(rng.normal(0, c.w_sd)) : (rng.uniform(0, 1) < 0.8 ? wt_t(-2) : wt_t(2 - std::ldexp(1.0, -16)));
      for (auto& v : xc) v = c.x_sd > 0 ? fm_t(rng.normal(0, c.x_sd)) : (rng.uniform(0, 1) < 0.8 ? fm_t(-300) : fm_t(300));
      for (auto& v : bc) v = rng.normal(0, 0.5);
      load(wc, bc, c.out, c.in, wide);
      {  // the emulation's unpacking writes the tiles the pipelined fetch writes
        static WeightBuffer fetched;
        edgemoe_ledger::active() = &ledger;
        load(wc, bc, c.out, c.in, fetched);
        edgemoe_ledger::active() = nullptr;
        int differing_weights = 0;
        for (int o = 0; o < c.out; ++o)
          for (int i = 0; i < c.in; ++i) {
            const int tile = (o / kTout) * wide.shape.in_tiles + i / kTin;
            differing_weights += !(wide.tiles[tile][o % kTout][i % kTin] == fetched.tiles[tile][o % kTout][i % kTin]);
            differing_weights += !(wide.tiles[tile][o % kTout][i % kTin] == wc[o * c.in + i]);
          }
        tb::expect(differing_weights == 0, std::string("the emulation's weight unpacking equals the pipelined fetch: ") + c.name);
      }
      LinearJob job = job_of(c.rows, kReadRows, kWriteStore, c.gelu);
      job.relu = c.relu;
      edgemoe_ledger::active() = &ledger;
      run(wide, job, xc.data(), piped.data());
      edgemoe_ledger::active() = nullptr;
      run(wide, job, xc.data(), exact.data());
      int differing = 0;
      for (int i = 0; i < c.rows * c.out; ++i) differing += !(piped[i] == exact[i]);
      tb::expect(differing == 0, std::string("the emulated MAC array is bit-identical to the pipelined loop: ") + c.name);
    }
  }
  return tb::finish();
}
