#include "core/ring_driver.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
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

int SlotOf(KvBuffer b) { return b == KvBuffer::kA ? kKvA : kKvB; }
KvBuffer Other(KvBuffer b) { return b == KvBuffer::kA ? KvBuffer::kB : KvBuffer::kA; }

using Clock = std::chrono::steady_clock;
using Requests = std::vector<std::unique_ptr<Communicator::Request>>;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// How one pass moves K/V (and, backward, dK/dV) around its steps. The step
// engine (RunSteps) calls, for each step t:
//   BeforeCompute(t)  issue the step's transfers (or wait for the gathered
//                     block and start the next gather);
//   the compute on Block(t), with the tasks of schedule step ScheduleStep(t)
//                     and, backward, into the buffer of Grads(t);
//   AfterCompute(t)   add the partial dK/dV sum that arrived meanwhile
//                     (counted as compute; SumArrives(t) says whether one
//                     does);
//   Finish(t)         wait for the step's transfers, move on;
// with Begin() before the first step and End() after the last.
class StepTransport {
 public:
  StepTransport(const Schedule& schedule, Communicator& comm, RingBackend& backend)
      : schedule_(schedule), comm_(comm), backend_(backend) {}
  virtual ~StepTransport() = default;
  virtual absl::Status Begin() = 0;
  virtual absl::Status BeforeCompute(int t) = 0;
  virtual int ScheduleStep(int t) const = 0;
  virtual KvBlock Block(int t) const = 0;
  virtual absl::StatusOr<absl::Span<uint8_t>> Grads(int t) = 0;
  // Whether AfterCompute(t) accumulates an arriving partial sum into
  // Grads(t) (called after BeforeCompute(t)).
  virtual bool SumArrives(int t) const = 0;
  virtual absl::Status AfterCompute(int t) = 0;
  virtual absl::Status Finish(int t) = 0;
  virtual absl::Status End() = 0;
  RingBackend& backend() const { return backend_; }

 protected:
  const Schedule& schedule_;
  Communicator& comm_;
  RingBackend& backend_;
};

// The step engine shared by forward and backward: `compute(tasks, block,
// t)` is the pass's backend call.
template <typename Compute>
absl::Status RunSteps(const Schedule& schedule, int rank, StepTransport& transport,
                      const Compute& compute, RingRunStats& stats) {
  RETURN_IF_ERROR(transport.Begin());
  const bool timed = transport.backend().wall_clock_steps();
  const auto now = [timed] { return timed ? Clock::now() : Clock::time_point(); };
  std::vector<BlockTask> tasks;
  for (int t = 0; t < schedule.num_steps(); ++t) {
    const Clock::time_point start = now();
    RETURN_IF_ERROR(transport.BeforeCompute(t));
    const Clock::time_point compute_start = now();
    RETURN_IF_ERROR(schedule.TasksInto(rank, transport.ScheduleStep(t), &tasks));
    RETURN_IF_ERROR(compute(tasks, transport.Block(t), t));
    RETURN_IF_ERROR(transport.AfterCompute(t));
    if (timed) stats.compute_seconds.push_back(Seconds(compute_start));
    RETURN_IF_ERROR(transport.Finish(t));
    if (timed) stats.step_seconds.push_back(Seconds(start));
  }
  return transport.End();
}

// The order in which a ring pass visits the blocks of its ring.
enum class BlockOrder {
  // Step t computes on the block of ring rank r - t, which travels to the
  // next rank: the forward, and the classic backward (ring-flash-
  // attention's), whose finished dK/dV sums take one more hop home.
  kOwnFirst,
  // The backward's default: step t computes on the block of ring rank
  // r + 1 + t (the forward's last block first), K/V and the partial dK/dV
  // sums travel to the previous rank, and each sum is finished at home.
  kOwnLast,
};

