#include "cli/plan_command.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/plan.h"
#include "core/schedule.h"
#include "core/status_macros.h"

namespace ringattn::cli {

absl::StatusOr<std::vector<int64_t>> ParseIntList(const std::string& flag,
                                                  const std::string& text) {
  std::vector<int64_t> values;
  if (text.empty()) return values;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    int64_t value;
    if (!absl::SimpleAtoi(part, &value)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag, ": '", part,
                       "' is not an integer; expected a comma-separated list "
                       "such as 0,512,1024"));
    }
    values.push_back(value);
  }
  return values;
}

absl::StatusOr<std::vector<LayoutKind>> ParseLayouts(const std::string& text) {
  if (text == "all") {
    return std::vector<LayoutKind>{LayoutKind::kRing, LayoutKind::kZigzag, LayoutKind::kStripe,
                                   LayoutKind::kLlama3, LayoutKind::kBalanced};
  }
  absl::StatusOr<LayoutKind> kind = ParseLayoutKind(text);
  if (!kind.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--layout: ", kind.status().message(), ", or all"));
  }
  return std::vector<LayoutKind>{*kind};
}

absl::StatusOr<std::string> RunPlan(const PlanOptions& options) {
  const AttentionShape& shape = options.shape;
  std::string out;
  for (LayoutKind kind : options.layouts) {
    LayoutSpec spec = options.layout;
    spec.kind = kind;
    ASSIGN_OR_RETURN(Schedule schedule, Schedule::Build(spec, options.mask, shape));
    ASSIGN_OR_RETURN(PlanReport report, BuildPlan(schedule, shape));
    if (options.layouts.size() == 1) {
      absl::StrAppend(&out, FormatPlan(schedule, shape, report));
    } else {
      absl::StrAppend(&out, FormatPlanSummary(schedule, report), "\n");
    }
  }
  return out;
}

}  // namespace ringattn::cli
