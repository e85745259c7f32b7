// Which parts of a pass's accumulator tasks have written since it was
// reset: a backend marks each launch's (rows x heads) rectangle and learns
// whether it was untouched, so that it can tell the kernel that those rows
// still hold the reset value and need not be read
// (cuda::ForwardBlockArgs::state_fresh). A pass has a few tasks per step:
// a list of rectangles is enough.
#ifndef RINGATTN_CORE_FRESH_REGIONS_H_
#define RINGATTN_CORE_FRESH_REGIONS_H_

#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "core/schedule.h"

namespace ringattn {

// One launch's write to an accumulator, rows [row_begin, row_end) x heads
// [head_begin, head_end): `stores` its values over whatever the cells held
// (every cell, also those no pair reached), or adds to them.
struct RegionWrite {
  int64_t row_begin, row_end, head_begin, head_end;
  bool stores;
};

// Rows [row_begin, row_end) x heads [head_begin, head_end) of an
// accumulator.
struct Region {
  int64_t row_begin, row_end, head_begin, head_end;
  bool operator==(const Region& o) const {
    return row_begin == o.row_begin && row_end == o.row_end && head_begin == o.head_begin &&
           head_end == o.head_end;
  }
};

// The cells of `whole` where writes run in order on an accumulator of
// unknown contents leave it other than they would leave a zeroed one, as
// disjoint rectangles (row bands, top to bottom; in a band, heads left to
// right; equal neighbouring bands merged):
//   added_first: some write adds to the cell before any write stores it
//                (the cell must be zeroed before the writes);
//   unwritten:   no write reaches the cell (it must be zeroed, or set by
//                whoever takes the accumulator next: a backward step's
//                dK/dV rows no task has, which the arriving partial sum
//                sets instead of adding to zeros; fifty-third session).
// Writes outside `whole` count only where they overlap it.
struct UnstoredCells {
  std::vector<Region> added_first, unwritten;
  bool empty() const { return added_first.empty() && unwritten.empty(); }
};
UnstoredCells FindUnstoredCells(absl::Span<const RegionWrite> writes, const RegionWrite& whole);

// The cells (rows x heads) of disjoint `regions`.
int64_t CellCount(absl::Span<const Region> regions);

// What a backward step does to its dK/dV accumulator before its launches
// (`writes`, in order, over `whole`; the CUDA backend's and the simulator's
// one rule): `zero`, the cells zeroed first -- those added to before any
// store, and the unwritten ones unless `sum_follows` (a partial sum is
// accumulated into the buffer next and sets them); `left`, the unwritten
// cells left for that sum. Both empty where the stores cover the buffer
// before any add (a ring of one, zigzag's whole-block steps, without GQA:
// no zeroing at all, fifty-second session).
struct DkvZeroing {
  std::vector<Region> zero, left;
};
DkvZeroing PlanDkvZeroing(absl::Span<const RegionWrite> writes, const RegionWrite& whole,
                          bool sum_follows);

class FreshRegions {
 public:
  // Everything fresh again (the accumulator was reset).
  void Reset() {
    touched_.clear();
    all_touched_ = false;
  }
  // Nothing fresh (the accumulator was written from elsewhere) until the
  // next Reset.
  void TouchAll() { all_touched_ = true; }
  // Whether rows [row_begin, row_end) x heads [head_begin, head_end) were
  // untouched since the last Reset (an empty rectangle is not fresh: it
  // writes nothing); marks them touched.
  bool Touch(int64_t row_begin, int64_t row_end, int64_t head_begin, int64_t head_end);
  // Touch of the state a forward task writes: its query rows x its kv heads
  // (the query heads of those kv heads), the rectangle the CUDA backend
  // marks per launch and the simulator per task.
  bool TouchState(const BlockTask& task) {
    return Touch(task.q_row, task.q_end(), task.kv_head_begin, task.kv_head_end);
  }

 private:
  struct Rectangle {
    int64_t row_begin, row_end, head_begin, head_end;
  };
  std::vector<Rectangle> touched_;
  bool all_touched_ = false;
};

}  // namespace ringattn

#endif  // RINGATTN_CORE_FRESH_REGIONS_H_
