#include "cpu_reference/serial_ring.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "cpu_reference/blocked_attention.h"

namespace ringattn::cpu {
namespace {

template <typename T>
using Shards = std::vector<std::vector<T>>;

absl::Status CheckSize(const char* what, size_t size, int64_t expected) {
  if (static_cast<int64_t>(size) != expected) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " has ", size, " elements; expected ", expected));
  }
  return absl::OkStatus();
}

// The K/V buffer `rank` computes on at `step`: the source's shard, or for
// all-gather the ring's shards concatenated in ring-rank order.
template <typename T>
std::vector<T> VisitingBuffer(const Schedule& schedule, const Shards<T>& shards, int rank, int step,
                              int64_t token_elements) {
  const Layout& layout = schedule.layout();
  if (schedule.pattern() == CommPattern::kRingPass) {
    return shards[schedule.KvSource(rank, step)];
  }
  const int64_t local = layout.local_seqlen() * token_elements;
  const int ring_size = layout.ring_size();
  std::vector<T> gathered(layout.local_batch() * ring_size * local);
  for (int64_t b = 0; b < layout.local_batch(); ++b) {
    for (int r = 0; r < ring_size; ++r) {
      const std::vector<T>& shard = shards[layout.RankOf(layout.RingOf(rank), r)];
      std::copy(shard.begin() + b * local, shard.begin() + (b + 1) * local,
                gathered.begin() + (b * ring_size + r) * local);
    }
  }
  return gathered;
}

// Adds a visiting gradient buffer back into the shards it belongs to (the
// ring pass brings dK/dV home; all-gather reduce-scatters them).
template <typename T>
void ReturnGradients(const Schedule& schedule, const std::vector<T>& visiting, int rank, int step,
                     int64_t token_elements, Shards<T>* shards) {
  const Layout& layout = schedule.layout();
  if (schedule.pattern() == CommPattern::kRingPass) {
    std::vector<T>& home = (*shards)[schedule.KvSource(rank, step)];
    for (size_t i = 0; i < home.size(); ++i) home[i] += visiting[i];
    return;
  }
  const int64_t local = layout.local_seqlen() * token_elements;
  const int ring_size = layout.ring_size();
  for (int64_t b = 0; b < layout.local_batch(); ++b) {
    for (int r = 0; r < ring_size; ++r) {
      std::vector<T>& home = (*shards)[layout.RankOf(layout.RingOf(rank), r)];
      const int64_t from = (b * ring_size + r) * local;
      for (int64_t i = 0; i < local; ++i) home[b * local + i] += visiting[from + i];
    }
  }
}

BlockProblem RankProblem(const Schedule& schedule, const AttentionShape& shape, int rank,
                         double softmax_scale) {
  const Layout& layout = schedule.layout();
  BlockProblem p;
  p.batch = layout.local_batch();
  p.batch_offset = layout.BatchRange(rank).first;
  p.q_rows = layout.local_seqlen();
  p.k_rows = schedule.pattern() == CommPattern::kRingPass
                 ? layout.local_seqlen()
                 : layout.local_seqlen() * layout.ring_size();
  p.num_heads = shape.num_heads;
  p.num_kv_heads = shape.num_kv_heads;
  p.head_dim = shape.head_dim;
  p.softmax_scale = softmax_scale;
  p.mask = &schedule.mask();
  return p;
}

}  // namespace

template <typename T>
absl::StatusOr<AttentionOutput<T>> SerialRingForward(const Schedule& schedule,
                                                     const AttentionShape& shape,
                                                     absl::Span<const T> q, absl::Span<const T> k,
                                                     absl::Span<const T> v, double softmax_scale) {
  RETURN_IF_ERROR(schedule.CheckShape(shape));
  const Layout& layout = schedule.layout();
  const int64_t d = shape.head_dim;
  const int64_t q_token = shape.num_heads * d;
  const int64_t kv_token = shape.num_kv_heads * d;
  ASSIGN_OR_RETURN(Shards<T> q_shards, layout.Shard(q, q_token));
  ASSIGN_OR_RETURN(Shards<T> k_shards, layout.Shard(k, kv_token));
  ASSIGN_OR_RETURN(Shards<T> v_shards, layout.Shard(v, kv_token));

  Shards<T> out_shards(layout.world());
  Shards<T> lse_shards(layout.world());
  for (int rank = 0; rank < layout.world(); ++rank) {
    const BlockProblem p = RankProblem(schedule, shape, rank, softmax_scale);
    AttentionOutput<T> state = EmptyOutput<T>(p.batch, p.q_rows, shape.num_heads, d);
    const TensorRef<const T> q_ref{(q_shards)[rank], DenseStrides(p.q_rows, shape.num_heads, d)};
    const TensorStrides kv_strides = DenseStrides(p.k_rows, shape.num_kv_heads, d);
    for (int step = 0; step < schedule.num_steps(); ++step) {
      const std::vector<T> k_visit = VisitingBuffer(schedule, k_shards, rank, step, kv_token);
      const std::vector<T> v_visit = VisitingBuffer(schedule, v_shards, rank, step, kv_token);
      ASSIGN_OR_RETURN(std::vector<BlockTask> tasks, schedule.Tasks(rank, step));
      for (const BlockTask& task : tasks) {
        RETURN_IF_ERROR(
            BlockForward<T>(task, p, q_ref, {k_visit, kv_strides}, {v_visit, kv_strides}, &state));
      }
    }
    out_shards[rank] = std::move(state.out);
    lse_shards[rank] = SwapMiddleAxes<T>(state.lse, p.batch, shape.num_heads, p.q_rows);
  }
  AttentionOutput<T> result;
  ASSIGN_OR_RETURN(std::vector<T> out, layout.Unshard(out_shards, q_token));
  ASSIGN_OR_RETURN(std::vector<T> lse, layout.Unshard(lse_shards, shape.num_heads));
  result.out = std::move(out);
  result.lse = SwapMiddleAxes<T>(lse, shape.batch, shape.seqlen_q, shape.num_heads);
  return result;
}

