// Ring schedules: for every (rank, step), the block tasks that rank computes.
//
// Ring layouts (ring, zigzag, stripe) pass K/V around each ring: at step t,
// ring rank r holds the K/V of ring rank (r - t) mod R, received from its
// previous neighbour, and sends what it held to the next. llama3 all-gathers
// K/V within the ring instead, one group of kv heads per step; the gathered
// buffer is the ring ranks' local K/V concatenated in ring-rank order, which
// for its contiguous layout is global order.
//
// A block task pairs local Q rows with rows of the visiting K/V buffer. It
// never spans two documents, and pairs that the mask forbids entirely are
// not emitted; for contiguous runs the rows are also trimmed to those that
// have an allowed partner. Pairs inside a task are masked by the Mask.
#ifndef RINGATTN_CORE_SCHEDULE_H_
#define RINGATTN_CORE_SCHEDULE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/layout.h"
#include "core/mask.h"
#include "core/position_run.h"
#include "core/shapes.h"

namespace ringattn {

struct BlockTask {
  int64_t q_row = 0;          // first local Q row
  PositionRun q;              // positions of rows [q_row, q_row + q.length)
  int64_t k_row = 0;          // first row of the visiting K/V buffer
  PositionRun k;              // positions of rows [k_row, k_row + k.length)
  int64_t kv_head_begin = 0;  // kv heads [begin, end); query heads follow
  int64_t kv_head_end = 0;    // by the GQA group

  int64_t q_end() const { return q_row + q.length; }
  int64_t k_end() const { return k_row + k.length; }
  std::string DebugString() const;
};

enum class CommPattern {
  kRingPass,   // K/V (and dK/dV in backward) travel to the next rank
  kAllGather,  // K/V all-gathered per head group; dK/dV reduce-scattered
};

// How a schedule cuts a rank's work into tasks.
struct ScheduleOptions {
  // Fuse a rank's slices that follow on in rows and positions into one run
  // (zigzag at ring size 1, the last rank's middle chunks): fewer, larger
  // tasks over the same pairs. false: one task per pair of the layout's
  // slices, as ringattn cut them before 2026-12-03 (the simulator replays
  // ring_bench logs of that code with it).
  bool fuse_adjacent_slices = true;
  // llama3 with a ring of one computes every head at once on the rank's
  // own K/V, as the ring layout does (one step, a ring pass of one): it
  // gathers nothing, so head groups would only cut its launches and copy
  // K/V. false: one step per head group, as before 2026-12-03's
  // forty-eighth session (the simulator replays logs of that code).
  bool llama3_ring_of_one_whole = true;
};

class Schedule {
 public:
  // Errors: InvalidArgument if the mask's shape does not match the layout
  // (batch, seqlen_q == seqlen_k == layout seqlen, the same cu_seqlens), or
  // kv_heads_per_group does not divide num_kv_heads.
  static absl::StatusOr<Schedule> Create(const Layout& layout, const Mask& mask,
                                         int64_t num_kv_heads, const ScheduleOptions& options = {});

  // Builds the layout (over the mask's cu_seqlens), the mask and the
  // schedule for a global problem of `shape` (seqlen_q == seqlen_k).
  // Errors: whatever ValidateShape, Layout::Create, Mask::Create and
  // Create reject.
  static absl::StatusOr<Schedule> Build(const LayoutSpec& layout, const MaskSpec& mask,
                                        const AttentionShape& shape,
                                        const ScheduleOptions& options = {});

  const Layout& layout() const { return layout_; }
  const Mask& mask() const { return mask_; }
  CommPattern pattern() const { return pattern_; }
  // Ring passes: ring_size steps (one where every document is on one rank,
  // Layout::documents_local); all-gather: one step per kv head group.
  int num_steps() const { return num_steps_; }
  int64_t num_kv_heads() const { return num_kv_heads_; }

  // The rank whose K/V `rank` computes on at `step` (ring passes), or its
  // own rank (all-gather). Precondition: valid rank and step.
  int KvSource(int rank, int step) const;
  // Ring neighbours of `rank` within its ring.
  int NextRank(int rank) const;
  int PrevRank(int rank) const;

  // Returns the block tasks of `rank` at `step`.
  // Errors: InvalidArgument if rank or step is out of range.
  absl::StatusOr<std::vector<BlockTask>> Tasks(int rank, int step) const;
  // The same into `tasks` (cleared first; its capacity is reused: the ring
  // driver's steps allocate nothing).
  absl::Status TasksInto(int rank, int step, std::vector<BlockTask>* tasks) const;

  // Checks that a global problem of `shape` is what this schedule shards:
  // a valid shape with the layout's batch, seqlen_q == seqlen_k == its
  // seqlen, and the schedule's num_kv_heads.
  // Errors: InvalidArgument naming both.
  absl::Status CheckShape(const AttentionShape& shape) const;

 private:
  Schedule(Layout layout, Mask mask) : layout_(std::move(layout)), mask_(std::move(mask)) {}

  // Emits the tasks pairing q slice `q` with k slice `k` (split at document
  // boundaries, trimmed, fully masked pairs dropped).
  void AppendTasks(const RankSlice& q, const RankSlice& k, int64_t key_limit, int64_t kv_head_begin,
                   int64_t kv_head_end, std::vector<BlockTask>* out) const;
  void AppendTask(int64_t q_row, const PositionRun& q, int64_t k_row, const PositionRun& k,
                  int64_t key_limit, int64_t kv_head_begin, int64_t kv_head_end,
                  std::vector<BlockTask>* out) const;

  Layout layout_;
  Mask mask_;
  // Each ring rank's slices with adjacent contiguous pieces fused (rows and
  // positions both follow on): zigzag's two chunks of a document at ring
  // size 1 are one run, so its step is one causal task, not three.
  std::vector<std::vector<RankSlice>> fused_slices_;
  // All ring ranks' fused slices back to back, each rank's rows offset by
  // its place in the all-gathered buffer (all-gather only).
  std::vector<RankSlice> gathered_slices_;
  CommPattern pattern_ = CommPattern::kRingPass;
  int num_steps_ = 1;
  int64_t num_kv_heads_ = 1;
  int64_t kv_heads_per_step_ = 1;
};

// The number of (query row, key row) pairs of `task` that `mask` allows in
// batch row `batch_row` (global). O(task rows).
int64_t CountAllowedPairs(const BlockTask& task, const Mask& mask, int64_t batch_row);

// The allowed pairs of `task` summed over batch rows [batch_begin,
// batch_end): one row's count times the rows unless the mask pads keys per
// row (then O(rows)), so a huge batch costs nothing to plan or simulate.
double CountAllowedPairs(const BlockTask& task, const Mask& mask, int64_t batch_begin,
                         int64_t batch_end);

// Forward FLOPs of `task` over batch rows [batch_begin, batch_end): 4 *
// allowed pairs * query heads * head_dim (two matmuls of 2 FLOPs per
// multiply-add).
double ForwardFlops(const BlockTask& task, const Mask& mask, int64_t batch_begin, int64_t batch_end,
                    int64_t num_heads_per_kv_head, int64_t head_dim);

}  // namespace ringattn

#endif  // RINGATTN_CORE_SCHEDULE_H_
