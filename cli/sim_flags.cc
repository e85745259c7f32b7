// `ringattn sim`: its flags (calibration, links, model, trace, sweeps), read
// into sim::SimOptions and a SweepSpec.
#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cli/npy.h"
#include "cli/plan_command.h"
#include "cli/sim_command.h"
#include "cli/subcommands.h"
#include "core/status_macros.h"

ABSL_FLAG(std::string, gpu, "h200", "sim: h100 | h200 | h800 | a100 calibration");
ABSL_FLAG(std::string, calibration, "", "sim: a calibration file (overrides --gpu)");
ABSL_FLAG(int, nodes, 1, "sim: nodes the world spreads over");
ABSL_FLAG(int, gpus_per_node, 0, "sim: GPUs per node; 0: world / nodes");
ABSL_FLAG(double, link_GBps, 0, "sim: override the NVLink GB/s per direction");
ABSL_FLAG(double, link_latency_us, -1, "sim: override the link latency");
ABSL_FLAG(double, internode_GBps, 0, "sim: override the inter-node GB/s per GPU");
ABSL_FLAG(double, hop_issue_us, -1,
          "sim: override the host's time to issue a ring step's transfers (both of the "
          "calibration's hop_issue_us and hop_issue_us_kv; NCCL 2.28's non-blocking groups took "
          "50-136 us on an H200, blocking ones 8-19)");
ABSL_FLAG(double, hop_sm_share, -1,
          "sim: override the share of the kernels' rate a ring hop in flight takes (0 <= share "
          "< 1; 0 for copy engines, ~0.2-0.3 for NCCL's send/recv kernel on 2 x H200)");
ABSL_FLAG(std::string, model, "ringattn",
          "sim: whose implementation to model: ringattn (ours), or ring-flash-attention (its "
          "separate merge passes, slice and index copies, host syncs)");
ABSL_FLAG(bool, outputs, false,
          "sim: also the caller's results (the state reset, O/LSE and dQ/dK/dV in the input "
          "dtype), as ring_bench --outputs and the Python entry take them; --model=ringattn only");
ABSL_FLAG(std::string, trace, "", "sim: write a Chrome trace JSON here");
ABSL_FLAG(bool, ring_flash_attention_table, false,
          "sim: compare with ring-flash-attention's published 8xH800 table");
ABSL_FLAG(std::string, sweep_csv, "", "sim: sweep, one CSV row per run");
ABSL_FLAG(std::string, sweep_layouts, "ring,zigzag,stripe,llama3", "sim sweep");
ABSL_FLAG(std::string, sweep_worlds, "2,4,8,16,32", "sim sweep");
ABSL_FLAG(std::string, sweep_tokens_per_rank, "8192", "sim sweep");
ABSL_FLAG(std::string, sweep_link_GBps, "", "sim sweep; empty: the calibration's");
ABSL_FLAG(std::string, sweep_ring_sizes, "0", "sim sweep; 0: one ring");
ABSL_FLAG(std::string, plot, "", "sim sweep: efficiency vs W per layout, PNG");

