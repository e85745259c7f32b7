#include "core/ring_driver.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace ringattn {
namespace {

// Backend buffer slots used by the driver.
enum Slot : int {
  kKvA = 0,
  kKvB,
  kDkvA,
  kDkvB,
  kGatheredA,
  kGatheredB,
  kGatheredDkv,
  kOwnDkv,
  kDkvIncoming,
};

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// Runs `body`; on error aborts the communicator so peers fail fast.
template <typename Fn>
absl::StatusOr<RingRunStats> Guarded(Communicator& comm, Fn&& body) {
  const Clock::time_point start = Clock::now();
  RingRunStats stats;
  absl::Status status = body(stats);
  if (!status.ok()) {
    comm.Abort(status);
    return status;
  }
  stats.total_seconds = Seconds(start);
  return stats;
}

absl::Status CheckWorld(const Schedule& schedule, const Communicator& comm) {
  if (comm.world() != schedule.layout().world()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the communicator has ", comm.world(), " ranks; the layout needs ",
        schedule.layout().world()));
  }
  return absl::OkStatus();
}

std::vector<int> RingGroup(const Schedule& schedule, int rank) {
  const Layout& layout = schedule.layout();
  std::vector<int> group;
  for (int r = 0; r < layout.ring_size(); ++r) {
    group.push_back(layout.RankOf(layout.RingOf(rank), r));
  }
  return group;
}

struct Heads {
  int64_t begin;
  int64_t end;
};

Heads StepHeads(const Schedule& schedule, int step) {
  if (schedule.pattern() == CommPattern::kRingPass) {
    return {0, schedule.num_kv_heads()};
  }
  const int64_t per_step = schedule.num_kv_heads() / schedule.num_steps();
  return {step * per_step, (step + 1) * per_step};
}

// Starts gathering the K/V of `heads` from the ring into `gathered`.
absl::StatusOr<std::unique_ptr<Communicator::Request>> StartGather(
    const std::vector<int>& group, Communicator& comm, RingBackend& backend,
    Heads heads, absl::Span<uint8_t> gathered) {
  // In place: this rank's shard is packed straight into its part of the
  // gathered buffer (no separate send buffer).
  const int64_t bytes = backend.KvBytes(heads.begin, heads.end);
  const auto me = std::find(group.begin(), group.end(), comm.rank()) - group.begin();
  if (me == static_cast<int64_t>(group.size()) ||
      static_cast<int64_t>(gathered.size()) != bytes * static_cast<int64_t>(group.size())) {
    return absl::InternalError(absl::StrCat("rank ", comm.rank(), ": all-gather buffer of ",
                                            gathered.size(), " bytes for ", group.size(),
                                            " shards of ", bytes));
  }
  const absl::Span<uint8_t> own = gathered.subspan(me * bytes, bytes);
  RETURN_IF_ERROR(backend.PackKv(heads.begin, heads.end, own));
  return comm.StartAllGather(group, own, gathered);
}

}  // namespace

