#include "comm/cuda_communicator.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <tuple>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "comm/cuda_transfer.h"
#include "comm/device_sum.h"
#include "comm/poll_backoff.h"
#include "core/status_macros.h"

namespace ringattn::comm {
namespace {

absl::Status Cuda(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return absl::OkStatus();
  const absl::Status s = absl::InternalError(
      absl::StrCat(what, ": ", cudaGetErrorName(e), " (", cudaGetErrorString(e), ")"));
  if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver) {
    return absl::UnavailableError(s.message());
  }
  return s;
}

// This rank's index in `group`, or -1.
int MemberIndex(absl::Span<const int> group, int rank) {
  auto it = std::find(group.begin(), group.end(), rank);
  return it == group.end() ? -1 : static_cast<int>(it - group.begin());
}

class TransferWait : public Communicator::Request {
 public:
  TransferWait(CudaCommunicator* owner, std::shared_ptr<Transfer> transfer, bool host)
      : owner_(owner), transfer_(std::move(transfer)), host_(host) {}
  absl::Status Wait() override;

 private:
  CudaCommunicator* owner_;
  std::shared_ptr<Transfer> transfer_;
  bool host_;
};

constexpr absl::Duration kPollSlice = absl::Milliseconds(1);

}  // namespace

void AbortFlag::Set(const absl::Status& reason) {
  MutexLock lock(&mu_);
  if (!set_.load()) {
    reason_ = reason;
    set_.store(true, std::memory_order_release);
  }
}

absl::Status AbortFlag::reason() const {
  MutexLock lock(&mu_);
  return reason_;
}

CudaCommunicator::CudaCommunicator(int rank, int world, CudaPlacement placement,
                                   absl::Duration timeout, std::shared_ptr<AbortFlag> abort)
    : rank_(rank),
      world_(world),
      placement_(placement),
      timeout_(timeout),
      abort_(std::move(abort)) {}

CudaCommunicator::~CudaCommunicator() {
  StopWatchdog();
  cudaSetDevice(placement_.device);
  {
    MutexLock lock(&events_mu_);
    for (cudaEvent_t e : spare_events_) cudaEventDestroy(e);
    spare_events_.clear();
  }
  if (comm_stream_ != nullptr) cudaStreamDestroy(comm_stream_);
}

absl::Status CudaCommunicator::InitStreams() {
  if (placement_.stream == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "rank ", rank_, " has no compute stream; expected the stream its backend runs on"));
  }
  RETURN_IF_ERROR(Cuda(cudaSetDevice(placement_.device), "selecting the device"));
  // The highest priority: a transfer's kernels (NCCL's, the reduce-scatter
  // sum) get SMs as soon as they may run, not after the attention kernel
  // launched beside them has had them all (bench/stream_starvation.py).
  int least = 0, greatest = 0;
  RETURN_IF_ERROR(
      Cuda(cudaDeviceGetStreamPriorityRange(&least, &greatest), "reading the stream priorities"));
  return Cuda(cudaStreamCreateWithPriority(&comm_stream_, cudaStreamNonBlocking, greatest),
              "creating the communication stream");
}

bool CudaCommunicator::IsHostMemory(const void* p) {
  cudaPointerAttributes a{};
  if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
    cudaGetLastError();  // clear: unknown pointers are host memory
    return true;
  }
  return a.type == cudaMemoryTypeUnregistered || a.type == cudaMemoryTypeHost;
}

cudaEvent_t CudaCommunicator::Record(cudaStream_t stream, absl::Status* status) {
  cudaEvent_t e = nullptr;
  {
    MutexLock lock(&events_mu_);
    if (!spare_events_.empty()) {
      e = spare_events_.back();
      spare_events_.pop_back();
    }
  }
  if (e == nullptr) {
    *status = Cuda(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "creating an event");
    if (!status->ok()) return nullptr;
  }
  *status = Cuda(cudaEventRecord(e, stream), "recording an event");
  if (!status->ok()) {
    cudaEventDestroy(e);
    return nullptr;
  }
  return e;
}

void CudaCommunicator::Recycle(cudaEvent_t event) {
  if (event == nullptr) return;
  {
    MutexLock lock(&events_mu_);
    if (spare_events_.size() < kSpareEvents) {
      spare_events_.push_back(event);
      return;
    }
  }
  cudaEventDestroy(event);
}

absl::Status CudaCommunicator::OrderAfterCompute() {
  RETURN_IF_ERROR(Cuda(cudaSetDevice(placement_.device), "selecting the device"));
  absl::Status s;
  cudaEvent_t e = Record(placement_.stream, &s);
  if (!s.ok()) return s;
  s = Cuda(cudaStreamWaitEvent(comm_stream_, e, 0), "ordering transfers after compute");
  Recycle(e);
  return s;
}

