#include "sim/calibration.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace ringattn::sim {
namespace {

// Relative rate vs block side, the shape of FlashAttention-2's published
// forward curve (A100, d128: 512 -> 16k tokens), scaled so that the GPU's
// measured anchor (below) sits at its block side.
constexpr std::pair<double, double> kCurve[] = {
    {256, 0.40}, {512, 0.60}, {1024, 0.78}, {2048, 0.90}, {4096, 0.97}, {8192, 1.0}, {16384, 1.01}};

struct Anchor {
  const char* gpu;
  // Causal forward / backward TFLOP/s of one block of 8192 tokens, d128.
  double fwd_causal, bwd_causal;
  // Causal vs full rate per FLOP, forward and backward.
  double partial_fwd, partial_bwd;
  double launch_us, hbm_gbps, link_gbps, link_latency_us, internode_gbps, internode_latency_us;
  double sms;    // SXM parts: H100, H200, H800 132; A100 108
  double l2_mb;  // H100, H200, H800 50; A100 40
  // Rate per FLOP of head_dim 64 and 256 relative to 128, [forward,
  // backward][d64, d256].
  double head[2][2];
};

// H100: our kernels as a ring step runs them, measured by
// bench/kernel_bench.sh on an H100 (docs/KERNEL_BENCH.md, 2026-11-23 third
// session: wgmma forward merging into the fp32 state 325.3, wgmma backward
// 336.8 TFLOP/s at s8192 h32 d128 causal). H200: the warp-specialized
// kernels measured on an H200 the same way (2026-12-01, nineteenth
// session, bench/kernel_bench.sh at 8ec2ceb: the scheduler-thread forward,
// the backward in KeyTileOrder; forward merging into the fp32 state 631.8;
// causal / full per FLOP 631.8 / 658.1 = 0.960 forward;
// docs/measurements/2026-12-01_h200_kernel_order_and_key_grads.txt, call
// 4; the eleventh session's were 630.2 / 467.0, 0.97 / 0.96:
// 2026-12-01_h200_kernel_bench_mask_ranges.txt). The backward from the
// twenty-third session's table (b6951ce, the d128 consumers in ping-pong;
// docs/measurements/2026-12-02_h200_backward_ping_pong.txt, call 6):
// 548.6, causal / full 548.6 / 579.2 = 0.947 (the nineteenth session's
// 526.7, 0.933); the same run's fused forward, 632.3, keeps 631.8. H800 and A100:
// ring-flash-attention's single-GPU rows (flash_attn, b1 s8192 h32 d128 causal: 591.5 / 154.7
// iter/s fwd / fwd+bwd on H800; 373.4 / 94.7 on A100) turned into TFLOP/s. Links: NVLink per
// direction (H100/H200 450 GB/s peak, measured 280-305 GB/s in NCCL rings; H800 NVLink 200 GB/s;
// A100 300 GB/s), 400 Gb/s IB per GPU across nodes. Causal vs full: FlashAttention-2 (PyTorch's
// flash backend) measured on an H100 by bench/seed_kernel_rates.py (2026-11-23): full 8192x4096 and
// 4096x8192 blocks run 1.106x / 1.092x the causal 8192 rate per FLOP forward, 1.019x / 1.059x
// backward, so 0.9 forward and 0.96 backward for the FA2-based tables (h800 has h100's SMs; a100
// the same kernels). Ours on h100 keeps 0.9 until measured. Head dims: FA2
// runs d64 at ~0.85x d128 and d256 at ~1x (the FA2-based tables and h100);
// h200 from one table (the twenty-fifth session's at e9c5848, the d256
// backward's TMA copies; docs/measurements/
// 2026-12-02_h200_tma_backward_pairs_sections.txt, call 3; the d64 and d256
// rows are s16384, where the curve says 1.01x): forward merging into the
// fp32 state d64 467.3, d256 654.3 vs d128 632.1 (0.739, 1.035); backward
// d64 474.2 and d256 373.4 vs d128 548.7 (0.864, 0.681).
// One GPU a row.
// clang-format off
constexpr Anchor kAnchors[] = {
    {"h100", 325.3, 336.8, 0.9, 0.9, 5, 3350, 290, 10, 45, 20, 132, 50,
     {{0.85, 1.0}, {0.85, 1.0}}},
    {"h200", 631.8, 548.6, 0.96, 0.947, 5, 4800, 290, 10, 45, 20, 132, 50,
     {{0.739, 1.035}, {0.864, 0.681}}},
    {"h800", 325.2, 288.0, 0.9, 0.96, 5, 3350, 170, 10, 45, 20, 132, 50,
     {{0.85, 1.0}, {0.85, 1.0}}},
    {"a100", 205.3, 174.4, 0.9, 0.96, 5, 2039, 240, 10, 22, 20, 108, 40,
     {{0.85, 1.0}, {0.85, 1.0}}},
};
// clang-format on

// A rate's head dim: a whole number (it keys a table of int64) no larger
// than any kernel's.
constexpr double kMaxRateHeadDim = 65536;

absl::Status LineError(int line, absl::string_view text, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("calibration line ", line, " '", absl::CHexEscape(text.substr(0, 60)),
                   text.size() > 60 ? "..." : "", "': ", why,
                   " (expected the text format `ringattn sim` documents)"));
}

