// `ringattn plan`: prints, for a layout, world size, sequence and mask, which
// positions each rank holds and the FLOPs of every rank at every ring step.
#ifndef RINGATTN_CLI_PLAN_COMMAND_H_
#define RINGATTN_CLI_PLAN_COMMAND_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/layout.h"
#include "core/mask.h"
#include "core/shapes.h"

namespace ringattn::cli {

struct PlanOptions {
  std::vector<LayoutKind> layouts;  // several: a comparison, one line each
  LayoutSpec layout;                // kind is taken from `layouts`
  AttentionShape shape;             // seqlen_q == seqlen_k
  MaskSpec mask;
};

// Parses "1,2,3" (empty: no values).
// Errors: InvalidArgument naming `flag` and the bad element.
absl::StatusOr<std::vector<int64_t>> ParseIntList(const std::string& flag, const std::string& text);

// Parses "ring", "zigzag", ..., or "all" (every layout).
absl::StatusOr<std::vector<LayoutKind>> ParseLayouts(const std::string& text);

// Returns the plan report (one layout) or the comparison (several).
// Errors: whatever the layout, mask and schedule reject.
absl::StatusOr<std::string> RunPlan(const PlanOptions& options);

}  // namespace ringattn::cli

#endif  // RINGATTN_CLI_PLAN_COMMAND_H_