absl::Status CudaCommunicator::ComputeWaits(cudaEvent_t event) {
  return Cuda(cudaStreamWaitEvent(placement_.stream, event, 0),
              "ordering compute after a transfer");
}

absl::Status CudaCommunicator::AbortedStatus() const {
  const absl::Status reason = abort_->reason();
  return absl::AbortedError(
      absl::StrCat("rank ", rank_, ": the ring was aborted: ", reason.message()));
}

absl::Status CudaCommunicator::PollEvent(cudaEvent_t event, const char* what) {
  const absl::Time deadline = absl::Now() + timeout_;
  const PollBackoff backoff;
  while (true) {
    const cudaError_t q = cudaEventQuery(event);
    if (q == cudaSuccess) return absl::OkStatus();
    if (q != cudaErrorNotReady) return Cuda(q, what);
    if (abort_->set()) {
      Abort(abort_->reason());
      return AbortedStatus();
    }
    if (absl::Status s = TransportError(); !s.ok()) {
      Abort(s);
      return s;
    }
    if (absl::Now() > deadline) {
      const absl::Status s = absl::DeadlineExceededError(
          absl::StrCat("rank ", rank_, ": ", what, " did not complete within ",
                       absl::FormatDuration(timeout_), " (a peer stopped or is stuck)"));
      Abort(s);
      return s;
    }
    backoff.Pause();
  }
}

void CudaCommunicator::Abort(const absl::Status& reason) {
  abort_->Set(
      absl::Status(reason.code(), absl::StrCat("rank ", rank_, " aborted: ", reason.message())));
  if (!transport_aborted_.exchange(true)) AbortTransport();
}

void CudaCommunicator::SetDeferredSynchronize(bool deferred) { deferred_ = deferred; }

absl::Status CudaCommunicator::Synchronize() {
  RETURN_IF_ERROR(Cuda(cudaSetDevice(placement_.device), "selecting the device"));
  return deferred_ ? DeferPass() : WaitForStreams();
}

absl::Status CudaCommunicator::WaitForPasses() {
  RETURN_IF_ERROR(Cuda(cudaSetDevice(placement_.device), "selecting the device"));
  RETURN_IF_ERROR(WaitForStreams());
  // A deferred pass that failed drained its streams when the watchdog aborted.
  if (abort_->set()) return AbortedStatus();
  return absl::OkStatus();
}