// The shipped tables' names as an error message lists them: "h100, h200,
// h800 or a100".
std::string BuiltinNames() {
  std::string names;
  const int n = static_cast<int>(std::size(kAnchors));
  for (int i = 0; i < n; ++i) {
    absl::StrAppend(&names, i == 0 ? "" : i + 1 == n ? " or " : ", ", kAnchors[i].gpu);
  }
  return names;
}

}  // namespace

double InterpolateInLogSide(const std::vector<std::pair<double, double>>& points, double side) {
  if (side <= points.front().first) return points.front().second;
  for (size_t i = 1; i < points.size(); ++i) {
    if (side <= points[i].first) {
      const double t =
          std::log(side / points[i - 1].first) / std::log(points[i].first / points[i - 1].first);
      return points[i - 1].second + t * (points[i].second - points[i - 1].second);
    }
  }
  return points.back().second;
}

absl::StatusOr<Calibration> Calibration::Builtin(absl::string_view gpu) {
  for (const Anchor& a : kAnchors) {
    if (gpu != a.gpu) continue;
    Calibration c;
    c.gpu = a.gpu;
    c.launch_us = a.launch_us;
    c.hbm_gbps = a.hbm_gbps;
    c.link_gbps = a.link_gbps;
    c.link_latency_us = a.link_latency_us;
    c.internode_gbps = a.internode_gbps;
    c.internode_latency_us = a.internode_latency_us;
    c.partial_block_factor = a.partial_fwd;
    c.partial_block_factor_bwd = a.partial_bwd;
    c.rate_heads = 32;  // every anchor's row: b1 h32
    // Hopper's warp-specialized backward stores fresh dK/dV rows; A100's
    // mma.sync kernel adds (every backward step zeroes its buffer).
    c.stored_dkv_steps = gpu == "a100" ? 0 : 1;
    c.sms = a.sms;
    c.l2_mb = a.l2_mb;
    // The anchors are causal (partial) blocks: full blocks run faster by
    // 1 / the partial factor.
    for (int pass = 0; pass < 2; ++pass) {
      const double full = (pass == 0 ? a.fwd_causal : a.bwd_causal) / c.PartialFactor(pass == 1);
      for (int64_t d : {64, 128, 256}) {
        const double head = d == 64 ? a.head[pass][0] : d == 256 ? a.head[pass][1] : 1.0;
        for (const auto& [side, rel] : kCurve) {
          c.rates[pass][d].push_back({side, full * head * rel});
        }
      }
    }
    return c;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown gpu '", gpu, "'; expected ", BuiltinNames()));
}

absl::StatusOr<std::string> Calibration::BuiltinNameOfDevice(absl::string_view device_name) {
  const std::string name = absl::AsciiStrToLower(device_name);
  for (const Anchor& a : kAnchors) {
    if (absl::StrContains(name, a.gpu)) return std::string(a.gpu);
  }
  return absl::NotFoundError(absl::StrCat("no calibration table for the device '", device_name,
                                          "'; name one: ", BuiltinNames()));
}

namespace {
// A number a calibration may hold: finite (SimpleAtod also takes "inf" and
// "nan", which a calibration would carry into every prediction: inf times,
// or a NaN that std::max drops without a word), and 0 or of a magnitude from
// 1e-9 to 1e12 (rates, bandwidths and factors divide: a denormal one made
// every time inf; times and sizes beyond 1e12 add up to inf).
constexpr absl::string_view kNumberRange = "0 or of magnitude 1e-9 to 1e12";
bool FiniteNumber(absl::string_view text, double* out) {
  if (!absl::SimpleAtod(text, out) || !std::isfinite(*out)) return false;
  const double magnitude = std::abs(*out);
  return magnitude == 0 || (magnitude >= 1e-9 && magnitude <= 1e12);
}
}  // namespace

absl::StatusOr<Calibration> Calibration::Parse(absl::string_view text) {
  Calibration c;
  int line_number = 0;
  for (absl::string_view raw : absl::StrSplit(text, '\n')) {
    ++line_number;
    absl::string_view line = raw.substr(0, raw.find('#'));
    std::vector<absl::string_view> f =
        absl::StrSplit(absl::StripAsciiWhitespace(line), ' ', absl::SkipEmpty());
    if (f.empty()) continue;
    if (f[0] == "gpu" && f.size() == 2) {
      c.gpu = std::string(f[1]);
      continue;
    }
    if (f[0] == "rate") {
      double head_dim, side, tflops;
      if (f.size() != 5 || (f[1] != "fwd" && f[1] != "bwd") || !FiniteNumber(f[2], &head_dim) ||
          !FiniteNumber(f[3], &side) || !FiniteNumber(f[4], &tflops) || head_dim < 1 ||
          head_dim > kMaxRateHeadDim || head_dim != std::floor(head_dim) || side <= 0 ||
          tflops <= 0) {
        return LineError(
            line_number, raw,
            absl::StrCat("expected 'rate fwd|bwd HEAD_DIM TOKENS TFLOPS' with "
                         "positive numbers (",
                         kNumberRange, "), HEAD_DIM a whole number up to ", kMaxRateHeadDim));
      }
      c.rates[f[1] == "bwd"][static_cast<int64_t>(head_dim)].push_back({side, tflops});
      continue;
    }
    if (f[0] == "partial") {
      double side = 0, factor = 0;
      if (f.size() != 4 || (f[1] != "fwd" && f[1] != "bwd") || !FiniteNumber(f[2], &side) ||
          !FiniteNumber(f[3], &factor) || side <= 0 || factor <= 0) {
        return LineError(line_number, raw,
                         absl::StrCat("expected 'partial fwd|bwd TOKENS FACTOR' with positive "
                                      "numbers (",
                                      kNumberRange, ")"));
      }
      c.partial_by_side[f[1] == "bwd"].push_back({side, factor});
      continue;
    }
    double value;
    if (f.size() != 2 || !FiniteNumber(f[1], &value) || value < 0) {
      return LineError(
          line_number, raw,
          absl::StrCat("expected 'KEY NUMBER', a finite number >= 0 (", kNumberRange, ")"));
    }
    static constexpr std::pair<absl::string_view, double Calibration::*> kKeys[] = {
        {"launch_us", &Calibration::launch_us},
        {"launch_us_bwd", &Calibration::launch_us_bwd},
        {"hbm_GBps", &Calibration::hbm_gbps},
        {"link_GBps", &Calibration::link_gbps},
        {"collective_GBps", &Calibration::collective_gbps},
        {"link_latency_us", &Calibration::link_latency_us},
        {"internode_GBps", &Calibration::internode_gbps},
        {"internode_latency_us", &Calibration::internode_latency_us},
        {"partial_block_factor", &Calibration::partial_block_factor},
        {"partial_block_factor_bwd", &Calibration::partial_block_factor_bwd},
        {"strided_block_factor", &Calibration::strided_block_factor},
        {"strided_block_factor_bwd", &Calibration::strided_block_factor_bwd},
        {"merged_state_factor", &Calibration::merged_state_factor},
        {"host_sync_us", &Calibration::host_sync_us},
        {"ring_pass_dkv_home_bytes", &Calibration::ring_pass_dkv_home_bytes},
        {"forward_o_bytes", &Calibration::forward_o_bytes},
        {"fused_slices", &Calibration::fused_slices},
        {"llama3_ring_of_one_whole", &Calibration::llama3_ring_of_one_whole},
        {"stored_dkv_steps", &Calibration::stored_dkv_steps},
        {"partial_sum_sets_dkv_rows", &Calibration::partial_sum_sets_dkv_rows},
        {"hop_sm_share", &Calibration::hop_sm_share},
        {"pass_overhead_us_fwd", &Calibration::pass_overhead_us_fwd},
        {"pass_overhead_us_bwd", &Calibration::pass_overhead_us_bwd},
        {"hop_issue_us", &Calibration::hop_issue_us},
        {"hop_issue_us_kv", &Calibration::hop_issue_us_kv},
        {"min_kernel_us_fwd", &Calibration::min_kernel_us_fwd},
        {"min_kernel_us_bwd", &Calibration::min_kernel_us_bwd},
        {"rate_heads", &Calibration::rate_heads},
        {"sms", &Calibration::sms},
        {"l2_MB", &Calibration::l2_mb},
    };
    const auto key = std::find_if(std::begin(kKeys), std::end(kKeys),
                                  [&](const auto& k) { return k.first == f[0]; });
    if (key == std::end(kKeys)) return LineError(line_number, raw, "unknown key");
    c.*(key->second) = value;
  }
  for (int pass = 0; pass < 2; ++pass) {
    if (c.rates[pass].empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("calibration has no '", pass ? "bwd" : "fwd", "' rates"));
    }
    for (auto& [d, curve] : c.rates[pass]) std::sort(curve.begin(), curve.end());
    std::sort(c.partial_by_side[pass].begin(), c.partial_by_side[pass].end());
  }
  // link_GBps 0: no link measured (a one-GPU run's calibration); the
  // simulator refuses it for a ring of several ranks.
  if (c.link_gbps < 0 || c.internode_gbps <= 0 || c.hbm_gbps <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("calibration bandwidths link_GBps ", c.link_gbps, ", internode_GBps ",
                     c.internode_gbps, ", hbm_GBps ", c.hbm_gbps,
                     ": expected internode and hbm positive, link positive or 0 (none "
                     "measured: one GPU)"));
  }
  if (c.hop_sm_share >= 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "calibration hop_sm_share ", c.hop_sm_share,
        ": expected 0 <= share < 1 (the share of a kernel's rate a ring hop beside it takes)"));
  }
  if (c.sms < 1 || c.sms != std::floor(c.sms) || c.rate_heads != std::floor(c.rate_heads)) {
    return absl::InvalidArgumentError(
        absl::StrCat("calibration sms ", c.sms, " and rate_heads ", c.rate_heads,
                     ": expected whole numbers, sms >= 1 (the GPU's SMs) and rate_heads >= 0"));
  }
  return c;
}

