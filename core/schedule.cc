#include "core/schedule.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace ringattn {

std::string BlockTask::DebugString() const {
  return absl::StrCat("q rows [", q_row, ", ", q_end(), ") at ", q.DebugString(), " x k rows [",
                      k_row, ", ", k_end(), ") at ", k.DebugString(), ", kv heads [", kv_head_begin,
                      ", ", kv_head_end, ")");
}

namespace {

// Appends `slice` to `out`, fused into the last slice where `fuse` and both
// are contiguous and the new one continues it in rows and in positions.
void AppendFused(const RankSlice& slice, bool fuse, std::vector<RankSlice>* out) {
  if (fuse && !out->empty()) {
    RankSlice& prev = out->back();
    if (prev.positions.contiguous() && slice.positions.contiguous() && !prev.positions.empty() &&
        !slice.positions.empty() && prev.row_begin + prev.positions.length == slice.row_begin &&
        prev.positions.last() + 1 == slice.positions.first()) {
      prev.positions = PositionRun::Contiguous(prev.positions.first(),
                                               prev.positions.length + slice.positions.length);
      return;
    }
  }
  out->push_back(slice);
}

}  // namespace

absl::StatusOr<Schedule> Schedule::Create(const Layout& layout, const Mask& mask,
                                          int64_t num_kv_heads, const ScheduleOptions& options) {
  if (mask.batch() != layout.batch() || mask.seqlen_q() != layout.seqlen() ||
      mask.seqlen_k() != layout.seqlen()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the mask is for batch ", mask.batch(), ", seqlen_q ", mask.seqlen_q(), ", seqlen_k ",
        mask.seqlen_k(), "; the layout shards batch ", layout.batch(), " x seqlen ",
        layout.seqlen(), " (ring schedules shard one sequence for q and k)"));
  }
  if (!std::equal(mask.cu_seqlens().begin(), mask.cu_seqlens().end(), layout.cu_seqlens().begin(),
                  layout.cu_seqlens().end())) {
    return absl::InvalidArgumentError("the mask and the layout were given different cu_seqlens");
  }
  if (num_kv_heads < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_kv_heads is ", num_kv_heads, "; expected a positive count"));
  }
  Schedule schedule(layout, mask);
  schedule.num_kv_heads_ = num_kv_heads;
  schedule.kv_heads_per_step_ = num_kv_heads;
  const bool llama3 = layout.kind() == LayoutKind::kLlama3;
  const int64_t per_group = llama3 && layout.spec().kv_heads_per_group != 0
                                ? layout.spec().kv_heads_per_group
                                : num_kv_heads;
  if (num_kv_heads % per_group != 0) {
    return absl::InvalidArgumentError(absl::StrCat("kv_heads_per_group ", per_group,
                                                   " does not divide num_kv_heads ", num_kv_heads,
                                                   " (llama3)"));
  }
  // llama3 with a ring of one gathers nothing: every head at once on the
  // rank's own K/V, as the ring layout computes it. Head groups bound the
  // gathered buffer and a step's dK/dV (so memory is the ring layout's
  // here); on a ring of one they would cut the launches to a fraction of
  // the heads, which fill the SMs worse, and copy K/V into a group buffer:
  // 2048 tokens on one H200, 0.137 ms forward against the ring's 0.088,
  // 2026-12-03.
  if (llama3 && !(layout.ring_size() == 1 && options.llama3_ring_of_one_whole)) {
    schedule.pattern_ = CommPattern::kAllGather;
    schedule.kv_heads_per_step_ = per_group;
    schedule.num_steps_ = static_cast<int>(num_kv_heads / per_group);
  } else {
    schedule.pattern_ = CommPattern::kRingPass;
    // Documents all on their own ranks (the mask has the same cu_seqlens):
    // nothing to pass, one step.
    schedule.num_steps_ = layout.documents_local() ? 1 : layout.ring_size();
  }
  // Fused once here (TasksInto runs every step of every pass). The same
  // rows and positions: the tasks cover the same pairs, in fewer, larger
  // blocks where pieces touch.
  schedule.fused_slices_.resize(layout.ring_size());
  for (int r = 0; r < layout.ring_size(); ++r) {
    for (const RankSlice& slice : layout.RingRankSlices(r)) {
      AppendFused(slice, options.fuse_adjacent_slices, &schedule.fused_slices_[r]);
      if (schedule.pattern_ == CommPattern::kAllGather) {
        // The gathered buffer's pieces were fused before 2026-12-03 too.
        RankSlice gathered = slice;
        gathered.row_begin += r * layout.local_seqlen();
        AppendFused(gathered, true, &schedule.gathered_slices_);
      }
    }
  }
  return schedule;
}