absl::Status CudaCommunicator::WaitForStreams() {
  for (cudaStream_t stream : {placement_.stream, comm_stream_}) {
    absl::Status s;
    cudaEvent_t e = Record(stream, &s);
    if (!s.ok()) return s;
    s = PollEvent(e, "the rank's work");
    if (s.ok()) {
      Recycle(e);
    } else {
      cudaEventDestroy(e);  // may still be pending (a stuck or failed transfer)
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status CudaCommunicator::DeferPass() {
  // An earlier pass's failure (the watchdog aborted) or a peer's abort.
  if (abort_->set()) {
    Abort(abort_->reason());
    return AbortedStatus();
  }
  absl::Status s;
  PendingPass pass{Record(placement_.stream, &s), nullptr, absl::Now() + timeout_};
  if (s.ok()) pass.comm = Record(comm_stream_, &s);
  if (!s.ok()) {
    Recycle(pass.compute);
    return s;
  }
  MutexLock lock(&watch_mu_);
  pending_.push_back(pass);
  if (!watchdog_.joinable()) watchdog_ = std::thread([this] { WatchPasses(); });
  watch_cv_.NotifyAll();
  // At most kPassesAhead passes outstanding. The host polls the oldest
  // itself, as a pass's final wait does (the watchdog's round is kPollSlice,
  // long beside a small pass, whose GPU would idle for the rest of it); the
  // watchdog's deadline bounds this wait (it aborts and empties the list).
  const PollBackoff backoff;
  while (pending_.size() > kPassesAhead) {
    if (OldestPassStateLocked() == cudaSuccess) {
      PopOldestLocked();
      continue;
    }
    watch_mu_.Unlock();
    backoff.Pause();
    watch_mu_.Lock();
  }
  if (abort_->set()) return AbortedStatus();
  return absl::OkStatus();
}

cudaError_t CudaCommunicator::OldestPassStateLocked() const {
  const PendingPass& oldest = pending_.front();
  const cudaError_t q = cudaEventQuery(oldest.comm);
  return q == cudaSuccess ? cudaEventQuery(oldest.compute) : q;
}

void CudaCommunicator::PopOldestLocked() {
  Release(pending_.front());  // both events completed: spares
  pending_.pop_front();
  watch_cv_.NotifyAll();
}

void CudaCommunicator::Release(const PendingPass& pass) {
  Recycle(pass.compute);
  Recycle(pass.comm);
}

void CudaCommunicator::DropPendingLocked() {
  // After an abort the events may never complete: destroyed (a destroyed
  // event's resources are released once its work completes), not kept.
  for (const PendingPass& pass : pending_) {
    cudaEventDestroy(pass.compute);
    cudaEventDestroy(pass.comm);
  }
  pending_.clear();
}

void CudaCommunicator::WatchPasses() {
  cudaSetDevice(placement_.device);
  MutexLock lock(&watch_mu_);
  while (!stop_watching_) {
    if (pending_.empty()) {
      watch_cv_.WaitWithTimeout(&watch_mu_, absl::Seconds(1), [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return stop_watching_ || !pending_.empty();
      });
      continue;
    }
    const cudaError_t q = OldestPassStateLocked();
    if (q == cudaSuccess) {
      PopOldestLocked();
      continue;
    }
    absl::Status failure;
    if (q != cudaErrorNotReady) {
      failure = Cuda(q, "a deferred pass");
    } else if (abort_->set()) {
      failure = abort_->reason();
    } else if (absl::Status t = TransportError(); !t.ok()) {
      failure = t;
    } else if (absl::Now() > pending_.front().deadline) {
      failure = absl::DeadlineExceededError(absl::StrCat(
          "rank ", rank_, ": a pass did not complete within ", absl::FormatDuration(timeout_),
          " of its end on the host (a peer stopped or is stuck)"));
    }
    if (!failure.ok()) {
      DropPendingLocked();
      watch_cv_.NotifyAll();
      Abort(failure);  // ends the stuck transfers; the next call fails
      continue;
    }
    watch_cv_.WaitWithTimeout(&watch_mu_, kPollSlice,
                              [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return stop_watching_; });
  }
  DropPendingLocked();
}

void CudaCommunicator::StopWatchdog() {
  {
    MutexLock lock(&watch_mu_);
    stop_watching_ = true;
    watch_cv_.NotifyAll();
  }
  if (watchdog_.joinable()) watchdog_.join();
}

std::unique_ptr<Communicator::Request> CudaCommunicator::TransferRequest(
    std::shared_ptr<Transfer> transfer, bool host_buffer) {
  return std::make_unique<TransferWait>(this, std::move(transfer), host_buffer);
}

absl::Status TransferWait::Wait() { return owner_->WaitTransferForRequest(*transfer_, host_); }

absl::Status CudaCommunicator::WaitTransferForRequest(Transfer& transfer, bool host) {
  const absl::Time deadline = absl::Now() + timeout_;
  while (!transfer.WaitIssued(kPollSlice)) {
    if (abort_->set()) {
      Abort(abort_->reason());
      return AbortedStatus();
    }
    if (absl::Now() > deadline) {
      const absl::Status s = absl::DeadlineExceededError(
          absl::StrCat("rank ", rank_, ": a peer did not post its side of a transfer within ",
                       absl::FormatDuration(timeout_)));
      Abort(s);
      return s;
    }
  }
  RETURN_IF_ERROR(transfer.error());
  std::shared_ptr<SharedEvent> done = transfer.done();
  RETURN_IF_ERROR(Cuda(cudaSetDevice(placement_.device), "selecting the device"));
  return host ? PollEvent(done->get(), "a transfer") : ComputeWaits(done->get());
}

std::unique_ptr<Communicator::Request> CudaCommunicator::StartAllGather(
    absl::Span<const int> group, absl::Span<const uint8_t> send, absl::Span<uint8_t> recv) {
  if (IsHostMemory(send.data()) || IsHostMemory(recv.data())) {
    return Communicator::StartAllGather(group, send, recv);
  }
  const int me = MemberIndex(group, rank_);
  const size_t n = send.size();
  if (me < 0 || recv.size() != n * group.size()) {
    return DoneRequest(absl::InvalidArgumentError(
        absl::StrCat("all-gather of ", n, " bytes into ", recv.size(), " over ", group.size(),
                     " ranks", me < 0 ? absl::StrCat(" that do not include rank ", rank_) : "",
                     "; expected group size x send bytes, this rank a member")));
  }
  if (absl::Status s = Cuda(cudaSetDevice(placement_.device), "selecting the device"); !s.ok()) {
    return DoneRequest(s);
  }
  if (send.data() != recv.data() + me * n) {  // not in place
    if (absl::Status s = Cuda(cudaMemcpyAsync(recv.data() + me * n, send.data(), n,
                                              cudaMemcpyDeviceToDevice, placement_.stream),
                              "copying the own all-gather part");
        !s.ok()) {
      return DoneRequest(s);
    }
  }
  return ExchangeAllGather(*this, group, me, send, recv);
}

template <typename T>
absl::Status CudaCommunicator::ReduceScatterDevice(absl::Span<const int> group,
                                                   absl::Span<const T> send, absl::Span<T> recv) {
  const int me = MemberIndex(group, rank_);
  const size_t n = recv.size();
  if (me < 0 || send.size() != n * group.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "reduce-scatter of ", send.size(), " elements into ", recv.size(), " over ", group.size(),
        " ranks; expected group size x receive elements, this rank a member"));
  }
  RETURN_IF_ERROR(Cuda(cudaSetDevice(placement_.device), "selecting the device"));
  void* raw = nullptr;
  const size_t bytes = send.size() * sizeof(T);
  RETURN_IF_ERROR(Cuda(cudaMallocAsync(&raw, std::max<size_t>(bytes, 1), placement_.stream),
                       "allocating the reduce-scatter parts"));
  T* parts = static_cast<T*>(raw);
  absl::Status status = Cuda(cudaMemcpyAsync(parts + me * n, send.data() + me * n, n * sizeof(T),
                                             cudaMemcpyDeviceToDevice, placement_.stream),
                             "copying the own reduce-scatter part");
  if (status.ok()) {
    std::vector<std::unique_ptr<Request>> requests;
    StartBatch();
    for (size_t i = 0; i < group.size(); ++i) {
      if (static_cast<int>(i) == me) continue;
      requests.push_back(
          Send(group[i], kTagReduceScatter,
               absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(send.data() + i * n),
                                         n * sizeof(T))));
      requests.push_back(
          Recv(group[i], kTagReduceScatter,
               absl::Span<uint8_t>(reinterpret_cast<uint8_t*>(parts + i * n), n * sizeof(T))));
    }
    EndBatch();
    status = WaitAll(requests);
  }
  if (status.ok()) {
    status = Cuda(LaunchSumParts(recv.data(), parts, static_cast<int>(group.size()),
                                 static_cast<int64_t>(n), placement_.stream),
                  "summing the reduce-scatter parts");
  }
  const absl::Status freed =
      Cuda(cudaFreeAsync(raw, placement_.stream), "freeing the reduce-scatter parts");
  return status.ok() ? freed : status;
}

