// The simulator's prediction of bench/ring_bench's rows at another world
// size, from the calibration a measured ring_bench run printed (no GPU
// needed): e.g. the 8-GPU table from a 2-GPU run, or another token count.
//   ring_predict --log=OUT/ring_bench.txt --world=8 [--kv_heads=8] [--tokens=2048]
// Prints, per row and pass, the predicted ms and
// the measured ms beside it at the log's own shape. A log of virtual ranks (one GPU) gives the
// kernel rates; its hop was a copy inside the GPU, so the link's rates come
// from --hop_gbps / --all_gather_gbps (a multi-GPU run's header). At another hop size
// than the log's, the links come from the log's hop sweep where it has one
// (RebuildCalibrationFor).
#include <cstdio>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "core/status_macros.h"
#include "sim/bench_rows.h"
#include "sim/ring_bench_log.h"

ABSL_FLAG(std::string, log, "", "ring_bench's output (its header, calibration line and table)");
ABSL_FLAG(int, world, 0, "ranks to predict for (0: the log's own)");
ABSL_FLAG(int64_t, tokens, 0,
          "tokens per rank to predict for (0: the log's; the calibration's block rates are "
          "held beyond the sides it measured, tokens / 8 to tokens)");
ABSL_FLAG(int64_t, kv_heads, 0, "key/value heads (0: the log's; the seed's table has 8)");
ABSL_FLAG(double, hop_gbps, 0,
          "the ring hop's GB/s instead of the log's (required for a log of virtual ranks)");
ABSL_FLAG(double, all_gather_gbps, 0,
          "the all-gather's GB/s per rank instead of the log's (0: the log's; on a log of "
          "virtual ranks, the hop's)");
ABSL_FLAG(std::string, hop_issue_us, "",
          "the host's time to issue a ring step's transfers, in us, instead of the log's: "
          "KV,ONE (a batch of K and V apart, of one message each way) or one number for both "
          "(empty: the log's, none in logs before the fifty-eighth session and in virtual "
          "ranks' logs)");
ABSL_FLAG(double, hop_sm_share, -1,
          "the share of the kernels' rate a hop in flight takes, instead of the log's (-1: the "
          "log's; 0 for copy engines, which take no SMs)");
ABSL_FLAG(std::string, calibration_out, "",
          "also write the rebuilt calibration here (for `ringattn sim --calibration`)");