absl::StatusOr<Calibration> Calibration::Load(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::stringstream buffer;
  buffer << in.rdbuf();
  absl::StatusOr<Calibration> c = Parse(buffer.str());
  if (!c.ok()) {
    return absl::Status(c.status().code(), absl::StrCat(path, ": ", c.status().message()));
  }
  return c;
}

std::string Calibration::Serialize() const {
  std::string out = absl::StrCat(
      "# ringattn simulator calibration\ngpu ", gpu, "\nlaunch_us ", launch_us,
      // Unset (-1: the forward's) is left out: the format has no negative numbers.
      launch_us_bwd >= 0 ? absl::StrCat("\nlaunch_us_bwd ", launch_us_bwd) : "", "\nhbm_GBps ",
      hbm_gbps, "\nlink_GBps ", link_gbps, "\ncollective_GBps ", collective_gbps,
      "\nlink_latency_us ", link_latency_us, "\ninternode_GBps ", internode_gbps,
      "\ninternode_latency_us ", internode_latency_us, "\npartial_block_factor ",
      partial_block_factor, "\npartial_block_factor_bwd ", partial_block_factor_bwd,
      "\nstrided_block_factor ", strided_block_factor, "\nstrided_block_factor_bwd ",
      strided_block_factor_bwd, "\nmerged_state_factor ", merged_state_factor, "\nhost_sync_us ",
      host_sync_us, "\nring_pass_dkv_home_bytes ", ring_pass_dkv_home_bytes, "\nforward_o_bytes ",
      forward_o_bytes, "\nfused_slices ", fused_slices, "\nllama3_ring_of_one_whole ",
      llama3_ring_of_one_whole, "\nstored_dkv_steps ", stored_dkv_steps,
      "\npartial_sum_sets_dkv_rows ", partial_sum_sets_dkv_rows, "\nhop_sm_share ", hop_sm_share,
      "\npass_overhead_us_fwd ", pass_overhead_us_fwd, "\npass_overhead_us_bwd ",
      pass_overhead_us_bwd, "\nhop_issue_us ", hop_issue_us, "\nhop_issue_us_kv ", hop_issue_us_kv,
      "\nmin_kernel_us_fwd ", min_kernel_us_fwd, "\nmin_kernel_us_bwd ", min_kernel_us_bwd,
      "\nrate_heads ", rate_heads, "\nsms ", sms, "\nl2_MB ", l2_mb,
      "\n# rate fwd|bwd head_dim block_tokens TFLOP/s (full blocks)\n");
  for (int pass = 0; pass < 2; ++pass) {
    for (const auto& [d, curve] : rates[pass]) {
      for (const auto& [side, tflops] : curve) {
        absl::StrAppendFormat(&out, "rate %s %d %.9g %.9g\n", pass ? "bwd" : "fwd", d, side,
                              tflops);
      }
    }
  }
  for (int pass = 0; pass < 2; ++pass) {
    for (const auto& [side, factor] : partial_by_side[pass]) {
      absl::StrAppendFormat(&out, "partial %s %.9g %.9g\n", pass ? "bwd" : "fwd", side, factor);
    }
  }
  return out;
}