absl::Status CudaCommunicator::ReduceScatterSum(absl::Span<const int> group,
                                                absl::Span<const float> send,
                                                absl::Span<float> recv) {
  if (IsHostMemory(send.data()) || IsHostMemory(recv.data())) {
    return Communicator::ReduceScatterSum(group, send, recv);
  }
  return ReduceScatterDevice(group, send, recv);
}

absl::Status CudaCommunicator::ReduceScatterSum(absl::Span<const int> group,
                                                absl::Span<const double> send,
                                                absl::Span<double> recv) {
  if (IsHostMemory(send.data()) || IsHostMemory(recv.data())) {
    return Communicator::ReduceScatterSum(group, send, recv);
  }
  return ReduceScatterDevice(group, send, recv);
}

// --- DeviceCopyWorld ---------------------------------------------------------

struct DeviceCopyWorld::Shared {
  struct Side {
    uint8_t* data;
    size_t bytes;
    std::shared_ptr<SharedEvent> ready;  // the side's compute work so far
    std::shared_ptr<Transfer> transfer;
  };
  using Key = std::tuple<int, int, int>;  // (from, to, tag)
  Mutex mu;
  std::map<Key, std::deque<Side>> sends ABSL_GUARDED_BY(mu), recvs ABSL_GUARDED_BY(mu);
  std::shared_ptr<AbortFlag> abort = std::make_shared<AbortFlag>();
};

class DeviceCopyWorld::Rank final : public CudaCommunicator {
 public:
  Rank(int rank, int world, CudaPlacement placement, absl::Duration timeout,
       std::shared_ptr<Shared> shared)
      : CudaCommunicator(rank, world, placement, timeout, shared->abort),
        shared_(std::move(shared)) {}
  using CudaCommunicator::InitStreams;

  std::unique_ptr<Request> Send(int peer, int tag, absl::Span<const uint8_t> data) override {
    return Post(rank(), peer, tag, const_cast<uint8_t*>(data.data()), data.size(), true);
  }
  std::unique_ptr<Request> Recv(int peer, int tag, absl::Span<uint8_t> data) override {
    return Post(peer, rank(), tag, data.data(), data.size(), false);
  }

