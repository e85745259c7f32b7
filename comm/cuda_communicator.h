// Communicators for ranks whose buffers live on CUDA devices.
//
// Each rank computes on one device and one compute stream (CudaPlacement):
// the stream its ring backend enqueues kernels on. Transfers run on a
// communication stream of the rank's own; an operation starts after the
// compute stream's work enqueued before it (an event), and Wait on a device
// buffer makes the compute stream's later work wait for the transfer (an
// event again) without blocking the host, so compute and transfers overlap
// and the host runs ahead. Wait on a host buffer blocks until the bytes are
// there (the caller reads them). Every host-side wait polls with the
// communicator's timeout: a silent peer gives DeadlineExceeded, never a
// hang; an Abort on any rank of the world fails the others' waits.
//
//   DeviceCopyWorld  W ranks as threads of one process, any number per
//                    device (virtual ranks on one GPU): cudaMemcpyAsync
//                    between the ranks' buffers (peer copies across GPUs).
//   NcclWorld,       (comm/nccl_communicator.h) NCCL send/recv in groups,
//   NcclCommunicator non-blocking communicators, async-error polling and
//                    ncclCommAbort; ranks as threads of one process, one
//                    device each, or one process per GPU (the NCCL unique id
//                    through a file on a shared filesystem).
// Collectives on device buffers are send/recv batches plus, for the
// reduce-scatter, a sum kernel in group order (deterministic).
#ifndef RINGATTN_COMM_CUDA_COMMUNICATOR_H_
#define RINGATTN_COMM_CUDA_COMMUNICATOR_H_

#include <cuda_runtime_api.h>

#include <atomic>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/communicator.h"
#include "core/mutex.h"

namespace ringattn::comm {

class Transfer;  // comm/cuda_transfer.h

// Where a rank computes.
struct CudaPlacement {
  int device = 0;
  cudaStream_t stream = nullptr;  // the rank's compute stream (not owned)
};

// What the ranks of one world share: the first abort and its reason.
class AbortFlag {
 public:
  void Set(const absl::Status& reason);
  bool set() const { return set_.load(std::memory_order_acquire); }
  absl::Status reason() const;

 private:
  std::atomic<bool> set_{false};
  mutable Mutex mu_;
  absl::Status reason_ ABSL_GUARDED_BY(mu_);
};

// The machinery both device communicators share: streams, events, polling,
// collectives on device memory. Subclasses issue the transfers.
class CudaCommunicator : public Communicator {
 public:
  ~CudaCommunicator() override;
  int rank() const override { return rank_; }
  int world() const override { return world_; }
  const CudaPlacement& placement() const { return placement_; }

  void Abort(const absl::Status& reason) override;
  // Waits for the rank's work so far (see Communicator), or, with deferred
  // synchronization, hands the pass's end to the watchdog and returns.
  absl::Status Synchronize() override;

  // Deferred synchronization (off by default): a pass returns once its work
  // is enqueued, so the host prepares the next call while the GPU runs this
  // one. Synchronize records the end of the pass on both streams and
  // returns at once -- with the error of an earlier pass, if one failed --
  // waiting only while more than kPassesAhead passes are outstanding. A
  // watchdog thread polls the outstanding passes and aborts the
  // communicator when one has not completed within the timeout (a silent
  // peer) or the transport reports an error: the abort ends the stuck
  // transfers (ncclCommAbort), so the streams drain instead of hanging
  // whatever the host waits on next, and this rank's next call fails.
  void SetDeferredSynchronize(bool deferred);
  static constexpr size_t kPassesAhead = 2;
  // Waits for every pass so far (at most the timeout) and returns the error
  // of one that failed: with deferred synchronization, the call a caller
  // makes before using results it cannot afford to have wrong (a training
  // step's gradients before the optimizer step).
  absl::Status WaitForPasses();

  std::unique_ptr<Request> StartAllGather(absl::Span<const int> group,
                                          absl::Span<const uint8_t> send,
                                          absl::Span<uint8_t> recv) override;
  absl::Status ReduceScatterSum(absl::Span<const int> group, absl::Span<const float> send,
                                absl::Span<float> recv) override;
  absl::Status ReduceScatterSum(absl::Span<const int> group, absl::Span<const double> send,
                                absl::Span<double> recv) override;

  // A request for `transfer`: Wait blocks until it is issued (at most the
  // timeout), then polls its end (host buffer) or orders the compute
  // stream after it (device buffer).
  std::unique_ptr<Request> TransferRequest(std::shared_ptr<Transfer> transfer, bool host_buffer);

  // What a TransferRequest's Wait does.
  absl::Status WaitTransferForRequest(Transfer& transfer, bool host_buffer);