// A ring pass: the whole K/V of the ring's ranks, one block per step,
// double-buffered; with `grads`, the partial dK/dV sums of each block
// travel with it (a rank computes its contribution into a fresh buffer
// while the previous rank's partial sum arrives, adds it, and sends the
// sum on without waiting). A backend that offers its own K/V
// (RingBackend::OwnKv) is not packed: the rank computes on its inputs and
// sends them as two messages, K and V, which the next rank receives into
// the halves of a block buffer; forwarded blocks go as one message.
class RingPassTransport : public StepTransport {
 public:
  RingPassTransport(const Schedule& schedule, Communicator& comm, RingBackend& backend,
                    BlockOrder order, bool grads, std::optional<KvBuffer> held)
      : StepTransport(schedule, comm, backend),
        order_(order),
        grads_(grads),
        held_(schedule.num_steps() > 1 ? held : std::nullopt),
        heads_(schedule.num_kv_heads()),
        steps_(schedule.num_steps()),
        down_(order == BlockOrder::kOwnFirst ? schedule.NextRank(comm.rank())
                                             : schedule.PrevRank(comm.rank())),
        up_(order == BlockOrder::kOwnFirst ? schedule.PrevRank(comm.rank())
                                           : schedule.NextRank(comm.rank())) {}

  // The buffer the last step computed on (valid after End).
  KvBuffer LastKv() const { return Other(cur_); }

  absl::Status Begin() override {
    cur_ = held_.value_or(KvBuffer::kA);
    const int64_t kv_bytes = backend_.KvBytes(0, heads_);
    ASSIGN_OR_RETURN(kv_[0], backend_.Buffer(SlotOf(cur_), kv_bytes));
    ASSIGN_OR_RETURN(kv_[1], backend_.Buffer(SlotOf(Other(cur_)), kv_bytes));
    if (grads_) {
      const int64_t grad_bytes = backend_.GradBytes(0, heads_);
      ASSIGN_OR_RETURN(local_[0], backend_.Buffer(kDkvA, grad_bytes));
      ASSIGN_OR_RETURN(local_[1], backend_.Buffer(kDkvB, grad_bytes));
      ASSIGN_OR_RETURN(incoming_, backend_.Buffer(kDkvIncoming, grad_bytes));
    }
    own_ = backend_.OwnKv();
    if (order_ == BlockOrder::kOwnFirst || steps_ == 1) return PackOwn(kv_[0]);
    if (held_.has_value()) return absl::OkStatus();  // the forward's last block
    // Fetch the next rank's block first (one exposed hop).
    RETURN_IF_ERROR(PackOwn(kv_[1]));
    Requests fetch;
    comm_.StartBatch();
    SendOwn(kv_[1], fetch);
    RecvOwn(kv_[0], fetch);
    comm_.EndBatch();
    return WaitAll(fetch);
  }

  // One batch, the same order on every rank: the partial sum of this
  // step's block comes in while the previous step's goes out (a send
  // issued alone after the compute would wait, on a device communicator's
  // stream, for a receive queued behind it), then the K/V pass.
  absl::Status BeforeCompute(int t) override {
    if (!grads_ && !PassesKv(t)) return absl::OkStatus();  // the forward's last step
    comm_.StartBatch();
    if (grads_ && t > 0) {
      partial_ = comm_.Recv(up_, kTagDkv, incoming_);
      transfers_.push_back(comm_.Send(down_, kTagDkv, local_[(t - 1) % 2]));
    }
    if (PassesKv(t) && IsOwn(t)) {  // step 0 of the forward order: as the peers send theirs
      SendOwn(kv_[0], transfers_);
      RecvOwn(kv_[1], transfers_);
    } else if (PassesKv(t)) {  // a block passed on: one message
      transfers_.push_back(comm_.Send(down_, kTagKv, kv_[0]));
      transfers_.push_back(comm_.Recv(up_, kTagKv, kv_[1]));
    }
    comm_.EndBatch();
    return absl::OkStatus();
  }
  int ScheduleStep(int t) const override {
    return order_ == BlockOrder::kOwnFirst ? t : steps_ - 1 - t;
  }
  KvBlock Block(int t) const override {
    if (IsOwn(t) && own_.has_value()) return {(*own_)[0], 1, 0, heads_, (*own_)[1]};
    return {kv_[0], 1, 0, heads_};
  }
  absl::StatusOr<absl::Span<uint8_t>> Grads(int t) override { return local_[t % 2]; }
  bool SumArrives(int) const override { return partial_ != nullptr; }
  absl::Status AfterCompute(int t) override {
    if (partial_ == nullptr) return absl::OkStatus();
    const std::unique_ptr<Communicator::Request> partial = std::move(partial_);
    RETURN_IF_ERROR(partial->Wait());
    return backend_.Accumulate(local_[t % 2], incoming_);
  }
  absl::Status Finish(int t) override {
    RETURN_IF_ERROR(WaitAll(transfers_));
    transfers_.clear();
    if (order_ == BlockOrder::kOwnLast && t + 2 == steps_) {
      // The last block is this rank's own: packed (or its inputs), not received.
      RETURN_IF_ERROR(PackOwn(kv_[1]));
    }
    std::swap(kv_[0], kv_[1]);
    cur_ = Other(cur_);
    return absl::OkStatus();
  }
  absl::Status End() override {
    if (!grads_) return absl::OkStatus();
    const absl::Span<uint8_t> last = local_[(steps_ - 1) % 2];
    if (order_ == BlockOrder::kOwnLast || schedule_.layout().ring_size() == 1) {
      return backend_.AddOwnDkv(0, heads_, last);  // finished here, at home
    }
    // The completed sum of this rank's own K/V comes home.
    Requests home;
    comm_.StartBatch();
    home.push_back(comm_.Recv(up_, kTagDkv, incoming_));
    home.push_back(comm_.Send(down_, kTagDkv, last));
    comm_.EndBatch();
    RETURN_IF_ERROR(WaitAll(home));
    return backend_.AddOwnDkv(0, heads_, incoming_);
  }

