#include "core/position_run.h"

#include "absl/strings/str_cat.h"

namespace ringattn {

std::string PositionRun::DebugString() const {
  if (contiguous()) return absl::StrCat("[", base, ", ", base + length, ")");
  if (group >= length) {
    return absl::StrCat(base, " + ", stride, "*i (i < ", length, ")");
  }
  return absl::StrCat("groups of ", group, " from ", base, " every ", group_stride, " (", length,
                      " rows)");
}

}  // namespace ringattn
