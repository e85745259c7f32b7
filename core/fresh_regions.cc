#include "core/fresh_regions.h"

#include <algorithm>
#include <utility>

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

namespace {

// What the writes did first to a cell of the grid.
enum CellState : char { kUntouched = 0, kStoredFirst, kAddedFirst };

// The rectangles of `grid` cells in `state`: runs of heads per row band,
// a band's runs merged into the previous band's where they are the same.
std::vector<Region> Rectangles(const std::vector<CellState>& grid, CellState state,
                               const std::vector<int64_t>& rows, const std::vector<int64_t>& heads,
                               size_t row_first, size_t row_last, size_t head_first,
                               size_t head_last) {
  const size_t columns = heads.size();
  std::vector<Region> out;
  std::vector<Region> previous;  // the previous band's runs, as extended into out
  std::vector<size_t> previous_index;
  for (size_t r = row_first; r < row_last; ++r) {
    std::vector<Region> runs;
    for (size_t h = head_first; h < head_last;) {
      if (grid[r * columns + h] != state) {
        ++h;
        continue;
      }
      size_t end = h;
      while (end < head_last && grid[r * columns + end] == state) ++end;
      runs.push_back({rows[r], rows[r + 1], heads[h], heads[end]});
      h = end;
    }
    bool same = runs.size() == previous.size() && !runs.empty();
    for (size_t i = 0; same && i < runs.size(); ++i) {
      same = runs[i].head_begin == previous[i].head_begin &&
             runs[i].head_end == previous[i].head_end && previous[i].row_end == runs[i].row_begin;
    }
    if (same) {
      for (size_t i = 0; i < runs.size(); ++i) {
        out[previous_index[i]].row_end = runs[i].row_end;
        previous[i].row_end = runs[i].row_end;
      }
      continue;
    }
    previous = runs;
    previous_index.clear();
    for (const Region& run : runs) {
      previous_index.push_back(out.size());
      out.push_back(run);
    }
  }
  return out;
}

}  // namespace

UnstoredCells FindUnstoredCells(absl::Span<const RegionWrite> writes, const RegionWrite& whole) {
  if (whole.row_begin >= whole.row_end || whole.head_begin >= whole.head_end) return {};
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
  std::vector<CellState> grid(rows.size() * columns, kUntouched);
  for (const RegionWrite& w : writes) {
    if (w.row_begin >= w.row_end || w.head_begin >= w.head_end) continue;
    for (size_t r = index(rows, w.row_begin); r < index(rows, w.row_end); ++r) {
      for (size_t h = index(heads, w.head_begin); h < index(heads, w.head_end); ++h) {
        CellState& cell = grid[r * columns + h];
        if (cell == kUntouched) cell = w.stores ? kStoredFirst : kAddedFirst;
      }
    }
  }
  const size_t r0 = index(rows, whole.row_begin), r1 = index(rows, whole.row_end);
  const size_t h0 = index(heads, whole.head_begin), h1 = index(heads, whole.head_end);
  return {Rectangles(grid, kAddedFirst, rows, heads, r0, r1, h0, h1),
          Rectangles(grid, kUntouched, rows, heads, r0, r1, h0, h1)};
}

int64_t CellCount(absl::Span<const Region> regions) {
  int64_t cells = 0;
  for (const Region& r : regions) cells += (r.row_end - r.row_begin) * (r.head_end - r.head_begin);
  return cells;
}

DkvZeroing PlanDkvZeroing(absl::Span<const RegionWrite> writes, const RegionWrite& whole,
                          bool sum_follows) {
  UnstoredCells cells = FindUnstoredCells(writes, whole);
  DkvZeroing plan{std::move(cells.added_first), {}};
  if (sum_follows) {
    plan.left = std::move(cells.unwritten);
  } else {
    plan.zero.insert(plan.zero.end(), cells.unwritten.begin(), cells.unwritten.end());
  }
  return plan;
}

}  // namespace ringattn
