// `ringattn plan`: the problem flags only (cli/problem_flags.cc).
#include <vector>

#include "cli/plan_command.h"
#include "cli/subcommands.h"
#include "core/status_macros.h"

namespace ringattn::cli {

absl::StatusOr<std::string> PlanFromFlags() {
  PlanOptions options;
  RETURN_IF_ERROR(ProblemFromFlags(kPlanDefaults, &options.mask, &options.layout, &options.shape));
  ASSIGN_OR_RETURN(options.layouts, ParseLayouts(LayoutFlag(), !options.mask.cu_seqlens.empty()));
  return RunPlan(options);
}

}  // namespace ringattn::cli
