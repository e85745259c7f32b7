// The compute flags, read by run and sim: the element type and whether the
// backward pass runs.
#include <string>

#include "absl/flags/flag.h"
#include "cli/subcommands.h"

ABSL_FLAG(std::string, dtype, "",
          "float32 | float64 | float16 | bfloat16 (run --random: default "
          "float32; sim: default bfloat16)");
ABSL_FLAG(bool, backward, true, "run --random and sim: also run the backward pass");

namespace ringattn::cli {

absl::StatusOr<DType> DTypeFromFlag(absl::string_view fallback) {
  const std::string flag = absl::GetFlag(FLAGS_dtype);
  return ParseDType(flag.empty() ? fallback : flag);
}
bool DTypeFlagGiven() { return !absl::GetFlag(FLAGS_dtype).empty(); }
bool BackwardFlag() { return absl::GetFlag(FLAGS_backward); }

}  // namespace ringattn::cli
