#include "sim/ring_bench_log.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/status_macros.h"

namespace ringattn::sim {
namespace {

absl::StatusOr<double> Number(absl::string_view text, absl::string_view what) {
  double x = NAN;
  if (!absl::SimpleAtod(absl::StripAsciiWhitespace(text), &x) || !std::isfinite(x)) {
    return absl::InvalidArgumentError(
        absl::StrCat("ring_bench log: ", what, " is '", text, "'; expected a (finite) number"));
  }
  return x;
}

// The text between `after` and the next `before` in `line` ("" if absent).
absl::string_view Between(absl::string_view line, absl::string_view after,
                          absl::string_view before) {
  const size_t a = line.find(after);
  if (a == absl::string_view::npos) return "";
  line.remove_prefix(a + after.size());
  return line.substr(0, line.find(before));
}

}  // namespace

absl::StatusOr<RingBenchLog> ParseRingBenchLog(const std::string& text) {
  RingBenchLog log;
  bool header = false;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, "ring_bench: ")) {
      header = true;
      ASSIGN_OR_RETURN(double world, Number(Between(line, "ring_bench: ", " x "), "world"));
      ASSIGN_OR_RETURN(double tokens, Number(Between(line, " b1 ", " tokens/rank"), "tokens"));
      // "hH/K dD" after the tokens, read on its own: the communicator's name
      // before it may hold a " d" ("device copies").
      const absl::string_view heads_text = Between(line, "tokens/rank h", " causal");
      ASSIGN_OR_RETURN(double heads, Number(Between(heads_text, "", "/"), "heads"));
      ASSIGN_OR_RETURN(double kv_heads, Number(Between(heads_text, "/", " d"), "kv heads"));
      ASSIGN_OR_RETURN(double head_dim, Number(Between(heads_text, " d", " "), "head dim"));
      ASSIGN_OR_RETURN(log.hop_gbps, Number(Between(line, " B: ", " GB/s"), "hop"));
      if (const absl::string_view gather = Between(line, " B per rank: ", " GB/s");
          !gather.empty()) {
        ASSIGN_OR_RETURN(log.all_gather_gbps, Number(gather, "all-gather"));
      }
      // Whole numbers in the ranges ring_bench runs (a cast of a larger or
      // fractional one would be undefined or wrong).
      const auto whole = [](double x, double most) {
        return x >= 1 && x <= most && x == std::floor(x);
      };
      if (!whole(world, 65536) || !whole(tokens, 1 << 30) || !whole(heads, 65536) ||
          !whole(kv_heads, heads) || !whole(head_dim, 65536)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "ring_bench log: header world ", world, ", tokens ", tokens, ", heads ", heads, "/",
            kv_heads, ", head dim ", head_dim,
            "; expected whole numbers from 1 (world, heads and head dim at most 65536, kv heads "
            "at most the heads, tokens at most 2^30)"));
      }
      log.shape = {static_cast<int>(world), static_cast<int64_t>(tokens),
                   static_cast<int64_t>(heads), static_cast<int64_t>(kv_heads),
                   static_cast<int64_t>(head_dim)};
    } else if (absl::StartsWith(line, "ring hop sweep (")) {
      // "ring hop sweep (MiB per rank:GB/s ours/plain NCCL): 8:93.5/115.2 16:..."
      for (absl::string_view point :
           absl::StrSplit(Between(line, "): ", "\n"), ' ', absl::SkipWhitespace())) {
        const std::pair<absl::string_view, absl::string_view> p = absl::StrSplit(point, ':');
        ASSIGN_OR_RETURN(const double mib, Number(p.first, "hop sweep size"));
        ASSIGN_OR_RETURN(const double gbps,
                         Number(Between(p.second, "", "/"), "hop sweep bandwidth"));
        if (!(mib > 0 && gbps > 0)) {
          return absl::InvalidArgumentError(absl::StrCat("ring_bench log: hop sweep point '", point,
                                                         "'; expected MiB:GB/s, both positive"));
        }
        log.hop_sweep.push_back({mib, gbps});
      }
    } else if (absl::StartsWith(line, "hop issue (")) {
      ASSIGN_OR_RETURN(
          log.hop_issue_us_kv,
          Number(Between(line, "(a forward's first step) ", " us"), "hop issue (K and V)"));
      ASSIGN_OR_RETURN(log.hop_issue_us,
                       Number(Between(line, "one message each way ", " us"), "hop issue (one)"));
    } else if (absl::StartsWith(line, "(") && absl::StrContains(line, ": virtual ranks;")) {
      log.virtual_ranks = true;
    } else if (absl::StartsWith(line, "calibration: ")) {
      log.calibration_line = std::string(line);
    } else {
      const std::vector<absl::string_view> f = absl::StrSplit(line, ' ', absl::SkipWhitespace());
      // A table row ends "meas ms, sim ms, err"; "- -" where the run did
      // not simulate (virtual ranks).
      const bool simulated = !f.empty() && absl::EndsWith(f.back(), "%") && f.back() != "%";
      const bool unsimulated = f.size() >= 2 && f.back() == "-" && f[f.size() - 2] == "-";
      if (f.size() >= 10 && (f[1] == "fwd" || f[1] == "fwd+bwd") && (simulated || unsimulated)) {
        MeasuredRow row{std::string(f[0]), std::string(f[1])};
        ASSIGN_OR_RETURN(row.ms, Number(f[f.size() - 3], "meas ms"));
        if (simulated) {
          ASSIGN_OR_RETURN(row.printed_sim_ms, Number(f[f.size() - 2], "sim ms"));
        }
        log.rows.push_back(row);
      }
    }
  }
  if (!header || log.calibration_line.empty() || log.rows.empty()) {
    return absl::InvalidArgumentError(
        "ring_bench log: expected the 'ring_bench:' header, the 'calibration:' line and the "
        "table with its meas ms / sim ms columns");
  }
  return log;
}