namespace ringattn::cli {

absl::StatusOr<std::string> SimFromFlags() {
  sim::SimOptions o;
  RETURN_IF_ERROR(ProblemFromFlags(kPlanDefaults, &o.mask, &o.layout, &o.shape));
  const std::string calibration = absl::GetFlag(FLAGS_calibration);
  RETURN_IF_ERROR(ValidateOutputPaths({{"sweep_csv", absl::GetFlag(FLAGS_sweep_csv)},
                                       {"plot", absl::GetFlag(FLAGS_plot)},
                                       {"trace", absl::GetFlag(FLAGS_trace)}}));
  // Overrides: 0 (or -1 for the latency) keeps the calibration's value.
  for (const auto& [name, value, keep] :
       {std::tuple{"link_GBps", absl::GetFlag(FLAGS_link_GBps), 0.0},
        std::tuple{"internode_GBps", absl::GetFlag(FLAGS_internode_GBps), 0.0},
        std::tuple{"link_latency_us", absl::GetFlag(FLAGS_link_latency_us), -1.0},
        std::tuple{"hop_issue_us", absl::GetFlag(FLAGS_hop_issue_us), -1.0}}) {
    if (value != keep && !(std::isfinite(value) && value >= 0)) {
      return absl::InvalidArgumentError(absl::StrCat("--", name, " is ", value,
                                                     "; expected a finite number >= 0 (", keep,
                                                     ": the calibration's)"));
    }
  }
  if (const double share = absl::GetFlag(FLAGS_hop_sm_share);
      share != -1 && !(share >= 0 && share < 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--hop_sm_share is ", share, "; expected 0 <= share < 1 (-1: the calibration's)"));
  }
  if (absl::GetFlag(FLAGS_nodes) < 1 || absl::GetFlag(FLAGS_gpus_per_node) < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--nodes is ", absl::GetFlag(FLAGS_nodes), " and --gpus_per_node ",
        absl::GetFlag(FLAGS_gpus_per_node), "; expected nodes >= 1 and gpus_per_node >= 0"));
  }
  ASSIGN_OR_RETURN(sim::Calibration c, calibration.empty()
                                           ? sim::Calibration::Builtin(absl::GetFlag(FLAGS_gpu))
                                           : sim::Calibration::Load(calibration));
  if (absl::GetFlag(FLAGS_link_GBps) > 0) c.link_gbps = absl::GetFlag(FLAGS_link_GBps);
  if (absl::GetFlag(FLAGS_link_latency_us) >= 0) {
    c.link_latency_us = absl::GetFlag(FLAGS_link_latency_us);
  }
  if (absl::GetFlag(FLAGS_internode_GBps) > 0) {
    c.internode_gbps = absl::GetFlag(FLAGS_internode_GBps);
  }
  if (const double issue = absl::GetFlag(FLAGS_hop_issue_us); issue >= 0) {
    c.hop_issue_us = c.hop_issue_us_kv = issue;
  }
  if (const double share = absl::GetFlag(FLAGS_hop_sm_share); share >= 0) c.hop_sm_share = share;
  o.calibration = c;
  if (absl::GetFlag(FLAGS_ring_flash_attention_table)) return SeedTable(o.calibration);
  ASSIGN_OR_RETURN(o.dtype, DTypeFromFlag("bfloat16"));
  o.backward = BackwardFlag();
  const std::string model = absl::GetFlag(FLAGS_model);
  if (model != "ringattn" && model != "ring-flash-attention") {
    return absl::InvalidArgumentError(
        absl::StrCat("--model is '", model, "'; expected ringattn or ring-flash-attention"));
  }
  o.seed_implementation = model == "ring-flash-attention";
  o.outputs = absl::GetFlag(FLAGS_outputs);
  const int nodes = absl::GetFlag(FLAGS_nodes);
  o.gpus_per_node = absl::GetFlag(FLAGS_gpus_per_node);
  if (o.gpus_per_node == 0 && nodes > 1) {
    if (o.layout.world % nodes != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--nodes ", nodes, " does not divide world ", o.layout.world));
    }
    o.gpus_per_node = o.layout.world / nodes;
  }
  const std::string csv = absl::GetFlag(FLAGS_sweep_csv);
  if (csv.empty()) {
    ASSIGN_OR_RETURN(LayoutKind kind, ParseLayoutKind(LayoutFlag()));
    o.layout.kind = kind;
    return RunSim(o, absl::GetFlag(FLAGS_trace));
  }
  SweepSpec spec;
  spec.csv_path = csv;
  spec.plot_path = absl::GetFlag(FLAGS_plot);
  for (absl::string_view name : absl::StrSplit(absl::GetFlag(FLAGS_sweep_layouts), ',')) {
    ASSIGN_OR_RETURN(LayoutKind kind, ParseLayoutKind(name));
    spec.layouts.push_back(kind);
  }
  for (const auto& [flag, text, out] :
       {std::tuple{"sweep_worlds", absl::GetFlag(FLAGS_sweep_worlds), 0},
        std::tuple{"sweep_tokens_per_rank", absl::GetFlag(FLAGS_sweep_tokens_per_rank), 1},
        std::tuple{"sweep_ring_sizes", absl::GetFlag(FLAGS_sweep_ring_sizes), 2}}) {
    ASSIGN_OR_RETURN(std::vector<int64_t> values, ParseIntList(flag, text));
    for (int64_t v : values) {
      if (out != 1 && (v < 0 || v > kMaxWorld)) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", flag, ": ", v, " is out of range; expected 0 to ", kMaxWorld));
      }
      if (out == 0) spec.worlds.push_back(static_cast<int>(v));
      if (out == 1) spec.tokens_per_rank.push_back(v);
      if (out == 2) spec.ring_sizes.push_back(static_cast<int>(v));
    }
  }
  const std::string links = absl::GetFlag(FLAGS_sweep_link_GBps);
  if (links.empty()) {
    spec.link_gbps = {o.calibration.link_gbps};
  } else {
    for (absl::string_view part : absl::StrSplit(links, ',')) {
      double v;
      // (SimpleAtod takes "nan" and "inf": a NaN link ran a sweep whose
      // transfers cost nothing.)
      if (!absl::SimpleAtod(part, &v) || !std::isfinite(v) || v <= 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("--sweep_link_GBps: '", part, "' is not a positive finite number"));
      }
      spec.link_gbps.push_back(v);
    }
  }
  if (spec.worlds.empty() || spec.tokens_per_rank.empty() || spec.ring_sizes.empty()) {
    return absl::InvalidArgumentError(
        "a sweep needs at least one world, "
        "tokens-per-rank and ring size");
  }
  return Sweep(o, spec);
}

}  // namespace ringattn::cli