 private:
  std::unique_ptr<Request> Post(int from, int to, int tag, uint8_t* data, size_t bytes,
                                bool sending) {
    const int peer = sending ? to : from;
    if (peer < 0 || peer >= world() || peer == rank()) {
      return DoneRequest(absl::InvalidArgumentError(absl::StrCat(
          "rank ", rank(), ": peer ", peer, " is outside [0, ", world(), ") or itself")));
    }
    const bool host = IsHostMemory(data);
    auto transfer = std::make_shared<Transfer>();
    if (absl::Status s = Cuda(cudaSetDevice(placement().device), "selecting the device"); !s.ok()) {
      return DoneRequest(s);
    }
    absl::Status s;
    auto ready = std::make_shared<SharedEvent>(Record(placement().stream, &s));
    if (!s.ok()) return DoneRequest(s);
    Shared::Side mine{data, bytes, ready, transfer};
    std::optional<Shared::Side> other;
    {
      MutexLock lock(&shared_->mu);
      const Shared::Key key{from, to, tag};
      auto& theirs = sending ? shared_->recvs[key] : shared_->sends[key];
      if (theirs.empty()) {
        (sending ? shared_->sends[key] : shared_->recvs[key]).push_back(mine);
      } else {
        other = theirs.front();
        theirs.pop_front();
      }
    }
    if (other.has_value()) {
      const Shared::Side& src = sending ? mine : *other;
      const Shared::Side& dst = sending ? *other : mine;
      Copy(src, dst, from, to);
    }
    return TransferRequest(transfer, host);
  }

  // Issued by whichever side arrives second, on its communication stream.
  void Copy(const Shared::Side& src, const Shared::Side& dst, int from, int to) {
    absl::Status s;
    if (src.bytes != dst.bytes) {
      s = absl::InvalidArgumentError(absl::StrCat("rank ", from, " sends ", src.bytes,
                                                  " bytes; rank ", to, " expects ", dst.bytes));
    }
    if (s.ok())
      s = Cuda(cudaStreamWaitEvent(comm_stream(), src.ready->get(), 0), "ordering a copy");
    if (s.ok())
      s = Cuda(cudaStreamWaitEvent(comm_stream(), dst.ready->get(), 0), "ordering a copy");
    if (s.ok()) {
      s = Cuda(cudaMemcpyAsync(dst.data, src.data, src.bytes, cudaMemcpyDefault, comm_stream()),
               "copying between ranks");
    }
    std::shared_ptr<SharedEvent> done;
    if (s.ok()) done = std::make_shared<SharedEvent>(Record(comm_stream(), &s));
    for (const Shared::Side* side : {&src, &dst}) {
      if (s.ok()) {
        side->transfer->Issue(done);
      } else {
        side->transfer->Fail(s);
      }
    }
  }

  std::shared_ptr<Shared> shared_;
};

absl::StatusOr<std::unique_ptr<DeviceCopyWorld>> DeviceCopyWorld::Create(
    const std::vector<CudaPlacement>& ranks, absl::Duration timeout) {
  if (ranks.empty()) {
    return absl::InvalidArgumentError("a device world needs at least one rank");
  }
  std::unique_ptr<DeviceCopyWorld> world(new DeviceCopyWorld);
  world->shared_ = std::make_shared<Shared>();
  // Peer access between the devices in use, where the hardware allows it
  // (copies work without it, staged through the host).
  std::vector<int> devices;
  for (const CudaPlacement& p : ranks) devices.push_back(p.device);
  std::sort(devices.begin(), devices.end());
  devices.erase(std::unique(devices.begin(), devices.end()), devices.end());
  for (int a : devices) {
    for (int b : devices) {
      int can = 0;
      if (a != b && cudaDeviceCanAccessPeer(&can, a, b) == cudaSuccess && can) {
        cudaSetDevice(a);
        cudaDeviceEnablePeerAccess(b, 0);
        cudaGetLastError();  // "already enabled" is fine
      }
    }
  }
  for (size_t r = 0; r < ranks.size(); ++r) {
    auto rank = std::make_unique<Rank>(static_cast<int>(r), static_cast<int>(ranks.size()),
                                       ranks[r], timeout, world->shared_);
    RETURN_IF_ERROR(rank->InitStreams());
    world->ranks_.push_back(std::move(rank));
  }
  return world;
}

DeviceCopyWorld::~DeviceCopyWorld() = default;
int DeviceCopyWorld::world() const { return static_cast<int>(ranks_.size()); }
Communicator& DeviceCopyWorld::rank(int r) { return *ranks_.at(r); }

}  // namespace ringattn::comm