absl::Status Calibration::FitCurve(bool backward, int64_t head_dim,
                                   std::vector<std::pair<double, double>> measured) {
  if (measured.empty()) return absl::InvalidArgumentError("FitCurve: no measured points");
  for (const auto& [side, tflops] : measured) {
    if (!(side > 0) || !(tflops > 0)) {
      return absl::InvalidArgumentError(absl::StrCat("FitCurve: measured point (", side, ", ",
                                                     tflops, "); expected side and rate > 0"));
    }
  }
  std::sort(measured.begin(), measured.end());
  auto& table = rates[backward ? 1 : 0];
  if (table.empty()) return absl::FailedPreconditionError("FitCurve: no curve to start from");
  // Measured over modelled full rate at each measured side, before any change.
  std::vector<std::pair<double, double>> ratio;
  for (const auto& [side, tflops] : measured) {
    const int64_t n = static_cast<int64_t>(side);
    ratio.push_back({side, tflops / Tflops(backward, head_dim, n, n, 1.0)});
  }
  // The curve Tflops would use for this head_dim, copied.
  auto nearest = table.lower_bound(head_dim);
  if (nearest == table.end()) {
    nearest = std::prev(table.end());
  } else if (nearest->first != head_dim && nearest != table.begin()) {
    auto below = std::prev(nearest);
    if (head_dim - below->first < nearest->first - head_dim) nearest = below;
  }
  std::vector<std::pair<double, double>> curve;
  for (const auto& [side_, tflops] : nearest->second) {
    const double side = side_;  // a lambda may not capture a structured binding (C++17)
    const bool replaced = std::any_of(measured.begin(), measured.end(),
                                      [&](const auto& m) { return m.first == side; });
    if (!replaced) curve.push_back({side, tflops * InterpolateInLogSide(ratio, side)});
  }
  curve.insert(curve.end(), measured.begin(), measured.end());
  std::sort(curve.begin(), curve.end());
  table[head_dim] = std::move(curve);
  return absl::OkStatus();
}