absl::StatusOr<RingBenchLog> LoadRingBenchLog(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  return ParseRingBenchLog(text.str());
}

absl::StatusOr<Calibration> RebuildCalibration(const RingBenchLog& log) {
  const absl::string_view line = log.calibration_line;
  // The table the run started from; logs before it was printed started from
  // h100's, whatever the GPU.
  const absl::string_view table = Between(line, "; from the ", " table");
  ASSIGN_OR_RETURN(Calibration c, Calibration::Builtin(table.empty() ? "h100" : table));
  for (bool backward : {false, true}) {
    const absl::string_view list =
        backward ? Between(line, "; bwd ", ";") : Between(line, "(side:TFLOP/s) fwd ", ";");
    std::vector<std::pair<double, double>> points;
    for (absl::string_view point : absl::StrSplit(list, ' ', absl::SkipWhitespace())) {
      const std::pair<absl::string_view, absl::string_view> p = absl::StrSplit(point, ':');
      ASSIGN_OR_RETURN(double side, Number(p.first, "block side"));
      ASSIGN_OR_RETURN(double tflops, Number(p.second, "block rate"));
      points.push_back({side, tflops});
    }
    RETURN_IF_ERROR(c.FitCurve(backward, log.shape.head_dim, points));
  }
  // "LABEL F<separator>B<end>" of the line into *fwd, *bwd ("causal / full
  // 0.9 fwd, 0.95 bwd", "pass overhead 16.5 / 80 us"); left alone, and
  // false, when the line has no LABEL.
  const auto fwd_bwd = [&](absl::string_view label, absl::string_view separator,
                           absl::string_view end, double* fwd,
                           double* bwd) -> absl::StatusOr<bool> {
    const absl::string_view text = Between(line, absl::StrCat(label, " "), end);
    if (text.empty()) return false;
    const std::pair<absl::string_view, absl::string_view> fb = absl::StrSplit(text, separator);
    ASSIGN_OR_RETURN(*fwd, Number(fb.first, absl::StrCat(label, " fwd")));
    ASSIGN_OR_RETURN(*bwd, Number(fb.second, absl::StrCat(label, " bwd")));
    return true;
  };
  // "LABEL N<end>" of the line into *value, the same way.
  const auto one = [&](absl::string_view label, absl::string_view end,
                       double* value) -> absl::StatusOr<bool> {
    const absl::string_view text = Between(line, absl::StrCat(label, " "), end);
    if (text.empty()) return false;
    ASSIGN_OR_RETURN(*value, Number(text, label));
    return true;
  };
  ASSIGN_OR_RETURN(const bool partial,
                   fwd_bwd("causal / full", " fwd, ", " bwd", &c.partial_block_factor,
                           &c.partial_block_factor_bwd));
  if (!partial) {
    return absl::InvalidArgumentError(
        "ring_bench log: the calibration line has no 'causal / full F fwd, B bwd'");
  }
  // A strided (stripe) block's rate over a contiguous one, where measured
  // (ring_bench since 2026-12-02; before: 0, the contiguous model).
  RETURN_IF_ERROR(fwd_bwd("strided / contiguous", " fwd, ", " bwd", &c.strided_block_factor,
                          &c.strided_block_factor_bwd)
                      .status());
  // A forward launch that merges into its state over one that writes it
  // fresh, where measured (ring_bench since the fresh state, 2026-12-02;
  // before, every launch merged, the calibration's too: 1).
  RETURN_IF_ERROR(one("merged / fresh state", " fwd", &c.merged_state_factor).status());
  // Logs before this field was printed come from code that added a ring
  // pass's returning dK/dV into zeroed full fp32 buffers.
  ASSIGN_OR_RETURN(const bool home,
                   one("ring pass dK/dV home", " B/element", &c.ring_pass_dkv_home_bytes));
  if (!home) c.ring_pass_dkv_home_bytes = 10;
  // Logs before this field was printed come from code that converted every
  // forward pass's O to bf16 into a buffer of the backend's own (4 + 2
  // bytes a query element).
  ASSIGN_OR_RETURN(const bool o_at_end,
                   one("forward's O at its end", " B/element", &c.forward_o_bytes));
  if (!o_at_end) c.forward_o_bytes = 6;
  // Logs before this clause was printed come from code that cut a task per
  // pair of the layout's slices (zigzag at ring size 1: three a step).
  c.fused_slices = absl::StrContains(line, "; adjacent slices fused") ? 1 : 0;
  // Logs before this clause zeroed every backward step's dK/dV buffer
  // (ring_bench prints it where its kernels store every row: Hopper,
  // fp16/bf16 at d64/d128, fresh writes).
  c.stored_dkv_steps = absl::StrContains(line, "; stored dK/dV steps unzeroed") ? 1 : 0;
  // Logs before this clause zeroed a step's whole dK/dV buffer where any of
  // its cells needed it, and added every partial sum.
  c.partial_sum_sets_dkv_rows =
      absl::StrContains(line, "; unwritten dK/dV rows set by the partial sum") ? 1 : 0;
  // NCCL runs since the fifty-fourth session: the share of the kernels' rate
  // a hop beside them takes (else none: the model before).
  RETURN_IF_ERROR(
      one("a hop beside the kernels takes", " of their rate", &c.hop_sm_share).status());
  // Logs before this clause ran llama3's ring of one a step per head group.
  c.llama3_ring_of_one_whole = absl::StrContains(line, "; llama3's ring of one whole") ? 1 : 0;
  // Logs before the pass overhead was measured: none (their rates carry it).
  RETURN_IF_ERROR(
      fwd_bwd("pass overhead", " / ", " us", &c.pass_overhead_us_fwd, &c.pass_overhead_us_bwd)
          .status());
  // Runs with --calibration_events since the forty-ninth session: the
  // 128-token block's kernels timed by events ("(its kernels F / B us by
  // events"), the least time a task's kernel takes (else no floor).
  RETURN_IF_ERROR(
      fwd_bwd("(its kernels", " / ", " us by events", &c.min_kernel_us_fwd, &c.min_kernel_us_bwd)
          .status());
  // Runs with --calibration_task_cost: the measured per-kernel costs (else
  // the builtin launch_us the run used).
  RETURN_IF_ERROR(fwd_bwd("task cost", " / ", " us", &c.launch_us, &c.launch_us_bwd).status());
  // Runs with --calibration_events since 2026-12-03: the causal / full
  // factor at each side of the full sweep ("; causal / full per block side
  // fwd N:F N:F, bwd N:F N:F").
  if (const absl::string_view text = Between(line, "; causal / full per block side fwd ", ";");
      !text.empty()) {
    const std::pair<absl::string_view, absl::string_view> passes = absl::StrSplit(text, ", bwd ");
    for (int pass = 0; pass < 2; ++pass) {
      std::vector<std::pair<double, double>> sides;
      for (absl::string_view point :
           absl::StrSplit(pass == 0 ? passes.first : passes.second, ' ', absl::SkipWhitespace())) {
        const std::pair<absl::string_view, absl::string_view> p = absl::StrSplit(point, ':');
        ASSIGN_OR_RETURN(double side, Number(p.first, "causal block side"));
        ASSIGN_OR_RETURN(double factor, Number(p.second, "causal / full factor"));
        sides.push_back({side, factor});
      }
      if (sides.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("ring_bench log: 'causal / full per block side' has no ",
                         pass ? "bwd" : "fwd", " points; expected 'fwd N:F ..., bwd N:F ...'"));
      }
      std::sort(sides.begin(), sides.end());
      c.partial_by_side[pass] = std::move(sides);
    }
  }
  c.link_gbps = log.hop_gbps;
  c.collective_gbps = log.all_gather_gbps;
  // Virtual ranks' issue was of copies inside a GPU (ring_bench simulates
  // no rows for them).
  if (!log.virtual_ranks) {
    c.hop_issue_us_kv = log.hop_issue_us_kv;
    c.hop_issue_us = log.hop_issue_us;
  }
  // Its calibration blocks ran the run's query heads, batch 1.
  c.rate_heads = static_cast<double>(log.shape.heads);
  c.gpu = "rebuilt-from-ring_bench";
  // The values a calibration file may hold, checked as `ringattn sim` checks
  // one (a log's denormal or huge number made every prediction inf).
  if (const absl::StatusOr<Calibration> checked = Calibration::Parse(c.Serialize());
      !checked.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ring_bench log: its calibration is out of range: ", checked.status().message()));
  }
  return c;
}

