// bench/ring_bench's printed output as data: the run's shape and hop, its
// calibration line (rebuilt into the simulator calibration ring_bench used),
// and the table's measured rows. The replay test (sim/replay_test.cc) and
// bench/ring_predict read measured runs through it.
#ifndef RINGATTN_SIM_RING_BENCH_LOG_H_
#define RINGATTN_SIM_RING_BENCH_LOG_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "sim/bench_rows.h"
#include "sim/calibration.h"

namespace ringattn::sim {

struct MeasuredRow {
  std::string row, pass;              // "zigzag", "fwd" or "fwd+bwd"
  double ms = 0, printed_sim_ms = 0;  // printed_sim_ms 0: the run did not simulate
};

struct RingBenchLog {
  BenchShape shape;
  double hop_gbps = 0;
  double all_gather_gbps = 0;  // 0: not in the log (ring_bench before 2026-12-01)
  // Ranks sharing GPUs (ring_bench's "virtual ranks" line): the hop and the
  // all-gather were copies inside a GPU, not a link; the kernel rates hold.
  bool virtual_ranks = false;
  // The host's time to issue a hop, K and V apart / one message each way
  // (ring_bench's "hop issue" line, multi-rank runs since the fifty-eighth
  // session; 0: not in the log).
  double hop_issue_us_kv = 0, hop_issue_us = 0;
  std::string calibration_line;
  std::vector<MeasuredRow> rows;
};

// Parses ring_bench's output. Errors: InvalidArgument when the header, the
// calibration line or the table is missing or malformed.
absl::StatusOr<RingBenchLog> ParseRingBenchLog(const std::string& text);
absl::StatusOr<RingBenchLog> LoadRingBenchLog(const std::string& path);

// The calibration ring_bench built for the run (from the table its
// calibration line names; h100's in logs before that): the measured
// full-block curves fitted, the causal / full factors, the measured hop
// and, where logged, the all-gather bandwidth, the hop's issue and the pass
// overhead.
absl::StatusOr<Calibration> RebuildCalibration(const RingBenchLog& log);

// The row of kBenchRows named `name`, or null.
const BenchRow* BenchRowNamed(const std::string& name);

}  // namespace ringattn::sim

#endif  // RINGATTN_SIM_RING_BENCH_LOG_H_