  // True if `p` is ordinary host memory (pageable or pinned), which the
  // host reads after Wait; device and managed memory are device buffers.
  static bool IsHostMemory(const void* p);

 protected:
  CudaCommunicator(int rank, int world, CudaPlacement placement, absl::Duration timeout,
                   std::shared_ptr<AbortFlag> abort);
  // Creates the communication stream. Errors: the CUDA runtime's.
  absl::Status InitStreams();

  // Makes the communication stream wait for the compute stream's work so far.
  absl::Status OrderAfterCompute();
  // An event recorded now on `stream` (null on failure, with `status` set):
  // a spare one (Recycle) when there is one, else a new one.
  cudaEvent_t Record(cudaStream_t stream, absl::Status* status);
  // `event` (from Record, no longer waited on by the host) kept for the next
  // Record: a pass's end records two and a synchronous one two more, which
  // cudaEventCreate and cudaEventDestroy cost about 3 us of the host's time
  // each pass on an H200 (fifty-second session's profile of the Python step).
  void Recycle(cudaEvent_t event);
  // Polls `event` until it completes, the timeout passes (the communicator
  // is then aborted: DeadlineExceeded), the world aborts (Aborted) or the
  // transport reports an error (TransportError). `what` names the wait.
  absl::Status PollEvent(cudaEvent_t event, const char* what);
  // Makes the compute stream wait for `event`.
  absl::Status ComputeWaits(cudaEvent_t event);
  // A transport's asynchronous error (NCCL), checked while polling.
  virtual absl::Status TransportError() { return absl::OkStatus(); }
  // Stops the transport (ncclCommAbort). Called once, from this rank's
  // thread or from its watchdog (deferred synchronization): a transport with
  // a watchdog serializes it with its own calls. TransportError may be
  // called from the watchdog too.
  virtual void AbortTransport() {}
  absl::Status AbortedStatus() const;
  // Stops the watchdog thread (if any); a subclass whose TransportError or
  // AbortTransport the watchdog calls stops it first in its destructor.
  void StopWatchdog();

  cudaStream_t comm_stream() const { return comm_stream_; }
  absl::Duration timeout() const { return timeout_; }

 private:
  template <typename T>
  absl::Status ReduceScatterDevice(absl::Span<const int> group, absl::Span<const T> send,
                                   absl::Span<T> recv);

  const int rank_;
  const int world_;
  const CudaPlacement placement_;
  const absl::Duration timeout_;
  std::shared_ptr<AbortFlag> abort_;
  cudaStream_t comm_stream_ = nullptr;
  std::atomic<bool> transport_aborted_{false};
  static constexpr size_t kSpareEvents = 8;
  Mutex events_mu_;
  std::vector<cudaEvent_t> spare_events_ ABSL_GUARDED_BY(events_mu_);

  // Deferred synchronization: the passes not yet seen complete, oldest
  // first, and the thread that watches them.
  struct PendingPass {
    cudaEvent_t compute, comm;
    absl::Time deadline;
  };
  void Release(const PendingPass& pass);  // recycles both events
  absl::Status DeferPass();
  absl::Status WaitForStreams();  // both streams' work so far, polled
  void WatchPasses();
  void DropPendingLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(watch_mu_);
  // The oldest outstanding pass (pending_ not empty): cudaSuccess when both
  // its events completed, cudaErrorNotReady while one runs, else the error.
  cudaError_t OldestPassStateLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(watch_mu_);
  // Releases the oldest pass's events, drops it and wakes the waiters.
  void PopOldestLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(watch_mu_);
  bool deferred_ = false;
  Mutex watch_mu_;
  CondVar watch_cv_;
  std::deque<PendingPass> pending_ ABSL_GUARDED_BY(watch_mu_);
  bool stop_watching_ ABSL_GUARDED_BY(watch_mu_) = false;
  std::thread watchdog_;
};

class DeviceCopyWorld {
 public:
  // One rank per placement. Errors: InvalidArgument for an empty world or a
  // missing stream, the CUDA runtime's (Unavailable without a GPU).
  static absl::StatusOr<std::unique_ptr<DeviceCopyWorld>> Create(
      const std::vector<CudaPlacement>& ranks, absl::Duration timeout);
  ~DeviceCopyWorld();
  int world() const;
  Communicator& rank(int r);

 private:
  class Rank;
  struct Shared;
  DeviceCopyWorld() = default;
  std::shared_ptr<Shared> shared_;
  std::vector<std::unique_ptr<Rank>> ranks_;
};

}  // namespace ringattn::comm

#endif  // RINGATTN_COMM_CUDA_COMMUNICATOR_H_