absl::StatusOr<RingRunStats> RunRingForward(const Schedule& schedule,
                                            Communicator& comm,
                                            RingBackend& backend) {
  RETURN_IF_ERROR(CheckWorld(schedule, comm));
  return Guarded(comm, [&](RingRunStats& stats) -> absl::Status {
    const int rank = comm.rank();
    const int steps = schedule.num_steps();
    const int ring_size = schedule.layout().ring_size();
    if (schedule.pattern() == CommPattern::kRingPass) {
      const int64_t bytes = backend.KvBytes(0, schedule.num_kv_heads());
      ASSIGN_OR_RETURN(absl::Span<uint8_t> a, backend.Buffer(kKvA, bytes));
      ASSIGN_OR_RETURN(absl::Span<uint8_t> b, backend.Buffer(kKvB, bytes));
      absl::Span<uint8_t> cur = a, next = b;
      RETURN_IF_ERROR(backend.PackKv(0, schedule.num_kv_heads(), cur));
      for (int step = 0; step < steps; ++step) {
        const Clock::time_point start = Clock::now();
        std::vector<std::unique_ptr<Communicator::Request>> transfers;
        if (step + 1 < ring_size) {
          comm.StartBatch();
          transfers.push_back(comm.Send(schedule.NextRank(rank), kTagKv, cur));
          transfers.push_back(comm.Recv(schedule.PrevRank(rank), kTagKv, next));
          comm.EndBatch();
        }
        ASSIGN_OR_RETURN(std::vector<BlockTask> tasks, schedule.Tasks(rank, step));
        RETURN_IF_ERROR(backend.ForwardStep(tasks, {cur, 1, 0, schedule.num_kv_heads()}));
        stats.compute_seconds.push_back(Seconds(start));
        RETURN_IF_ERROR(WaitAll(transfers));
        std::swap(cur, next);
        stats.step_seconds.push_back(Seconds(start));
      }
      // The last step computed on what is now `next`.
      stats.last_kv = steps % 2 == 1 ? KvBuffer::kA : KvBuffer::kB;
    } else {
      const std::vector<int> group = RingGroup(schedule, rank);
      const int64_t gathered_bytes =
          ring_size * backend.KvBytes(StepHeads(schedule, 0).begin,
                                      StepHeads(schedule, 0).end);
      ASSIGN_OR_RETURN(absl::Span<uint8_t> a, backend.Buffer(kGatheredA, gathered_bytes));
      ASSIGN_OR_RETURN(absl::Span<uint8_t> b, backend.Buffer(kGatheredB, gathered_bytes));
      absl::Span<uint8_t> cur = a, next = b;
      absl::StatusOr<std::unique_ptr<Communicator::Request>> gather =
          StartGather(group, comm, backend, StepHeads(schedule, 0), cur);
      if (!gather.ok()) return gather.status();
      for (int step = 0; step < steps; ++step) {
        const Clock::time_point start = Clock::now();
        RETURN_IF_ERROR((*gather)->Wait());
        const Heads heads = StepHeads(schedule, step);
        std::unique_ptr<Communicator::Request> prefetch;
        if (step + 1 < steps) {
          ASSIGN_OR_RETURN(std::unique_ptr<Communicator::Request> started,
                           StartGather(group, comm, backend, StepHeads(schedule, step + 1), next));
          prefetch = std::move(started);
        }
        const Clock::time_point compute = Clock::now();
        ASSIGN_OR_RETURN(std::vector<BlockTask> tasks, schedule.Tasks(rank, step));
        RETURN_IF_ERROR(backend.ForwardStep(tasks, {cur, ring_size, heads.begin, heads.end}));
        stats.compute_seconds.push_back(Seconds(compute));
        if (prefetch != nullptr) *gather = std::move(prefetch);
        std::swap(cur, next);
        stats.step_seconds.push_back(Seconds(start));
      }
    }
    RETURN_IF_ERROR(backend.FinishForward());
    return comm.Synchronize();
  });
}

namespace {

// The ring-pass backward that ends on the rank's own block: at step t rank
// r works on the block of ring rank r+1+t (the forward's step R-1-t, the
// forward's last block first), K/V and the partial dK/dV sums move to the
// previous rank, and the sum of block j is finished by rank j itself.
absl::Status OwnBlockLastBackward(const Schedule& schedule, Communicator& comm,
                                  RingBackend& backend, const BackwardOptions& options,
                                  RingRunStats& stats) {
  const int rank = comm.rank();
  const int steps = schedule.num_steps();
  const int64_t heads = schedule.num_kv_heads();
  const int64_t kv_bytes = backend.KvBytes(0, heads);
  const int64_t grad_bytes = backend.GradBytes(0, heads);
  absl::Span<uint8_t> kv, kv_next, local[2], incoming;
  const bool held = steps > 1 && options.forward_kv.has_value();
  const int first = held && *options.forward_kv == KvBuffer::kB ? int{kKvB} : int{kKvA};
  const int second = first == kKvA ? int{kKvB} : int{kKvA};
  for (auto [slot, bytes, span] :
       {std::tuple{first, kv_bytes, &kv}, std::tuple{second, kv_bytes, &kv_next},
        std::tuple{int{kDkvA}, grad_bytes, &local[0]}, std::tuple{int{kDkvB}, grad_bytes, &local[1]},
        std::tuple{int{kDkvIncoming}, grad_bytes, &incoming}}) {
    ASSIGN_OR_RETURN(absl::Span<uint8_t> buffer, backend.Buffer(slot, bytes));
    *span = buffer;
  }
  const int prev = schedule.PrevRank(rank), next = schedule.NextRank(rank);
  if (steps == 1) {
    RETURN_IF_ERROR(backend.PackKv(0, heads, kv));
  } else if (!held) {  // fetch the next rank's block (one exposed hop)
    RETURN_IF_ERROR(backend.PackKv(0, heads, kv_next));
    std::vector<std::unique_ptr<Communicator::Request>> fetch;
    comm.StartBatch();
    fetch.push_back(comm.Send(prev, kTagKv, kv_next));
    fetch.push_back(comm.Recv(next, kTagKv, kv));
    comm.EndBatch();
    RETURN_IF_ERROR(WaitAll(fetch));
  }
  for (int t = 0; t < steps; ++t) {
    const Clock::time_point start = Clock::now();
    std::vector<std::unique_ptr<Communicator::Request>> transfers;
    std::unique_ptr<Communicator::Request> partial;
    // One batch, the same order on every rank: the partial sum of this
    // step's block comes in while the previous step's goes out, then K/V
    // (not for the last step: its block is this rank's own).
    comm.StartBatch();
    if (t > 0) {
      partial = comm.Recv(next, kTagDkv, incoming);
      transfers.push_back(comm.Send(prev, kTagDkv, local[(t - 1) % 2]));
    }
    if (t + 2 < steps) {
      transfers.push_back(comm.Send(prev, kTagKv, kv));
      transfers.push_back(comm.Recv(next, kTagKv, kv_next));
    }
    comm.EndBatch();
    absl::Span<uint8_t> mine = local[t % 2];
    ASSIGN_OR_RETURN(std::vector<BlockTask> tasks, schedule.Tasks(rank, steps - 1 - t));
    RETURN_IF_ERROR(backend.Zero(mine));
    RETURN_IF_ERROR(backend.BackwardStep(tasks, {kv, 1, 0, heads}, mine));
    if (partial != nullptr) {
      RETURN_IF_ERROR(partial->Wait());
      RETURN_IF_ERROR(backend.Accumulate(mine, incoming));
    }
    stats.compute_seconds.push_back(Seconds(start));
    RETURN_IF_ERROR(WaitAll(transfers));
    if (t + 2 == steps) {
      // The last block is this rank's own: packed, not received.
      RETURN_IF_ERROR(backend.PackKv(0, heads, kv_next));
    }
    std::swap(kv, kv_next);
    stats.step_seconds.push_back(Seconds(start));
  }
  // Block `rank`'s sum finished here, at home.
  RETURN_IF_ERROR(backend.AddOwnDkv(0, heads, local[(steps - 1) % 2]));
  return comm.Synchronize();
}

}  // namespace