template <typename T>
absl::StatusOr<AttentionGrads<T>> SerialRingBackward(
    const Schedule& schedule, const AttentionShape& shape, absl::Span<const T> q,
    absl::Span<const T> k, absl::Span<const T> v, absl::Span<const T> out, absl::Span<const T> lse,
    absl::Span<const T> dout, double softmax_scale) {
  RETURN_IF_ERROR(schedule.CheckShape(shape));
  RETURN_IF_ERROR(CheckSize("lse", lse.size(), shape.lse_elements()));
  const Layout& layout = schedule.layout();
  const int64_t d = shape.head_dim;
  const int64_t q_token = shape.num_heads * d;
  const int64_t kv_token = shape.num_kv_heads * d;
  std::vector<absl::StatusOr<Shards<T>>> sharded;
  for (const auto& [x, token] :
       {std::pair{q, q_token}, std::pair{k, kv_token}, std::pair{v, kv_token},
        std::pair{out, q_token}, std::pair{dout, q_token}}) {
    sharded.push_back(layout.Shard(x, token));
    if (!sharded.back().ok()) return sharded.back().status();
  }
  const std::vector<T> lse_tokens =
      SwapMiddleAxes<T>(lse, shape.batch, shape.num_heads, shape.seqlen_q);
  ASSIGN_OR_RETURN(Shards<T> lse_shards,
                   layout.Shard(absl::Span<const T>(lse_tokens), shape.num_heads));
  const Shards<T>& q_shards = *sharded[0];
  const Shards<T>& k_shards = *sharded[1];
  const Shards<T>& v_shards = *sharded[2];
  const Shards<T>& out_shards = *sharded[3];
  const Shards<T>& dout_shards = *sharded[4];

  Shards<T> dq_shards(layout.world());
  Shards<T> dk_shards(layout.world(), std::vector<T>(k_shards[0].size()));
  Shards<T> dv_shards(layout.world(), std::vector<T>(k_shards[0].size()));
  for (int rank = 0; rank < layout.world(); ++rank) {
    const BlockProblem p = RankProblem(schedule, shape, rank, softmax_scale);
    const TensorStrides q_strides = DenseStrides(p.q_rows, shape.num_heads, d);
    const TensorStrides kv_strides = DenseStrides(p.k_rows, shape.num_kv_heads, d);
    const std::vector<T> rank_lse =
        SwapMiddleAxes<T>((lse_shards)[rank], p.batch, p.q_rows, shape.num_heads);
    const std::vector<T> delta = BackwardDelta<T>(out_shards[rank], dout_shards[rank], p.batch,
                                                  p.q_rows, shape.num_heads, d);
    dq_shards[rank].assign(q_shards[rank].size(), T(0));
    for (int step = 0; step < schedule.num_steps(); ++step) {
      const std::vector<T> k_visit = VisitingBuffer(schedule, k_shards, rank, step, kv_token);
      const std::vector<T> v_visit = VisitingBuffer(schedule, v_shards, rank, step, kv_token);
      std::vector<T> dk_visit(k_visit.size(), T(0));
      std::vector<T> dv_visit(k_visit.size(), T(0));
      ASSIGN_OR_RETURN(std::vector<BlockTask> tasks, schedule.Tasks(rank, step));
      for (const BlockTask& task : tasks) {
        RETURN_IF_ERROR(BlockBackward<T>(
            task, p, {q_shards[rank], q_strides}, {k_visit, kv_strides}, {v_visit, kv_strides},
            {dout_shards[rank], q_strides}, rank_lse, delta,
            {absl::MakeSpan(dq_shards[rank]), q_strides}, {absl::MakeSpan(dk_visit), kv_strides},
            {absl::MakeSpan(dv_visit), kv_strides}));
      }
      ReturnGradients(schedule, dk_visit, rank, step, kv_token, &dk_shards);
      ReturnGradients(schedule, dv_visit, rank, step, kv_token, &dv_shards);
    }
  }
  AttentionGrads<T> grads;
  for (const auto& [shards, token, dest] :
       {std::tuple{&dq_shards, q_token, &grads.dq}, std::tuple{&dk_shards, kv_token, &grads.dk},
        std::tuple{&dv_shards, kv_token, &grads.dv}}) {
    ASSIGN_OR_RETURN(std::vector<T> global, layout.Unshard(*shards, token));
    *dest = std::move(global);
  }
  return grads;
}

template absl::StatusOr<AttentionOutput<float>> SerialRingForward<float>(
    const Schedule&, const AttentionShape&, absl::Span<const float>, absl::Span<const float>,
    absl::Span<const float>, double);
template absl::StatusOr<AttentionOutput<double>> SerialRingForward<double>(
    const Schedule&, const AttentionShape&, absl::Span<const double>, absl::Span<const double>,
    absl::Span<const double>, double);
template absl::StatusOr<AttentionGrads<float>> SerialRingBackward<float>(
    const Schedule&, const AttentionShape&, absl::Span<const float>, absl::Span<const float>,
    absl::Span<const float>, absl::Span<const float>, absl::Span<const float>,
    absl::Span<const float>, double);
template absl::StatusOr<AttentionGrads<double>> SerialRingBackward<double>(
    const Schedule&, const AttentionShape&, absl::Span<const double>, absl::Span<const double>,
    absl::Span<const double>, absl::Span<const double>, absl::Span<const double>,
    absl::Span<const double>, double);

}  // namespace ringattn::cpu