double HopBytes(const BenchShape& shape) {
  return 4.0 * static_cast<double>(shape.tokens) * static_cast<double>(shape.kv_heads) *
         static_cast<double>(shape.head_dim);
}

absl::StatusOr<Calibration> RebuildCalibrationFor(const RingBenchLog& log,
                                                  const BenchShape& shape) {
  ASSIGN_OR_RETURN(Calibration c, RebuildCalibration(log));
  const double bytes = HopBytes(shape);
  const double log_bytes = HopBytes(log.shape);
  // Virtual ranks' hops were copies inside a GPU, not the link's.
  if (bytes == log_bytes || log.virtual_ranks) return c;
  // The line through the sweep's points from 32 MiB: seconds = a + s bytes.
  double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (const auto& [mib, gbps] : log.hop_sweep) {
    if (mib < 32) continue;
    const double x = mib * (1 << 20), y = x / (gbps * 1e9);
    n += 1;
    sx += x;
    sy += y;
    sxx += x * x;
    sxy += x * y;
  }
  if (n < 2 || !(n * sxx - sx * sx > 0)) return c;
  const double slope = (n * sxy - sx * sy) / (n * sxx - sx * sx);
  const double latency = std::max(0.0, (sy - slope * sx) / n);
  if (!(slope > 0)) return c;
  const auto rate = [&](double b) { return b / (latency + slope * b) / 1e9; };
  c.link_gbps = rate(bytes);
  if (c.collective_gbps > 0) c.collective_gbps *= rate(bytes / 2) / rate(log_bytes / 2);
  return c;
}

const BenchRow* BenchRowNamed(const std::string& name) {
  for (const BenchRow& row : kBenchRows) {
    if (name == row.name) return &row;
  }
  return nullptr;
}

}  // namespace ringattn::sim