double Calibration::PartialFactorAt(bool backward, double side) const {
  const std::vector<std::pair<double, double>>& by_side = partial_by_side[backward ? 1 : 0];
  return by_side.empty() ? PartialFactor(backward) : InterpolateInLogSide(by_side, side);
}

const std::vector<std::pair<double, double>>& Calibration::CurveOf(bool backward,
                                                                   int64_t head_dim) const {
  const auto& table = rates[backward ? 1 : 0];
  auto it = table.lower_bound(head_dim);
  if (it == table.end()) {
    it = std::prev(table.end());
  } else if (it->first != head_dim && it != table.begin()) {
    auto below = std::prev(it);
    if (head_dim - below->first < it->first - head_dim) it = below;
  }
  return it->second;
}

double Calibration::Tflops(bool backward, int64_t head_dim, int64_t rows_q, int64_t rows_k,
                           double density, double factor_scale) const {
  const auto& curve = CurveOf(backward, head_dim);
  const double side = std::sqrt(static_cast<double>(rows_q) * rows_k);
  const double rate = side <= curve.front().first
                          ? curve.front().second * side / curve.front().first  // tiny blocks
                          : InterpolateInLogSide(curve, side);
  if (density >= 1) return rate;
  const double f = PartialFactorAt(backward, side) * factor_scale;
  const double t = std::max(0.0, (density - 0.5) / 0.5);
  return rate * (f + t * (1 - f));
}

}  // namespace ringattn::sim