absl::Status Schedule::CheckShape(const AttentionShape& shape) const {
  RETURN_IF_ERROR(ValidateShape(shape));
  if (shape.batch != layout_.batch() || shape.seqlen_q != layout_.seqlen() ||
      shape.seqlen_k != layout_.seqlen() || shape.num_kv_heads != num_kv_heads_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "inputs have ", shape.DebugString(), "; the schedule is for batch ", layout_.batch(),
        ", seqlen ", layout_.seqlen(), ", num_kv_heads ", num_kv_heads_));
  }
  return absl::OkStatus();
}

absl::StatusOr<Schedule> Schedule::Build(const LayoutSpec& layout_spec, const MaskSpec& mask_spec,
                                         const AttentionShape& shape,
                                         const ScheduleOptions& options) {
  RETURN_IF_ERROR(ValidateShape(shape));
  ASSIGN_OR_RETURN(Layout layout,
                   Layout::Create(layout_spec, shape.batch, shape.seqlen_q, mask_spec.cu_seqlens));
  ASSIGN_OR_RETURN(Mask mask, Mask::Create(mask_spec, shape.batch, shape.seqlen_q, shape.seqlen_k));
  return Create(layout, mask, shape.num_kv_heads, options);
}

int Schedule::KvSource(int rank, int step) const {
  if (pattern_ == CommPattern::kAllGather) return rank;
  const int r = layout_.ring_size();
  return layout_.RankOf(layout_.RingOf(rank), ((layout_.RingRank(rank) - step) % r + r) % r);
}

int Schedule::NextRank(int rank) const {
  const int r = layout_.ring_size();
  return layout_.RankOf(layout_.RingOf(rank), (layout_.RingRank(rank) + 1) % r);
}

int Schedule::PrevRank(int rank) const {
  const int r = layout_.ring_size();
  return layout_.RankOf(layout_.RingOf(rank), (layout_.RingRank(rank) + r - 1) % r);
}

absl::StatusOr<std::vector<BlockTask>> Schedule::Tasks(int rank, int step) const {
  std::vector<BlockTask> tasks;
  RETURN_IF_ERROR(TasksInto(rank, step, &tasks));
  return tasks;
}

absl::Status Schedule::TasksInto(int rank, int step, std::vector<BlockTask>* tasks) const {
  tasks->clear();
  RETURN_IF_ERROR(layout_.CheckRank(rank));
  if (step < 0 || step >= num_steps_) {
    return absl::InvalidArgumentError(
        absl::StrCat("step ", step, " is outside [0, num_steps = ", num_steps_, ")"));
  }
  const auto [batch_begin, batch_end] = layout_.BatchRange(rank);
  const int64_t key_limit = mask_.MaxKeyLimit(batch_begin, batch_end);
  const std::vector<RankSlice>& q_slices = fused_slices_[layout_.RingRank(rank)];
  const std::vector<RankSlice>* k_slices = &gathered_slices_;
  int64_t head_begin = 0;
  int64_t head_end = num_kv_heads_;
  if (pattern_ == CommPattern::kRingPass) {
    k_slices = &fused_slices_[layout_.RingRank(KvSource(rank, step))];
  } else {
    head_begin = step * kv_heads_per_step_;
    head_end = head_begin + kv_heads_per_step_;
  }
  // A query slice meets only the key slices holding keys it may see: those
  // of its documents, within the band. Every layout builds a rank's slices
  // in increasing, disjoint position order (checked), so they are found by
  // binary search: O(slices log slices + tasks) per step, where pairing
  // every slice with every other took minutes for thousands of short
  // documents.
  const std::vector<RankSlice>& keys = *k_slices;
  const bool ordered =
      std::none_of(keys.begin(), keys.end(),
                   [](const RankSlice& k) { return k.positions.empty(); }) &&
      std::adjacent_find(keys.begin(), keys.end(), [](const RankSlice& a, const RankSlice& b) {
        return a.positions.last() >= b.positions.first();
      }) == keys.end();
  for (const RankSlice& q : q_slices) {
    if (q.positions.empty()) continue;
    auto first = keys.begin(), last = keys.end();
    if (ordered) {
      const int64_t q0 = q.positions.first(), q1 = q.positions.last();
      int64_t lo = mask_.DocumentBounds(q0).first;
      int64_t hi = std::min(mask_.DocumentBounds(q1).second, key_limit) - 1;
      if (mask_.min_delta() > -Mask::kUnbounded) lo = std::max(lo, q0 + mask_.min_delta());
      if (mask_.max_delta() < Mask::kUnbounded) hi = std::min(hi, q1 + mask_.max_delta());
      first = std::partition_point(keys.begin(), keys.end(),
                                   [&](const RankSlice& k) { return k.positions.last() < lo; });
      last = std::partition_point(first, keys.end(),
                                  [&](const RankSlice& k) { return k.positions.first() <= hi; });
    }
    for (auto k = first; k != last; ++k) {
      AppendTasks(q, *k, key_limit, head_begin, head_end, tasks);
    }
  }
  return absl::OkStatus();
}