namespace ringattn::sim {
namespace {

absl::Status Main() {
  const std::string path = absl::GetFlag(FLAGS_log);
  if (path.empty()) return absl::InvalidArgumentError("--log is required");
  ASSIGN_OR_RETURN(RingBenchLog log, LoadRingBenchLog(path));
  const double hop = absl::GetFlag(FLAGS_hop_gbps);
  const double gather = absl::GetFlag(FLAGS_all_gather_gbps);
  if (!(hop >= 0 && hop < 1e5) || !(gather >= 0 && gather < 1e5)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--hop_gbps is ", hop, " and --all_gather_gbps ", gather,
                     "; expected 0 (the log's) or a bandwidth in GB/s below 100000"));
  }
  if (log.virtual_ranks && hop == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, " is a run of virtual ranks sharing one GPU: its hop (", log.hop_gbps,
        " GB/s) was a copy inside the GPU, not a link; give --hop_gbps (and --all_gather_gbps) "
        "from a multi-GPU run"));
  }
  if (hop > 0) log.hop_gbps = hop;
  // 0: the simulator moves the all-gather at the hop's rate.
  if (gather > 0 || log.virtual_ranks) log.all_gather_gbps = gather;
  // --hop_issue_us: (K and V apart, one message each way), or none given.
  std::optional<std::pair<double, double>> issue_us;
  if (const std::string issue = absl::GetFlag(FLAGS_hop_issue_us); !issue.empty()) {
    const std::vector<std::string> parts = absl::StrSplit(issue, ',');
    double us[2] = {0, 0};
    bool ok = parts.size() <= 2;
    for (size_t i = 0; ok && i < parts.size(); ++i) {
      ok = absl::SimpleAtod(parts[i], &us[i]) && us[i] >= 0 && us[i] < 1e6;
    }
    if (!ok) {
      return absl::InvalidArgumentError(
          absl::StrCat("--hop_issue_us is '", issue,
                       "'; expected KV,ONE or one number, microseconds from 0 to 1000000"));
    }
    issue_us = {us[0], parts.size() == 2 ? us[1] : us[0]};
  }
  BenchShape shape = log.shape;
  const int world = absl::GetFlag(FLAGS_world);
  if (world < 0 || world > 4096) {
    return absl::InvalidArgumentError(
        absl::StrCat("--world is ", world, "; expected 0 (the log's) to 4096"));
  }
  if (world > 0) shape.world = world;
  const int64_t kv_heads = absl::GetFlag(FLAGS_kv_heads);
  if (kv_heads < 0 || (kv_heads > 0 && shape.heads % kv_heads != 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--kv_heads is ", kv_heads, "; expected 0 or a divisor of ", shape.heads, " heads"));
  }
  if (kv_heads > 0) shape.kv_heads = kv_heads;
  // The simulation's time grows with the square of the tokens (131072: ~6
  // s); a layout's own divisibility is checked where its schedule is built.
  const int64_t tokens = absl::GetFlag(FLAGS_tokens);
  if (tokens < 0 || tokens > 131072) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--tokens is ", tokens, "; expected 0 (the log's) or 1 to 131072 tokens per rank"));
  }
  if (tokens > 0) shape.tokens = tokens;
  // The links at the shape's hop bytes from the log's hop sweep, unless
  // given (RebuildCalibrationFor).
  ASSIGN_OR_RETURN(Calibration calibration,
                   hop > 0 ? RebuildCalibration(log) : RebuildCalibrationFor(log, shape));
  const bool from_sweep = calibration.link_gbps != log.hop_gbps;
  if (issue_us.has_value()) {
    std::tie(calibration.hop_issue_us_kv, calibration.hop_issue_us) = *issue_us;
  }
  if (const double share = absl::GetFlag(FLAGS_hop_sm_share); share != -1) {
    if (!(share >= 0 && share < 1)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--hop_sm_share is ", share, "; expected -1 (the log's) or 0 <= share < 1"));
    }
    calibration.hop_sm_share = share;
  }
  if (const std::string out = absl::GetFlag(FLAGS_calibration_out); !out.empty()) {
    std::FILE* f = std::fopen(out.c_str(), "w");
    if (f == nullptr) return absl::InternalError(absl::StrCat("cannot write ", out));
    std::fputs(calibration.Serialize().c_str(), f);
    std::fclose(f);
  }
  // Virtual ranks' times are not one GPU per rank's: nothing to set beside.
  const bool same = shape.world == log.shape.world && shape.kv_heads == log.shape.kv_heads &&
                    shape.tokens == log.shape.tokens && !log.virtual_ranks;
  std::printf(
      "prediction (simulator, calibration of %s: %d %s, hop %.1f GB/s%s, all-gather %s, hop "
      "issue %s, hop's share of the kernels %.3f) for W = %d, %lld tokens/rank, h%lld/%lld "
      "d%lld causal\n",
      path.c_str(), log.shape.world, log.virtual_ranks ? "virtual ranks on one GPU" : "GPUs",
      calibration.link_gbps,
      from_sweep
          ? absl::StrFormat(" (the log's hop sweep at %.1f MiB)", HopBytes(shape) / 1048576.0)
                .c_str()
          : "",
      calibration.collective_gbps > 0
          ? absl::StrFormat("%.1f GB/s", calibration.collective_gbps).c_str()
          : "at the hop's rate",
      calibration.hop_issue_us_kv > 0 || calibration.hop_issue_us > 0
          ? absl::StrFormat("%.1f / %.1f us (K and V apart / one message each way)",
                            calibration.hop_issue_us_kv, calibration.hop_issue_us)
                .c_str()
          : "none",
      calibration.hop_sm_share, shape.world, static_cast<long long>(shape.tokens),
      static_cast<long long>(shape.heads), static_cast<long long>(shape.kv_heads),
      static_cast<long long>(shape.head_dim));
  // A log with one causal / full factor (before ring_bench measured one per
  // block side, fifty-sixth session) has it at its own tokens only: fewer
  // tokens' blocks take it as it is, while the factor falls with the side
  // (h32 d128 backward 0.96 at 8192 tokens, 0.56 at 1024).
  if (shape.tokens < log.shape.tokens &&
      (calibration.partial_by_side[0].empty() || calibration.partial_by_side[1].empty())) {
    std::printf(
        "(this log's causal / full factor was measured at its %lld tokens only, not per block "
        "side: blocks of fewer tokens take it as it is, and their rows come out short)\n",
        static_cast<long long>(log.shape.tokens));
  }
  std::printf("%-16s %-8s %12s %12s\n", "row", "pass", "predicted ms", same ? "measured ms" : "");
  for (const BenchRow& row : kBenchRows) {
    for (bool backward : {false, true}) {
      ASSIGN_OR_RETURN(double s, PredictBenchRow(calibration, row, shape, backward));
      std::string measured;
      for (const MeasuredRow& m : log.rows) {
        if (same && m.row == row.name && m.pass == (backward ? "fwd+bwd" : "fwd")) {
          measured = absl::StrCat(m.ms);
        }
      }
      std::printf("%-16s %-8s %12.3f %12s\n", row.name, backward ? "fwd+bwd" : "fwd", 1e3 * s,
                  measured.c_str());
    }
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace ringattn::sim

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const absl::Status s = ringattn::sim::Main();
  if (!s.ok()) {
    std::fprintf(stderr, "ring_predict: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}
