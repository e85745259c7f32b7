#include "core/fresh_regions.h"

namespace ringattn {

bool FreshRegions::Touch(int64_t row_begin, int64_t row_end, int64_t head_begin, int64_t head_end) {
  if (row_begin >= row_end || head_begin >= head_end) return false;
  bool fresh = !all_touched_;
  for (const Rectangle& r : touched_) {
    if (row_begin < r.row_end && r.row_begin < row_end && head_begin < r.head_end &&
        r.head_begin < head_end) {
      fresh = false;
      break;
    }
  }
  touched_.push_back({row_begin, row_end, head_begin, head_end});
  return fresh;
}

}  // namespace ringattn