void Schedule::AppendTasks(const RankSlice& q, const RankSlice& k, int64_t key_limit,
                           int64_t kv_head_begin, int64_t kv_head_end,
                           std::vector<BlockTask>* out) const {
  // Strided runs (stripe) lie in one document each, and TasksInto pairs a
  // query slice only with the key slices of its documents; contiguous runs
  // are split at document boundaries, which keeps every piece contiguous.
  if (!mask_.has_documents() || !q.positions.contiguous() || !k.positions.contiguous()) {
    AppendTask(q.row_begin, q.positions, k.row_begin, k.positions, key_limit, kv_head_begin,
               kv_head_end, out);
    return;
  }
  int64_t pos = q.positions.first();
  const int64_t q_stop = q.positions.last() + 1;
  while (pos < q_stop) {
    const auto [doc_begin, doc_end] = mask_.DocumentBounds(pos);
    const int64_t q_piece_end = std::min(q_stop, doc_end);
    const int64_t k_first = std::max(k.positions.first(), doc_begin);
    const int64_t k_last = std::min(k.positions.last(), doc_end - 1);
    if (k_first <= k_last) {
      AppendTask(q.row_begin + (pos - q.positions.first()),
                 PositionRun::Contiguous(pos, q_piece_end - pos),
                 k.row_begin + (k_first - k.positions.first()),
                 PositionRun::Contiguous(k_first, k_last - k_first + 1), key_limit, kv_head_begin,
                 kv_head_end, out);
    }
    pos = q_piece_end;
  }
}

void Schedule::AppendTask(int64_t q_row, const PositionRun& q, int64_t k_row, const PositionRun& k,
                          int64_t key_limit, int64_t kv_head_begin, int64_t kv_head_end,
                          std::vector<BlockTask>* out) const {
  if (q.empty() || k.empty()) return;
  const int64_t lo = mask_.min_delta();
  const int64_t hi = mask_.max_delta();
  const int64_t k_max = key_limit - 1;
  if (q.contiguous() && k.contiguous()) {
    // Trim both ranges to rows that have an allowed partner; exact for
    // contiguous runs (a second k trim cannot move: lo <= hi).
    const int64_t k0 = std::max(k.first(), q.first() + lo);
    const int64_t k1 = std::min({k.last(), q.last() + hi, k_max});
    if (k0 > k1) return;
    const int64_t q0 = std::max(q.first(), k0 - hi);
    const int64_t q1 = std::min(q.last(), k1 - lo);
    if (q0 > q1) return;
    out->push_back(BlockTask{q_row + (q0 - q.first()), PositionRun::Contiguous(q0, q1 - q0 + 1),
                             k_row + (k0 - k.first()), PositionRun::Contiguous(k0, k1 - k0 + 1),
                             kv_head_begin, kv_head_end});
    return;
  }
  bool any = false;
  if (q.contiguous() || lo == -Mask::kUnbounded || hi == Mask::kUnbounded) {
    // The union of the query rows' key intervals is one interval here.
    any = k.CountIn(q.first() + lo, std::min(q.last() + hi, k_max)) > 0;
  } else {
    for (int64_t i = 0; i < q.length && !any; ++i) {
      const int64_t pos = q.At(i);
      any = k.CountIn(pos + lo, std::min(pos + hi, k_max)) > 0;
    }
  }
  if (any) {
    out->push_back(BlockTask{q_row, q, k_row, k, kv_head_begin, kv_head_end});
  }
}

