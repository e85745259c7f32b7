// The ring driver's view of communication. core/ holds only this interface;
// implementations (threads, MPI, NCCL, simulated links) live in comm/.
//
// Point-to-point messages between two ranks with the same tag arrive in the
// order they were sent. Device communicators (NCCL) match messages between
// two ranks in issue order whatever their tags, so every pair of ranks must
// issue its sends and receives in the same order, and sends and receives
// that must progress together go in one batch (StartBatch/EndBatch).
//
// Buffers may be host memory, or device memory for a device communicator
// bound to the rank's compute stream: there an operation starts after the
// work enqueued on that stream before it, and Wait orders the stream's
// later work after the transfer without blocking the host (the host runs
// ahead; Synchronize bounds it). Collectives are built on Send/Recv here, so every
// implementation gets them; every member of `group` must call a collective
// with the same group and sizes.
#ifndef RINGATTN_CORE_COMMUNICATOR_H_
#define RINGATTN_CORE_COMMUNICATOR_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace ringattn {

// Tags the ring driver uses; collectives use their own.
enum MessageTag : int {
  kTagKv = 1,
  kTagDkv = 2,
  kTagAllGather = 3,
  kTagReduceScatter = 4,
  kTagBarrier = 5,
};

class Communicator {
 public:
  // A pending send or receive.
  class Request {
   public:
    virtual ~Request() = default;
    // Blocks until the transfer is complete (the buffer may be reused).
    // Errors: DeadlineExceeded when the peer did not answer within the
    // communicator's timeout, Aborted when some rank aborted.
    virtual absl::Status Wait() = 0;
  };

  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world() const = 0;

  // Starts sending `data` to `peer`; `data` must stay valid until Wait.
  virtual std::unique_ptr<Request> Send(int peer, int tag, absl::Span<const uint8_t> data) = 0;
  // Starts receiving exactly data.size() bytes from `peer` into `data`.
  virtual std::unique_ptr<Request> Recv(int peer, int tag, absl::Span<uint8_t> data) = 0;
  // Tells every rank to stop: their pending and later operations fail with
  // Aborted naming this rank and `reason`. Never blocks.
  virtual void Abort(const absl::Status& reason) = 0;

  // Sends and receives between StartBatch and EndBatch are issued together
  // (an NCCL group), so a ring's send to the next rank and receive from the
  // previous one cannot wait on each other. Requests of a batch are waited
  // after EndBatch. Host communicators issue at once and ignore batches.
  virtual void StartBatch() {}
  virtual void EndBatch() {}
  // Waits until everything this rank issued (transfers and, for a device
  // communicator, the compute stream's work) has completed, at most the
  // communicator's timeout. Errors: DeadlineExceeded (the communicator is
  // then aborted), Aborted, Internal for a transport error.
  virtual absl::Status Synchronize() { return absl::OkStatus(); }

  // Starts gathering every member's `send` into `recv` (member i's bytes at
  // i * send.size()); `send` may be this member's own part of `recv` (in
  // place). Wait on the returned request before using `recv`.
  // Errors: InvalidArgument if this rank is not in `group` or `recv` is not
  // group.size() * send.size() bytes (as a failed request).
  // The collectives below are built on Send/Recv with host memory; an
  // implementation may override them (device memory, simulated links).
  virtual std::unique_ptr<Request> StartAllGather(absl::Span<const int> group,
                                                  absl::Span<const uint8_t> send,
                                                  absl::Span<uint8_t> recv);
  absl::Status AllGather(absl::Span<const int> group, absl::Span<const uint8_t> send,
                         absl::Span<uint8_t> recv);
  // recv = sum over members of their send[i * n, (i + 1) * n) for this
  // member i, n = recv.size(). Summation order is the group order, so all
  // ranks get deterministic results.
  virtual absl::Status ReduceScatterSum(absl::Span<const int> group, absl::Span<const float> send,
                                        absl::Span<float> recv);
  virtual absl::Status ReduceScatterSum(absl::Span<const int> group, absl::Span<const double> send,
                                        absl::Span<double> recv);
  absl::Status Barrier(absl::Span<const int> group);

 private:
  template <typename T>
  absl::Status ReduceScatter(absl::Span<const int> group, absl::Span<const T> send,
                             absl::Span<T> recv);
};

// Waits for every request; returns the first error.
absl::Status WaitAll(std::vector<std::unique_ptr<Communicator::Request>>& requests);

// A request that is already complete with `status`.
std::unique_ptr<Communicator::Request> DoneRequest(absl::Status status);

// The exchange of an all-gather: member `me` of `group` sends `send` to
// every other member and receives member i's n bytes into recv[i * n, ...),
// all in one batch. (recv's own part is the caller's.)
std::unique_ptr<Communicator::Request> ExchangeAllGather(Communicator& comm,
                                                         absl::Span<const int> group, int me,
                                                         absl::Span<const uint8_t> send,
                                                         absl::Span<uint8_t> recv);

// One request for several: Wait waits for every part (WaitAll).
std::unique_ptr<Communicator::Request> AllOf(
    std::vector<std::unique_ptr<Communicator::Request>> parts);

}  // namespace ringattn

#endif  // RINGATTN_CORE_COMMUNICATOR_H_
