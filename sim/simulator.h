// The ring simulator: every simulated rank is a fiber running the real
// ring driver (core/ring_driver.h) against a SimBackend, which advances the
// rank's virtual clock by the modelled time of each block task, and a
// SimCommunicator, whose messages carry virtual send and arrival times
// through modelled links. Nothing is computed and no bytes move, so a
// million tokens over 256 ranks simulate in 50 ms, and 8192 ranks (268 M
// block tasks) in 30 s.
//
// Time model (one compute stream and one copy engine per rank):
//   task      FLOPs / calibrated rate(block size, head_dim, fwd|bwd) + launch
//   transfer  starts when the sender issues it and its link is free (one
//             egress link per rank and per kind, so a rank's transfers share
//             it), takes bytes / bandwidth, arrives one latency later;
//             links between nodes use the inter-node bandwidth
//   wait      a receive moves the rank's clock to the arrival time: the
//             exposed communication
// Deterministic: each clock is touched only by its own rank's fiber, and a
// message's times depend only on its sender, so any order of running the
// fibers gives byte-identical results and traces.
#ifndef RINGATTN_SIM_SIMULATOR_H_
#define RINGATTN_SIM_SIMULATOR_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/dtype.h"
#include "core/layout.h"
#include "core/mask.h"
#include "core/shapes.h"
#include "sim/calibration.h"

namespace ringattn::sim {

struct SimOptions {
  LayoutSpec layout;
  MaskSpec mask;
  AttentionShape shape;  // global; seqlen_q == seqlen_k
  DType dtype = DType::kBFloat16;
  bool backward = true;
  Calibration calibration;
  int gpus_per_node = 0;  // 0: all ranks on one node
  // Model ring-flash-attention's implementation instead of ours: every
  // block's output comes back from the kernel and is merged in separate
  // passes through HBM, its slices and index gathers copy, boolean-mask
  // indexing synchronizes the host (the GPU idles host_sync_us) (see
  // SeedPasses in simulator.cc), and its transfers start only when the
  // attention kernels running beside them end: NCCL's kernels, on a
  // normal-priority stream and gated by an event on the compute stream,
  // get SMs only after the next attention kernel, launched at the same
  // moment, has had all of them (bench/stream_starvation.py measures this
  // on one GPU).
  bool seed_implementation = false;
  // Also the caller's results, as `ring_bench --outputs` and the Python
  // entry take them (ours only): the state reset before the forward, O and
  // LSE copied out after it, dQ, dK and dV converted to the input dtype
  // after the backward.
  bool outputs = false;
  bool trace = false;
};

struct RankSummary {
  double forward_end_s = 0;
  double end_s = 0;
  double compute_s = 0;
  double exposed_comm_s = 0;  // time the compute stream waited for data
  int64_t tasks = 0;
  int64_t peak_bytes = 0;
};

struct SimResult {
  double forward_s = 0;    // slowest rank's forward
  double iteration_s = 0;  // slowest rank's end (forward + backward)
  double ideal_s = 0;      // all compute, evenly spread, no waits
  double efficiency = 0;   // ideal / iteration
  std::vector<RankSummary> ranks;
  int64_t tasks = 0;
  std::string trace_json;  // Chrome trace, when asked
};

// Errors: InvalidArgument for an invalid shape, layout, mask or topology;
// Internal if a simulated rank fails.
absl::StatusOr<SimResult> Simulate(const SimOptions& options);

// The summary table: iteration and ideal time, efficiency, exposed
// communication, per-rank idle and imbalance, peak memory per rank.
std::string FormatSummary(const SimOptions& options, const SimResult& result);

// Kernel time of the whole problem on one GPU, without the ring: the
// single-GPU baseline (forward, plus backward if options.backward).
// Errors: InvalidArgument for an invalid shape or mask.
absl::StatusOr<double> KernelSeconds(const SimOptions& options);

}  // namespace ringattn::sim

#endif  // RINGATTN_SIM_SIMULATOR_H_