namespace {

// Sum over integer q in [a, b] of max(0, c + slope * q), slope in {-1, 0, 1}.
int64_t SumPositiveLinear(int64_t a, int64_t b, int64_t c, int slope) {
  if (a > b) return 0;
  if (slope == 0) return c > 0 ? (b - a + 1) * c : 0;
  if (slope > 0) {
    const int64_t first = std::max(a, 1 - c);  // first q with c + q > 0
    if (first > b) return 0;
    const int64_t n = b - first + 1;
    return n * c + (first + b) * n / 2;
  }
  const int64_t last = std::min(b, c - 1);  // last q with c - q > 0
  if (last < a) return 0;
  const int64_t n = last - a + 1;
  return n * c - (a + last) * n / 2;
}

// Pairs of contiguous q positions [q0, q1] and k positions [k0, k1] with
// q + lo <= k <= q + hi, in O(1): the count per query is piecewise linear
// with breaks where the band's edges cross k0 and k1.
int64_t CountContiguousPairs(int64_t q0, int64_t q1, int64_t k0, int64_t k1, int64_t lo,
                             int64_t hi) {
  if (q0 > q1 || k0 > k1) return 0;
  // upper(q) = q + hi while q <= k1 - hi, else k1;
  // lower(q) = k0 while q <= k0 - lo, else q + lo.
  int64_t cuts[] = {q0 - 1, std::clamp(k1 - hi, q0 - 1, q1), std::clamp(k0 - lo, q0 - 1, q1), q1};
  if (cuts[2] < cuts[1]) std::swap(cuts[1], cuts[2]);
  int64_t total = 0;
  for (int i = 0; i < 3; ++i) {
    const int64_t a = cuts[i] + 1, b = cuts[i + 1];
    if (a > b) continue;
    const bool upper_moves = a <= k1 - hi;  // the whole segment is one side
    const bool lower_moves = a > k0 - lo;
    const int64_t c = (upper_moves ? hi : k1) - (lower_moves ? lo : k0) + 1;
    const int slope = (upper_moves ? 1 : 0) - (lower_moves ? 1 : 0);
    total += SumPositiveLinear(a, b, c, slope);
  }
  return total;
}

// floor(a / b) for b > 0.
int64_t FloorDiv(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// Sum over g in [g0, g1) of clamp(w * g + c, 0, limit), w > 0, in O(1).
int64_t SumClampedLinear(int64_t g0, int64_t g1, int64_t w, int64_t c, int64_t limit) {
  if (g0 >= g1) return 0;
  // Terms are 0 below g_pos, limit from g_full on, linear between.
  const int64_t g_pos = std::clamp(FloorDiv(-c, w) + 1, g0, g1);
  const int64_t g_full = std::clamp(FloorDiv(limit - c + w - 1, w), g_pos, g1);
  // The sum is at most rows x limit < 2^62; its parts may not be.
  const __int128 n = g_full - g_pos;
  const __int128 linear = n * c + __int128{w} * ((g_pos + g_full - 1) * n / 2);
  return static_cast<int64_t>(linear + __int128{g1 - g_full} * limit);
}

// A run as a lattice: groups of `width` consecutive positions, `period`
// apart (a strided run: width 1, period = stride). False for other runs.
bool AsLattice(const PositionRun& run, int64_t* width, int64_t* period) {
  if (run.group >= run.length) {
    *width = run.stride == 1 ? run.length : 1;
    *period = run.stride == 1 ? run.length : run.stride;
    return true;
  }
  if (run.stride != 1) return false;
  *width = run.group;
  *period = run.group_stride;
  return true;
}

// Allowed pairs of query run `q` and key run `k` on one lattice (the same
// width and period: stripes), band lo <= k - q <= hi, keys <= k_max, no
// documents: O(width) instead of O(rows). -1 when the runs differ.
int64_t CountLatticePairs(const PositionRun& q, const PositionRun& k, int64_t lo, int64_t hi,
                          int64_t k_max) {
  int64_t w, period, kw, kperiod;
  if (!AsLattice(q, &w, &period) || !AsLattice(k, &kw, &kperiod) || w != kw || period != kperiod ||
      w > 4096) {
    return -1;
  }
  // #keys <= x for x = q(g, o) + c: clamp(w * g + C, 0, k.length) with C
  // from the offset of q0 + o + c - k0 in the lattice.
  const auto offset = [&](int64_t o, int64_t c) {
    const int64_t t0 = q.base + o + c - k.base;
    const int64_t a = FloorDiv(t0, period);
    const int64_t b = t0 - a * period;
    return a * w + std::min(w, b + 1);
  };
  const int64_t keys_to_max = k.CountAtMost(k_max);
  int64_t pairs = 0;
  for (int64_t o = 0; o < w && o < q.length; ++o) {
    const int64_t n = (q.length - o + w - 1) / w;  // rows at offset o: q(g, o), g < n
    const int64_t q0 = q.base + o;
    // Rows with any key: q + lo <= k_max; of those, q + hi <= k_max use the
    // band's top, the rest stop at k_max.
    if (lo > k_max - q0) continue;
    const int64_t rows = std::min(n, FloorDiv(k_max - lo - q0, period) + 1);
    const int64_t banded =
        hi > k_max - q0 ? 0 : std::min(rows, FloorDiv(k_max - hi - q0, period) + 1);
    pairs +=
        SumClampedLinear(0, banded, w, offset(o, hi), k.length) + (rows - banded) * keys_to_max;
    if (lo > k.base - q0 - (rows - 1) * period) {  // some row's band starts past k0
      pairs -= SumClampedLinear(0, rows, w, offset(o, lo - 1), k.length);
    }
  }
  return pairs;
}

}  // namespace

int64_t CountAllowedPairs(const BlockTask& task, const Mask& mask, int64_t batch_row) {
  const int64_t k_max = mask.KeyLimit(batch_row) - 1;
  if (task.q.length > 0 && task.k.length > 0 && task.q.contiguous() && task.k.contiguous()) {
    const auto [doc_begin, doc_end] = mask.DocumentBounds(task.q.first());
    if (task.q.last() < doc_end) {  // all queries in one document
      return CountContiguousPairs(
          task.q.first(), task.q.last(), std::max(task.k.first(), doc_begin),
          std::min({task.k.last(), k_max, doc_end - 1}), mask.min_delta(), mask.max_delta());
    }
  }
  if (!mask.has_documents() && task.q.length > 0 && task.k.length > 0) {
    const int64_t pairs =
        CountLatticePairs(task.q, task.k, mask.min_delta(), mask.max_delta(), k_max);
    if (pairs >= 0) return pairs;
  }
  int64_t pairs = 0;
  for (int64_t i = 0; i < task.q.length; ++i) {
    const int64_t pos = task.q.At(i);
    const auto [doc_begin, doc_end] = mask.DocumentBounds(pos);
    const int64_t lo = std::max(pos + mask.min_delta(), doc_begin);
    const int64_t hi = std::min({pos + mask.max_delta(), k_max, doc_end - 1});
    pairs += task.k.CountIn(lo, hi);
  }
  return pairs;
}

double CountAllowedPairs(const BlockTask& task, const Mask& mask, int64_t batch_begin,
                         int64_t batch_end) {
  if (batch_begin >= batch_end) return 0;
  if (!mask.has_key_lengths()) {
    return static_cast<double>(CountAllowedPairs(task, mask, batch_begin)) *
           static_cast<double>(batch_end - batch_begin);
  }
  double pairs = 0;
  for (int64_t b = batch_begin; b < batch_end; ++b) {
    pairs += static_cast<double>(CountAllowedPairs(task, mask, b));
  }
  return pairs;
}

double ForwardFlops(const BlockTask& task, const Mask& mask, int64_t batch_begin, int64_t batch_end,
                    int64_t num_heads_per_kv_head, int64_t head_dim) {
  return 4.0 * CountAllowedPairs(task, mask, batch_begin, batch_end) *
         static_cast<double>(num_heads_per_kv_head * (task.kv_head_end - task.kv_head_begin) *
                             head_dim);
}

}  // namespace ringattn
