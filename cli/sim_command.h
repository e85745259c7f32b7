// `ringattn sim`: simulated runs of the ring schedules (sim/simulator.h),
// the seed-table comparison, and sweeps written as CSV (and a PNG plot).
#ifndef RINGATTN_CLI_SIM_COMMAND_H_
#define RINGATTN_CLI_SIM_COMMAND_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "sim/simulator.h"

namespace ringattn::cli {

// One simulation; writes the Chrome trace to `trace_path` when given.
absl::StatusOr<std::string> RunSim(sim::SimOptions options, const std::string& trace_path);

// ring-flash-attention's 8xH800 (or 8xA100) table next to our simulation of it, using
// only single-GPU rates and link bandwidths of `calibration`: the seed's
// benchmark shapes (bf16, 8192 tokens per rank, 32 query / 8 kv heads,
// head_dim 128, causal; its four varlen document sets), both as the seed
// implements them (block outputs merged in a separate pass) and as ringattn
// does (fused fp32 state).
absl::StatusOr<std::string> SeedTable(const sim::Calibration& calibration);

// The rows of SeedTable: efficiency % as the seed measured it on the
// calibration's GPU (h800, a100; NaN for others), simulated as the seed
// implements it, and simulated as ringattn runs.
struct SeedComparison {
  std::string api;
  bool backward = false;
  double seed = 0, sim_seed_implementation = 0, sim_ringattn = 0;
};
absl::StatusOr<std::vector<SeedComparison>> CompareWithSeed(const sim::Calibration& calibration);

struct SweepSpec {
  std::vector<LayoutKind> layouts;
  std::vector<int> worlds;
  std::vector<int64_t> tokens_per_rank;
  std::vector<double> link_gbps;
  std::vector<int> ring_sizes;  // 0: one ring
  std::string csv_path;
  std::string plot_path;  // PNG via gnuplot; empty: none
};

// Simulates every combination of `spec` on top of `base`, printing a
// progress bar to stderr; writes one CSV row per run. Returns a summary.
absl::StatusOr<std::string> Sweep(const sim::SimOptions& base, const SweepSpec& spec);

}  // namespace ringattn::cli

#endif  // RINGATTN_CLI_SIM_COMMAND_H_
