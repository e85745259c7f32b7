// `ringattn plan`: the problem flags only (cli/problem_flags.cc).
#include <vector>

#include "absl/strings/str_cat.h"
#include "cli/auto_layout.h"
#include "cli/plan_command.h"
#include "cli/subcommands.h"
#include "core/status_macros.h"

namespace ringattn::cli {

absl::StatusOr<std::string> PlanFromFlags() {
  PlanOptions options;
  RETURN_IF_ERROR(ProblemFromFlags(kPlanDefaults, &options.mask, &options.layout, &options.shape));
  if (LayoutFlag() == "auto") {
    ASSIGN_OR_RETURN(LayoutChoice choice, PickLayout(options.layout, options.mask, options.shape,
                                                     DType::kBFloat16, /*backward=*/true));
    options.layouts = {choice.kind};
    ASSIGN_OR_RETURN(std::string plan, RunPlan(options));
    return absl::StrCat(choice.report, plan);
  }
  ASSIGN_OR_RETURN(options.layouts, ParseLayouts(LayoutFlag()));
  return RunPlan(options);
}

}  // namespace ringattn::cli