 private:
  // Whether step t sends its block on and receives the next one.
  bool PassesKv(int t) const {
    return order_ == BlockOrder::kOwnFirst ? t + 1 < schedule_.layout().ring_size()
                                           : t + 2 < steps_;
  }
  // Whether step t computes on this rank's own block.
  bool IsOwn(int t) const { return order_ == BlockOrder::kOwnFirst ? t == 0 : t + 1 == steps_; }
  // The own block into `buffer`, unless the backend offers it unpacked.
  absl::Status PackOwn(absl::Span<uint8_t> buffer) {
    return own_.has_value() ? absl::OkStatus() : backend_.PackKv(0, heads_, buffer);
  }
  // The own block to the next rank: K and V from the inputs, or `packed`.
  void SendOwn(absl::Span<const uint8_t> packed, Requests& requests) {
    if (!own_.has_value()) {
      requests.push_back(comm_.Send(down_, kTagKv, packed));
      return;
    }
    for (absl::Span<const uint8_t> part : *own_)
      requests.push_back(comm_.Send(down_, kTagKv, part));
  }
  // The previous rank's own block into `buffer`, as it sends it.
  void RecvOwn(absl::Span<uint8_t> buffer, Requests& requests) {
    if (!own_.has_value()) {
      requests.push_back(comm_.Recv(up_, kTagKv, buffer));
      return;
    }
    const size_t half = buffer.size() / 2;
    requests.push_back(comm_.Recv(up_, kTagKv, buffer.subspan(0, half)));
    requests.push_back(comm_.Recv(up_, kTagKv, buffer.subspan(half)));
  }

  const BlockOrder order_;
  const bool grads_;
  const std::optional<KvBuffer> held_;
  const int64_t heads_;
  const int steps_;
  const int down_, up_;                         // where blocks go, where they come from
  absl::Span<uint8_t> kv_[2];                   // [0]: this step's block, [1]: the next one
  std::optional<RingBackend::OwnKvSpans> own_;  // K, V (OwnKv)
  KvBuffer cur_ = KvBuffer::kA;                 // which buffer kv_[0] is, once stepping
  absl::Span<uint8_t> local_[2], incoming_;
  Requests transfers_;
  std::unique_ptr<Communicator::Request> partial_;
};

// All-gather (llama3): K/V of the next kv-head group is gathered while the
// current group computes; backward, each group's dK/dV are reduce-scattered
// after its compute.
class AllGatherTransport : public StepTransport {
 public:
  AllGatherTransport(const Schedule& schedule, Communicator& comm, RingBackend& backend, bool grads)
      : StepTransport(schedule, comm, backend),
        grads_(grads),
        ring_size_(schedule.layout().ring_size()),
        group_(RingGroup(schedule, comm.rank())) {}

