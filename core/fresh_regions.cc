#include "core/fresh_regions.h"

#include <algorithm>

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

bool StoresCoverBeforeAdds(absl::Span<const RegionWrite> writes, const RegionWrite& whole) {
  if (whole.row_begin >= whole.row_end || whole.head_begin >= whole.head_end) return true;
  // The cells between every edge the writes and `whole` name: a few tasks
  // a step, so a grid of a few dozen cells.
  std::vector<int64_t> rows = {whole.row_begin, whole.row_end};
  std::vector<int64_t> heads = {whole.head_begin, whole.head_end};
  for (const RegionWrite& w : writes) {
    rows.insert(rows.end(), {w.row_begin, w.row_end});
    heads.insert(heads.end(), {w.head_begin, w.head_end});
  }
  for (std::vector<int64_t>* edges : {&rows, &heads}) {
    std::sort(edges->begin(), edges->end());
    edges->erase(std::unique(edges->begin(), edges->end()), edges->end());
  }
  const auto index = [](const std::vector<int64_t>& edges, int64_t x) {
    return static_cast<size_t>(std::lower_bound(edges.begin(), edges.end(), x) - edges.begin());
  };
  const size_t columns = heads.size();
  std::vector<char> stored(rows.size() * columns, 0);
  for (const RegionWrite& w : writes) {
    if (w.row_begin >= w.row_end || w.head_begin >= w.head_end) continue;
    for (size_t r = index(rows, w.row_begin); r < index(rows, w.row_end); ++r) {
      for (size_t h = index(heads, w.head_begin); h < index(heads, w.head_end); ++h) {
        if (w.stores) {
          stored[r * columns + h] = 1;
        } else if (!stored[r * columns + h]) {
          return false;  // an add to a cell nothing has stored yet
        }
      }
    }
  }
  for (size_t r = index(rows, whole.row_begin); r < index(rows, whole.row_end); ++r) {
    for (size_t h = index(heads, whole.head_begin); h < index(heads, whole.head_end); ++h) {
      if (!stored[r * columns + h]) return false;
    }
  }
  return true;
}

}  // namespace ringattn
