#include "sim/simulator.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/communicator.h"
#include "core/ring_driver.h"
#include "core/schedule.h"
#include "core/status_macros.h"
#include "sim/backend.h"
#include "sim/network.h"
#include "sim/report.h"

namespace ringattn::sim {

using internal::CostOf;
using internal::Fibers;
using internal::RankClock;
using internal::SimBackend;
using internal::SimCommunicator;
using internal::SimNetwork;
using internal::TraceJson;

absl::StatusOr<SimResult> Simulate(const SimOptions& o) {
  ASSIGN_OR_RETURN(
      Schedule schedule,
      Schedule::Build(
          o.layout, o.mask, o.shape,
          {.fuse_adjacent_slices = o.seed_implementation ? false : o.calibration.fused_slices != 0,
           .llama3_ring_of_one_whole =
               o.seed_implementation ? false : o.calibration.llama3_ring_of_one_whole != 0}));
  const int world = schedule.layout().world();
  if (o.seed_implementation && schedule.layout().kind() == LayoutKind::kBalanced) {
    return absl::InvalidArgumentError(
        "ring-flash-attention has no balanced layout; model it with ring, zigzag, stripe or "
        "llama3");
  }
  if (o.seed_implementation && o.outputs) {
    return absl::InvalidArgumentError(
        "outputs models ringattn's own results (state reset, results in the input dtype); "
        "expected it without ring-flash-attention's model");
  }
  const int per_node = o.gpus_per_node == 0 ? world : o.gpus_per_node;
  if (per_node < 1 || world % per_node != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("gpus_per_node ", o.gpus_per_node, " does not divide world ", world));
  }
  // Every bandwidth a transfer may use: a calibration rebuilt from a
  // one-GPU ring_bench run has no link (0), which would make every hop take
  // forever and the prediction inf.
  const Calibration& cal = o.calibration;
  if (world > 1 && (!(cal.link_gbps > 0) || !(cal.internode_gbps > 0) ||
                    !(cal.collective_gbps >= 0) || !std::isfinite(cal.link_gbps))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "calibration link_GBps ", cal.link_gbps, ", internode_GBps ", cal.internode_gbps,
        ", collective_GBps ", cal.collective_gbps, ": a ring of ", world,
        " ranks needs positive, finite link bandwidths (a calibration from a one-GPU run has "
        "none: give the link's, e.g. ring_predict --hop_gbps)"));
  }

  // One fiber per simulated rank (sim/fibers.h), all on this thread.
  Fibers fibers(world);
  SimNetwork net(world, &fibers);
  std::vector<absl::Status> statuses(world);
  std::vector<RankSummary> ranks(world);
  absl::Status stalled;
  const auto rank_body = [&](int r) {
    RankClock& clock = net.clock(r);
    clock.trace = o.trace;
    clock.defer_sends = o.seed_implementation;
    SimCommunicator comm(&net, r, world, o.calibration, per_node);
    SimBackend backend(schedule, r, o, &clock);
    backend.ResetState();
    backend.PassOverhead(false);
    absl::StatusOr<RingRunStats> fwd = RunRingForward(schedule, comm, backend);
    if (!fwd.ok()) {
      statuses[r] = fwd.status();
      return;
    }
    backend.WriteOutputs();
    ranks[r].forward_end_s = clock.now;
    if (o.backward) {
      BackwardOptions options;
      options.forward_kv = fwd->last_kv;
      options.own_block_first = o.seed_implementation;  // as ring-flash-attention
      backend.PassOverhead(true);
      absl::StatusOr<RingRunStats> bwd = RunRingBackward(schedule, comm, backend, options);
      if (!bwd.ok()) {
        statuses[r] = bwd.status();
        return;
      }
      backend.WriteGrads();
    }
    ranks[r].end_s = clock.now;
    ranks[r].compute_s = clock.compute;
    ranks[r].exposed_comm_s = clock.exposed;
    ranks[r].tasks = clock.tasks;
    ranks[r].peak_bytes = backend.peak_bytes();
  };
  RETURN_IF_ERROR(fibers.Run(rank_body, [&](absl::Span<const int> parked) {
    if (stalled.ok()) stalled = absl::InternalError(net.Stalled(parked));
    net.Abort();
  }));
  if (!stalled.ok()) return stalled;
  for (const absl::Status& s : statuses) {
    if (!s.ok() && s.code() != absl::StatusCode::kAborted) {
      return absl::InternalError(absl::StrCat("simulation failed: ", s.message()));
    }
  }
  SimResult result;
  result.ranks = ranks;
  double compute = 0;
  for (const RankSummary& r : ranks) {
    result.forward_s = std::max(result.forward_s, r.forward_end_s);
    result.iteration_s = std::max(result.iteration_s, r.end_s);
    compute += r.compute_s;
    result.tasks += r.tasks;
  }
  result.ideal_s = compute / world;
  result.efficiency = result.iteration_s > 0 ? result.ideal_s / result.iteration_s : 1;
  if (o.trace) result.trace_json = TraceJson(net, world);
  return result;
}

absl::StatusOr<double> KernelSeconds(const SimOptions& o) {
  ASSIGN_OR_RETURN(Schedule schedule, Schedule::Build({}, o.mask, o.shape));
  ASSIGN_OR_RETURN(std::vector<BlockTask> tasks, schedule.Tasks(0, 0));
  double seconds = 0;
  for (const BlockTask& task : tasks) {
    const auto batch = schedule.layout().BatchRange(0);
    seconds += CostOf(task, schedule.mask(), batch, o, false).seconds;
    if (o.backward) seconds += CostOf(task, schedule.mask(), batch, o, true).seconds;
  }
  return seconds;
}

}  // namespace ringattn::sim
