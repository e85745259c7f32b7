// bench/ring_bench's printed output as data: the run's shape and hop, its
// calibration line (rebuilt into the simulator calibration ring_bench used),
// and the table's measured rows. The replay test (sim/replay_test.cc) and
// bench/ring_predict read measured runs through it.
#ifndef RINGATTN_SIM_RING_BENCH_LOG_H_
#define RINGATTN_SIM_RING_BENCH_LOG_H_

#include <cstdint>
#include <string>
#include <utility>
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
  // ring_bench --hop_sweep: (MiB a rank, GB/s of our hop) at 8 to 256 MiB
  // (empty: not in the log).
  std::vector<std::pair<double, double>> hop_sweep;
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

// The bytes a rank's ring hop carries at `shape` (its K and V, bf16; a
// double: any shape's, without overflow).
double HopBytes(const BenchShape& shape);

// The calibration for predicting `shape` from the log: RebuildCalibration's,
// and where the shape's hop carries other bytes than the log's and the log
// has a hop sweep (not of virtual ranks), the links' rates at those bytes: a hop's time is the
// least-squares line latency + bytes / bandwidth through the sweep's points
// from 32 MiB (below, the host's issue makes the sweep's hops back to back
// host-bound; the simulator charges that apart, Calibration::hop_issue_us),
// link_gbps the line's bytes / time at the shape's hop, collective_gbps the
// log's all-gather rate times the line's rate at the shape's all-gather
// bytes (half a hop's) over at the log's. Errors: RebuildCalibration's.
absl::StatusOr<Calibration> RebuildCalibrationFor(const RingBenchLog& log, const BenchShape& shape);

// The row of kBenchRows named `name`, or null.
const BenchRow* BenchRowNamed(const std::string& name);

}  // namespace ringattn::sim

#endif  // RINGATTN_SIM_RING_BENCH_LOG_H_
