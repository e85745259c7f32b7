#include "core/plan.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/status_macros.h"

namespace ringattn {

double PlanReport::TotalFlops() const {
  double total = 0;
  for (int r = 0; r < world; ++r) total += RankFlops(r);
  return total;
}

double PlanReport::RankFlops(int rank) const {
  double total = 0;
  for (double f : flops[rank]) total += f;
  return total;
}

double PlanReport::StepMax(int step) const {
  double max = 0;
  for (int r = 0; r < world; ++r) max = std::max(max, flops[r][step]);
  return max;
}

double PlanReport::StepMean(int step) const {
  double sum = 0;
  for (int r = 0; r < world; ++r) sum += flops[r][step];
  return sum / world;
}

double PlanReport::StepImbalance(int step) const {
  const double mean = StepMean(step);
  return mean == 0 ? 1.0 : StepMax(step) / mean;
}

double PlanReport::TotalImbalance() const {
  double max = 0;
  for (int r = 0; r < world; ++r) max = std::max(max, RankFlops(r));
  const double mean = TotalFlops() / world;
  return mean == 0 ? 1.0 : max / mean;
}

double PlanReport::LockstepEfficiency() const {
  double critical = 0;
  for (int t = 0; t < num_steps; ++t) critical += StepMax(t);
  return critical == 0 ? 1.0 : TotalFlops() / world / critical;
}

absl::StatusOr<PlanReport> BuildPlan(const Schedule& schedule, const AttentionShape& shape) {
  RETURN_IF_ERROR(schedule.CheckShape(shape));
  const Layout& layout = schedule.layout();
  PlanReport report;
  report.world = layout.world();
  report.num_steps = schedule.num_steps();
  report.flops.assign(report.world, std::vector<double>(report.num_steps, 0));
  for (int rank = 0; rank < report.world; ++rank) {
    const auto [batch_begin, batch_end] = layout.BatchRange(rank);
    for (int step = 0; step < report.num_steps; ++step) {
      ASSIGN_OR_RETURN(std::vector<BlockTask> tasks, schedule.Tasks(rank, step));
      report.tasks += static_cast<int64_t>(tasks.size());
      for (const BlockTask& task : tasks) {
        report.flops[rank][step] += ForwardFlops(task, schedule.mask(), batch_begin, batch_end,
                                                 shape.group_size(), shape.head_dim);
      }
    }
  }
  return report;
}

std::string FormatPlanSummary(const Schedule& schedule, const PlanReport& report) {
  return absl::StrFormat(
      "%-7s world %-3d steps %-3d tasks %-6d total %10.1f GFLOP  "
      "rank imbalance %.3f  mean step imbalance %.3f  lockstep efficiency "
      "%5.1f%%",
      LayoutKindName(schedule.layout().kind()), report.world, report.num_steps, report.tasks,
      report.TotalFlops() / 1e9, report.TotalImbalance(),
      [&] {
        double sum = 0;
        for (int t = 0; t < report.num_steps; ++t) sum += report.StepImbalance(t);
        return sum / std::max(report.num_steps, 1);
      }(),
      100.0 * report.LockstepEfficiency());
}

std::string FormatPlan(const Schedule& schedule, const AttentionShape& shape,
                       const PlanReport& report) {
  const Layout& layout = schedule.layout();
  std::string out =
      absl::StrCat("layout: ", layout.DebugString(), "\nmask:   ", schedule.mask().DebugString(),
                   "\nshape:  ", shape.DebugString(), "\ncomm:   ",
                   schedule.pattern() == CommPattern::kRingPass
                       ? "K/V pass around the ring, one hop per step"
                       : "K/V all-gathered per kv-head group, one group per step",
                   "\n\npositions held (per ring; ring rank r = rank mod ring_size):\n");
  constexpr size_t kMaxRuns = 6;
  for (int r = 0; r < layout.ring_size(); ++r) {
    const std::vector<RankSlice>& slices = layout.RingRankSlices(r);
    std::vector<std::string> runs;
    for (size_t i = 0; i < std::min(slices.size(), kMaxRuns); ++i) {
      runs.push_back(slices[i].positions.DebugString());
    }
    if (slices.size() > kMaxRuns) {
      runs.push_back(absl::StrCat("... (", slices.size(), " runs)"));
    }
    absl::StrAppendFormat(&out, "  rank %3d: %s\n", r, absl::StrJoin(runs, " "));
  }
  absl::StrAppend(&out, "\nforward GFLOP per rank (rows) and step (columns):\n");
  absl::StrAppend(&out, "  rank ");
  for (int t = 0; t < report.num_steps; ++t) {
    absl::StrAppendFormat(&out, " %9s", absl::StrCat("step ", t));
  }
  absl::StrAppendFormat(&out, " %10s\n", "total");
  for (int r = 0; r < report.world; ++r) {
    absl::StrAppendFormat(&out, "  %4d ", r);
    for (int t = 0; t < report.num_steps; ++t) {
      absl::StrAppendFormat(&out, " %9.2f", report.flops[r][t] / 1e9);
    }
    absl::StrAppendFormat(&out, " %10.2f\n", report.RankFlops(r) / 1e9);
  }
  absl::StrAppend(&out, "  max/mean");
  for (int t = 0; t < report.num_steps; ++t) {
    absl::StrAppendFormat(&out, "%*.3f", t == 0 ? 7 : 10, report.StepImbalance(t));
  }
  absl::StrAppendFormat(&out, " %10.3f\n\n", report.TotalImbalance());
  absl::StrAppend(&out, FormatPlanSummary(schedule, report), "\n");
  return out;
}

}  // namespace ringattn