  absl::Status Begin() override {
    const Heads first = StepHeads(0);
    const int64_t bytes = ring_size_ * backend_.KvBytes(first.begin, first.end);
    ASSIGN_OR_RETURN(cur_, backend_.Buffer(kGatheredA, bytes));
    ASSIGN_OR_RETURN(next_, backend_.Buffer(kGatheredB, bytes));
    ASSIGN_OR_RETURN(gather_, StartGather(first, cur_));
    return absl::OkStatus();
  }
  absl::Status BeforeCompute(int t) override {
    RETURN_IF_ERROR(gather_->Wait());
    if (t + 1 < schedule_.num_steps()) {
      ASSIGN_OR_RETURN(prefetch_, StartGather(StepHeads(t + 1), next_));
    }
    return absl::OkStatus();
  }
  int ScheduleStep(int t) const override { return t; }
  KvBlock Block(int t) const override {
    const Heads heads = StepHeads(t);
    return {cur_, ring_size_, heads.begin, heads.end};
  }
  absl::StatusOr<absl::Span<uint8_t>> Grads(int t) override {
    const Heads heads = StepHeads(t);
    ASSIGN_OR_RETURN(
        grads_buffer_,
        backend_.Buffer(kGatheredDkv, ring_size_ * backend_.GradBytes(heads.begin, heads.end)));
    return grads_buffer_;
  }
  bool SumArrives(int) const override { return false; }
  absl::Status AfterCompute(int) override { return absl::OkStatus(); }
  absl::Status Finish(int t) override {
    if (grads_) RETURN_IF_ERROR(ReduceOwnGrads(t));
    if (prefetch_ != nullptr) gather_ = std::move(prefetch_);
    std::swap(cur_, next_);
    return absl::OkStatus();
  }
  absl::Status End() override { return absl::OkStatus(); }

 private:
  struct Heads {
    int64_t begin, end;
  };
  Heads StepHeads(int step) const {
    const int64_t per_step = schedule_.num_kv_heads() / schedule_.num_steps();
    return {step * per_step, (step + 1) * per_step};
  }
  static std::vector<int> RingGroup(const Schedule& schedule, int rank) {
    const Layout& layout = schedule.layout();
    std::vector<int> group;
    for (int r = 0; r < layout.ring_size(); ++r) {
      group.push_back(layout.RankOf(layout.RingOf(rank), r));
    }
    return group;
  }
  // Starts gathering the K/V of `heads` from the ring into `gathered`. In
  // place: this rank's shard is packed straight into its part of the
  // gathered buffer (no separate send buffer).
  absl::StatusOr<std::unique_ptr<Communicator::Request>> StartGather(Heads heads,
                                                                     absl::Span<uint8_t> gathered) {
    const int64_t bytes = backend_.KvBytes(heads.begin, heads.end);
    const auto me = std::find(group_.begin(), group_.end(), comm_.rank()) - group_.begin();
    if (me == static_cast<int64_t>(group_.size()) ||
        static_cast<int64_t>(gathered.size()) != bytes * static_cast<int64_t>(group_.size())) {
      return absl::InternalError(absl::StrCat("rank ", comm_.rank(), ": all-gather buffer of ",
                                              gathered.size(), " bytes for ", group_.size(),
                                              " shards of ", bytes));
    }
    const absl::Span<uint8_t> own = gathered.subspan(me * bytes, bytes);
    RETURN_IF_ERROR(backend_.PackKv(heads.begin, heads.end, own));
    return comm_.StartAllGather(group_, own, gathered);
  }
  // Sums step t's dK/dV over the ring into this rank's own shard.
  absl::Status ReduceOwnGrads(int t) {
    const Heads heads = StepHeads(t);
    const absl::Span<uint8_t> all = grads_buffer_;  // what this step's compute wrote
    // A ring of one: the step's dK/dV is this rank's whole sum already (no
    // reduce-scatter, whose one-rank form is a copy through a buffer).
    if (group_.size() == 1) return backend_.AddOwnDkv(heads.begin, heads.end, all);
    ASSIGN_OR_RETURN(absl::Span<uint8_t> own,
                     backend_.Buffer(kOwnDkv, backend_.GradBytes(heads.begin, heads.end)));
    if (backend_.grad_dtype() == DType::kFloat64) {
      RETURN_IF_ERROR(comm_.ReduceScatterSum(
          group_,
          absl::Span<const double>(reinterpret_cast<const double*>(all.data()), all.size() / 8),
          absl::Span<double>(reinterpret_cast<double*>(own.data()), own.size() / 8)));
    } else {
      RETURN_IF_ERROR(comm_.ReduceScatterSum(
          group_,
          absl::Span<const float>(reinterpret_cast<const float*>(all.data()), all.size() / 4),
          absl::Span<float>(reinterpret_cast<float*>(own.data()), own.size() / 4)));
    }
    return backend_.AddOwnDkv(heads.begin, heads.end, own);
  }