absl::StatusOr<RingRunStats> RunRingBackward(const Schedule& schedule,
                                             Communicator& comm,
                                             RingBackend& backend,
                                             const BackwardOptions& options) {
  RETURN_IF_ERROR(CheckWorld(schedule, comm));
  return Guarded(comm, [&](RingRunStats& stats) -> absl::Status {
    RETURN_IF_ERROR(backend.StartBackward());
    const int rank = comm.rank();
    const int steps = schedule.num_steps();
    const int ring_size = schedule.layout().ring_size();
    if (schedule.pattern() == CommPattern::kRingPass && !options.own_block_first) {
      return OwnBlockLastBackward(schedule, comm, backend, options, stats);
    }
    if (schedule.pattern() == CommPattern::kRingPass) {
      const int64_t heads = schedule.num_kv_heads();
      const int64_t kv_bytes = backend.KvBytes(0, heads);
      const int64_t grad_bytes = backend.GradBytes(0, heads);
      absl::Span<uint8_t> kv, kv_next, local[2], incoming;
      for (auto [slot, bytes, span] :
           {std::tuple{kKvA, kv_bytes, &kv}, std::tuple{kKvB, kv_bytes, &kv_next},
            std::tuple{kDkvA, grad_bytes, &local[0]},
            std::tuple{kDkvB, grad_bytes, &local[1]},
            std::tuple{kDkvIncoming, grad_bytes, &incoming}}) {
        ASSIGN_OR_RETURN(absl::Span<uint8_t> buffer, backend.Buffer(slot, bytes));
        *span = buffer;
      }
      RETURN_IF_ERROR(backend.PackKv(0, heads, kv));
      // Each step's transfers go in one batch, in the same order on every
      // rank: the previous rank's partial sum for this step's source comes
      // in while this rank's finished sum from the previous step goes out
      // (a send issued alone after the compute would wait, on a device
      // communicator's stream, for a receive queued behind it), then the
      // K/V pass.
      for (int step = 0; step < steps; ++step) {
        const Clock::time_point start = Clock::now();
        std::vector<std::unique_ptr<Communicator::Request>> transfers;
        std::unique_ptr<Communicator::Request> partial;
        comm.StartBatch();
        if (step > 0) {
          partial = comm.Recv(schedule.PrevRank(rank), kTagDkv, incoming);
          transfers.push_back(
              comm.Send(schedule.NextRank(rank), kTagDkv, local[(step - 1) % 2]));
        }
        if (step + 1 < ring_size) {
          transfers.push_back(comm.Send(schedule.NextRank(rank), kTagKv, kv));
          transfers.push_back(
              comm.Recv(schedule.PrevRank(rank), kTagKv, kv_next));
        }
        comm.EndBatch();
        absl::Span<uint8_t> mine = local[step % 2];
        ASSIGN_OR_RETURN(std::vector<BlockTask> tasks, schedule.Tasks(rank, step));
        RETURN_IF_ERROR(backend.Zero(mine));
        RETURN_IF_ERROR(backend.BackwardStep(tasks, {kv, 1, 0, heads}, mine));
        if (partial != nullptr) {
          RETURN_IF_ERROR(partial->Wait());
          RETURN_IF_ERROR(backend.Accumulate(mine, incoming));
        }
        stats.compute_seconds.push_back(Seconds(start));
        RETURN_IF_ERROR(WaitAll(transfers));
        std::swap(kv, kv_next);
        stats.step_seconds.push_back(Seconds(start));
      }
      if (ring_size == 1) {
        RETURN_IF_ERROR(backend.AddOwnDkv(0, heads, local[0]));
        return comm.Synchronize();
      }
      // The completed sum of this rank's own K/V comes home.
      std::vector<std::unique_ptr<Communicator::Request>> last;
      comm.StartBatch();
      last.push_back(comm.Recv(schedule.PrevRank(rank), kTagDkv, incoming));
      last.push_back(
          comm.Send(schedule.NextRank(rank), kTagDkv, local[(steps - 1) % 2]));
      comm.EndBatch();
      RETURN_IF_ERROR(WaitAll(last));
      RETURN_IF_ERROR(backend.AddOwnDkv(0, heads, incoming));
      return comm.Synchronize();
    }
    // All-gather: the next head group's K/V is gathered while this one
    // computes, as in the forward.
    const std::vector<int> group = RingGroup(schedule, rank);
    const Heads first = StepHeads(schedule, 0);
    const int64_t gathered_bytes =
        ring_size * backend.KvBytes(first.begin, first.end);
    ASSIGN_OR_RETURN(absl::Span<uint8_t> a, backend.Buffer(kGatheredA, gathered_bytes));
    ASSIGN_OR_RETURN(absl::Span<uint8_t> b, backend.Buffer(kGatheredB, gathered_bytes));
    absl::Span<uint8_t> cur = a, next = b;
    absl::StatusOr<std::unique_ptr<Communicator::Request>> gather =
        StartGather(group, comm, backend, first, cur);
    if (!gather.ok()) return gather.status();
    for (int step = 0; step < steps; ++step) {
      const Clock::time_point start = Clock::now();
      const Heads heads = StepHeads(schedule, step);
      RETURN_IF_ERROR((*gather)->Wait());
      std::unique_ptr<Communicator::Request> prefetch;
      if (step + 1 < steps) {
        ASSIGN_OR_RETURN(std::unique_ptr<Communicator::Request> started,
                         StartGather(group, comm, backend, StepHeads(schedule, step + 1), next));
        prefetch = std::move(started);
      }
      const int64_t shard_grad_bytes = backend.GradBytes(heads.begin, heads.end);
      ASSIGN_OR_RETURN(absl::Span<uint8_t> dkv,
                       backend.Buffer(kGatheredDkv, ring_size * shard_grad_bytes));
      RETURN_IF_ERROR(backend.Zero(dkv));
      const Clock::time_point compute = Clock::now();
      ASSIGN_OR_RETURN(std::vector<BlockTask> tasks, schedule.Tasks(rank, step));
      RETURN_IF_ERROR(backend.BackwardStep(tasks, {cur, ring_size, heads.begin, heads.end}, dkv));
      stats.compute_seconds.push_back(Seconds(compute));
      ASSIGN_OR_RETURN(absl::Span<uint8_t> own, backend.Buffer(kOwnDkv, shard_grad_bytes));
      absl::Status reduced;
      if (backend.grad_dtype() == DType::kFloat64) {
        reduced = comm.ReduceScatterSum(
            group,
            absl::Span<const double>(reinterpret_cast<const double*>(dkv.data()),
                                     dkv.size() / 8),
            absl::Span<double>(reinterpret_cast<double*>(own.data()),
                               own.size() / 8));
      } else {
        reduced = comm.ReduceScatterSum(
            group,
            absl::Span<const float>(reinterpret_cast<const float*>(dkv.data()),
                                    dkv.size() / 4),
            absl::Span<float>(reinterpret_cast<float*>(own.data()),
                              own.size() / 4));
      }
      if (!reduced.ok()) return reduced;
      RETURN_IF_ERROR(backend.AddOwnDkv(heads.begin, heads.end, own));
      if (prefetch != nullptr) *gather = std::move(prefetch);
      std::swap(cur, next);
      stats.step_seconds.push_back(Seconds(start));
    }
    return comm.Synchronize();
  });
}

}  // namespace ringattn
