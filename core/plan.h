// The work a schedule gives every rank at every step, in FLOPs, and the load
// balance that follows: the numbers that show why zigzag beats the
// contiguous ring under a causal mask.
#ifndef RINGATTN_CORE_PLAN_H_
#define RINGATTN_CORE_PLAN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/schedule.h"
#include "core/shapes.h"

namespace ringattn {

struct PlanReport {
  int world = 0;
  int num_steps = 0;
  int64_t tasks = 0;
  // Forward FLOPs per [rank][step] (backward is 2.5x, with the same shape).
  std::vector<std::vector<double>> flops;

  double TotalFlops() const;
  double RankFlops(int rank) const;
  double StepMax(int step) const;
  double StepMean(int step) const;
  // max / mean of a step's FLOPs over ranks (1 when the step has no work).
  double StepImbalance(int step) const;
  // max / mean of the ranks' total FLOPs.
  double TotalImbalance() const;
  // Ranks wait for each other at every step (the next K/V comes from the
  // neighbour), so a step lasts as long as its busiest rank: efficiency =
  // (total / world) / sum over steps of the step maximum.
  double LockstepEfficiency() const;
};

// Counts the forward FLOPs of every block task of `schedule` for a problem
// of `shape` (all batch rows, all query heads).
// Errors: InvalidArgument if shape does not match the schedule's layout.
absl::StatusOr<PlanReport> BuildPlan(const Schedule& schedule, const AttentionShape& shape);

// A human-readable report: the positions each rank holds, then a rank x
// step table of GFLOPs with per-step imbalance, then the summary.
std::string FormatPlan(const Schedule& schedule, const AttentionShape& shape,
                       const PlanReport& report);

// One summary line: layout, world, total GFLOPs, imbalance, efficiency.
std::string FormatPlanSummary(const Schedule& schedule, const PlanReport& report);

}  // namespace ringattn

#endif  // RINGATTN_CORE_PLAN_H_