  const bool grads_;
  const int ring_size_;
  const std::vector<int> group_;
  absl::Span<uint8_t> cur_, next_;
  absl::Span<uint8_t> grads_buffer_;  // the step's dK/dV of every shard (Grads)
  std::unique_ptr<Communicator::Request> gather_, prefetch_;
};

// Runs `body`; on error aborts the communicator so peers fail fast.
template <typename Fn>
absl::StatusOr<RingRunStats> Guarded(const Schedule& schedule, Communicator& comm, Fn&& body) {
  if (comm.world() != schedule.layout().world()) {
    return absl::InvalidArgumentError(absl::StrCat("the communicator has ", comm.world(),
                                                   " ranks; the layout needs ",
                                                   schedule.layout().world()));
  }
  const Clock::time_point start = Clock::now();
  RingRunStats stats;
  absl::Status status = body(stats);
  if (status.ok()) {
    const Clock::time_point enqueued = Clock::now();
    status = comm.Synchronize();
    stats.synchronize_seconds = Seconds(enqueued);
  }
  if (!status.ok()) {
    comm.Abort(status);
    return status;
  }
  stats.total_seconds = Seconds(start);
  return stats;
}

}  // namespace

absl::StatusOr<RingRunStats> RunRingForward(const Schedule& schedule, Communicator& comm,
                                            RingBackend& backend) {
  return Guarded(schedule, comm, [&](RingRunStats& stats) -> absl::Status {
    const auto compute = [&](absl::Span<const BlockTask> tasks, const KvBlock& kv, int) {
      return backend.ForwardStep(tasks, kv);
    };
    if (schedule.pattern() == CommPattern::kRingPass) {
      RingPassTransport ring(schedule, comm, backend, BlockOrder::kOwnFirst, false, std::nullopt);
      RETURN_IF_ERROR(RunSteps(schedule, comm.rank(), ring, compute, stats));
      stats.last_kv = ring.LastKv();
    } else {
      AllGatherTransport gather(schedule, comm, backend, false);
      RETURN_IF_ERROR(RunSteps(schedule, comm.rank(), gather, compute, stats));
    }
    return backend.FinishForward();
  });
}

absl::StatusOr<RingRunStats> RunRingBackward(const Schedule& schedule, Communicator& comm,
                                             RingBackend& backend, const BackwardOptions& options) {
  return Guarded(schedule, comm, [&](RingRunStats& stats) -> absl::Status {
    RETURN_IF_ERROR(backend.StartBackward());
    std::unique_ptr<StepTransport> transport;
    if (schedule.pattern() == CommPattern::kRingPass) {
      transport = std::make_unique<RingPassTransport>(
          schedule, comm, backend,
          options.own_block_first ? BlockOrder::kOwnFirst : BlockOrder::kOwnLast, true,
          options.own_block_first ? std::nullopt : options.forward_kv);
    } else {
      transport = std::make_unique<AllGatherTransport>(schedule, comm, backend, true);
    }
    const auto compute = [&](absl::Span<const BlockTask> tasks, const KvBlock& kv, int t) {
      ASSIGN_OR_RETURN(absl::Span<uint8_t> grads, transport->Grads(t));
      return backend.BackwardStep(
          tasks, kv, grads,
          transport->SumArrives(t) ? UnwrittenDkv::kSetByNextAccumulate : UnwrittenDkv::kZeros);
    };
    return RunSteps(schedule, comm.rank(), *transport, compute, stats);
  });
}

}  // namespace ringattn
