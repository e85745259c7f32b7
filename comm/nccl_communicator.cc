// NCCL behind CudaCommunicator. libnccl.so.2 is loaded at run time, so the
// binaries start (and GPU tests skip) where NCCL is missing.
#include "comm/nccl_communicator.h"

#include <dlfcn.h>
#include <nccl.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "comm/cuda_communicator.h"
#include "comm/cuda_transfer.h"
#include "comm/host_rounds.h"
#include "comm/poll_backoff.h"
#include "core/status_macros.h"

namespace ringattn::comm {
namespace {

// The NCCL functions we call, resolved from libnccl.so.2.
struct Nccl {
  decltype(&ncclGetUniqueId) GetUniqueId;
  decltype(&ncclCommInitRankConfig) CommInitRankConfig;
  decltype(&ncclCommGetAsyncError) CommGetAsyncError;
  decltype(&ncclCommAbort) CommAbort;
  decltype(&ncclCommSplit) CommSplit;
  decltype(&ncclCommFinalize) CommFinalize;
  decltype(&ncclCommDestroy) CommDestroy;
  decltype(&ncclGroupStart) GroupStart;
  decltype(&ncclGroupEnd) GroupEnd;
  decltype(&ncclSend) Send;
  decltype(&ncclRecv) Recv;
  decltype(&ncclGetErrorString) GetErrorString;
  decltype(&ncclGetLastError) GetLastError;
};

absl::StatusOr<const Nccl*> LoadNccl() {
  static const absl::StatusOr<const Nccl*> loaded = []() -> absl::StatusOr<const Nccl*> {
    void* lib = nullptr;
    for (const char* name : {"libnccl.so.2", "libnccl.so", "/usr/local/cuda/lib64/libnccl.so.2"}) {
      lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
      if (lib != nullptr) break;
    }
    if (lib == nullptr) {
      return absl::UnavailableError(absl::StrCat("cannot load NCCL (libnccl.so.2): ", dlerror(),
                                                 "; install NCCL or put it on LD_LIBRARY_PATH"));
    }
    auto* n = new Nccl;
    bool ok = true;
    const auto get = [&](auto& fn, const char* symbol) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, symbol));
      ok = ok && fn != nullptr;
    };
    get(n->GetUniqueId, "ncclGetUniqueId");
    get(n->CommInitRankConfig, "ncclCommInitRankConfig");
    get(n->CommGetAsyncError, "ncclCommGetAsyncError");
    get(n->CommAbort, "ncclCommAbort");
    get(n->CommSplit, "ncclCommSplit");
    get(n->CommFinalize, "ncclCommFinalize");
    get(n->CommDestroy, "ncclCommDestroy");
    get(n->GroupStart, "ncclGroupStart");
    get(n->GroupEnd, "ncclGroupEnd");
    get(n->Send, "ncclSend");
    get(n->Recv, "ncclRecv");
    get(n->GetErrorString, "ncclGetErrorString");
    get(n->GetLastError, "ncclGetLastError");
    if (!ok) {
      return absl::UnavailableError(
          "libnccl.so.2 lacks a function ringattn needs; expected NCCL >= 2.18");
    }
    return n;
  }();
  return loaded;
}

absl::Status NcclStatus(const Nccl& nccl, ncclResult_t r, ncclComm_t comm, const char* what) {
  if (r == ncclSuccess || r == ncclInProgress) return absl::OkStatus();
  const char* last = comm != nullptr ? nccl.GetLastError(comm) : nullptr;
  return absl::InternalError(
      absl::StrCat(what, ": NCCL error ", static_cast<int>(r), " (", nccl.GetErrorString(r), ")",
                   last != nullptr && *last ? absl::StrCat(": ", last) : ""));
}

absl::Status Cuda(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, ": ", cudaGetErrorString(e)));
}

// Polls `done` (true: finished; false: not yet; an error: stop with it)
// until it finishes or fails, or DeadlineExceeded naming `what` once
// `timeout` has passed. Pauses with PollBackoff: a fixed 100-us sleep a
// poll held every ring step's ncclGroupEnd (ncclInProgress on a
// non-blocking communicator until NCCL has enqueued the transfers) for
// 0.19 ms of host time, the GPU idle before each pass's first kernel
// (2 x H200, ring_bench --timeline, fifty-fourth session).
absl::Status PollWithin(absl::Duration timeout, const char* what,
                        const std::function<absl::StatusOr<bool>()>& done) {
  const absl::Time deadline = absl::Now() + timeout;
  const PollBackoff backoff;
  while (true) {
    ASSIGN_OR_RETURN(const bool finished, done());
    if (finished) return absl::OkStatus();
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat(what, " did not finish within ",
                                                      absl::FormatDuration(timeout),
                                                      " (a peer did not join?)"));
    }
    backoff.Pause();
  }
}

// Polls a non-blocking communicator until its pending call finished.
absl::Status WaitReady(const Nccl& nccl, ncclComm_t comm, absl::Duration timeout,
                       const char* what) {
  return PollWithin(timeout, what, [&]() -> absl::StatusOr<bool> {
    ncclResult_t state = ncclSuccess;
    const ncclResult_t r = nccl.CommGetAsyncError(comm, &state);
    if (r != ncclSuccess) return NcclStatus(nccl, r, comm, what);
    if (state != ncclSuccess && state != ncclInProgress) {
      return NcclStatus(nccl, state, comm, what);
    }
    return state == ncclSuccess;
  });
}

ncclConfig_t NonBlockingConfig() {
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  return config;
}

class NcclRank final : public CudaCommunicator {
 public:
  NcclRank(int rank, int world, CudaPlacement placement, absl::Duration timeout,
           std::shared_ptr<AbortFlag> abort, const Nccl* nccl)
      : CudaCommunicator(rank, world, placement, timeout, std::move(abort)), nccl_(nccl) {}
  ~NcclRank() override {
    StopWatchdog();  // it calls TransportError and AbortTransport
    if (comm_ == nullptr) return;
    MutexLock lock(&nccl_mu_);
    cudaSetDevice(placement().device);
    if (!aborted_ && blocking_ != nullptr) {
      // A blocking finalize waits for the transfers: only once they are done
      // (a peer gone silent cannot hold us past the timeout).
      if (StreamDrained()) {
        nccl_->CommFinalize(blocking_);
        nccl_->CommDestroy(blocking_);
        blocking_ = nullptr;
      } else {
        AbortLocked();
      }
    }
    if (!aborted_) {
      // Flush and free; a peer gone silent cannot hold us past the timeout.
      if (nccl_->CommFinalize(comm_) == ncclSuccess &&
          WaitReady(*nccl_, comm_, timeout(), "finalizing NCCL").ok()) {
        nccl_->CommDestroy(comm_);
        return;
      }
    }
    AbortLocked();
  }

  using CudaCommunicator::InitStreams;
  ncclComm_t comm() const { return comm_; }
  ncclComm_t* comm_slot() { return &comm_; }
  ncclComm_t blocking() const { return blocking_; }
  ncclComm_t* blocking_slot() { return &blocking_; }
  cudaStream_t stream() const { return comm_stream(); }
  // After ConnectBlocking's connection did not return within the timeout:
  // ends the non-blocking communicator (whose abort flag the blocking one
  // shares, which ends NCCL's wait for the peer), then, where the connection
  // returned after all, the blocking one; where not, leaves it to the stuck
  // thread.
  void AbortBeforeConnectReturned() {
    MutexLock lock(&nccl_mu_);
    aborted_ = true;
    cudaSetDevice(placement().device);
    nccl_->CommAbort(comm_);
  }
  void AbortAfterConnect(bool returned) {
    MutexLock lock(&nccl_mu_);
    if (returned) nccl_->CommAbort(blocking_);
    blocking_ = nullptr;
  }

  // NcclPlainRingSeconds (nccl_communicator.h) on this rank.
  absl::StatusOr<double> PlainRingSeconds(int64_t bytes, int hops) {
    cudaSetDevice(placement().device);
    const cudaStream_t stream = comm_stream();
    const int next = (rank() + 1) % world(), prev = (rank() + world() - 1) % world();
    uint8_t *send = nullptr, *recv = nullptr;
    cudaEvent_t start = nullptr, stop = nullptr;
    absl::Status s;
    {
      // Enqueued under nccl_mu_ like a batch (the watchdog's abort waits).
      MutexLock lock(&nccl_mu_);
      if (aborted_) return AbortedStatus();
      s = Cuda(cudaMalloc(&send, bytes), "allocating the plain ring's send buffer");
      if (s.ok()) s = Cuda(cudaMalloc(&recv, bytes), "allocating the plain ring's receive buffer");
      if (s.ok())
        s = Cuda(cudaMemsetAsync(send, rank() + 1, bytes, stream), "filling the send buffer");
      if (s.ok()) s = Cuda(cudaMemsetAsync(recv, 0, bytes, stream), "clearing the receive buffer");
      if (s.ok()) s = Cuda(cudaEventCreate(&start), "creating an event");
      if (s.ok()) s = Cuda(cudaEventCreate(&stop), "creating an event");
      // One untimed hop, then `hops` timed ones, enqueued back to back.
      for (int i = 0; s.ok() && i <= hops; ++i) {
        if (i == 1) s = Cuda(cudaEventRecord(start, stream), "recording the start");
        if (!s.ok()) break;
        s = NcclStatus(*nccl_, nccl_->GroupStart(), comm_, "ncclGroupStart");
        if (!s.ok()) break;
        absl::Status posted = NcclStatus(
            *nccl_, nccl_->Send(send, bytes, ncclUint8, next, comm_, stream), comm_, "ncclSend");
        if (posted.ok()) {
          posted = NcclStatus(*nccl_, nccl_->Recv(recv, bytes, ncclUint8, prev, comm_, stream),
                              comm_, "ncclRecv");
        }
        s = NcclStatus(*nccl_, nccl_->GroupEnd(), comm_, "ncclGroupEnd");
        if (s.ok()) s = posted;
        if (s.ok()) s = WaitReady(*nccl_, comm_, timeout(), "enqueueing the plain ring");
      }
      if (s.ok()) s = Cuda(cudaEventRecord(stop, stream), "recording the stop");
    }
    // The hops finish within the timeout, or the ring is aborted (a silent
    // peer: an error, not a hang), as every transfer's wait does.
    if (s.ok()) s = PollEvent(stop, "the plain NCCL ring's hops");
    float ms = 0;
    if (s.ok()) s = Cuda(cudaEventElapsedTime(&ms, start, stop), "timing the hops");
    // The received bytes are rank - 1's.
    uint8_t ends[2] = {0, 0};
    if (s.ok()) s = Cuda(cudaMemcpy(&ends[0], recv, 1, cudaMemcpyDeviceToHost), "reading back");
    if (s.ok()) {
      s = Cuda(cudaMemcpy(&ends[1], recv + bytes - 1, 1, cudaMemcpyDeviceToHost), "reading back");
    }
    const uint8_t want = static_cast<uint8_t>(prev + 1);
    if (s.ok() && (ends[0] != want || ends[1] != want)) {
      s = absl::InternalError(absl::StrCat("the plain NCCL ring delivered bytes ", ends[0], " / ",
                                           ends[1], " at rank ", rank(), "; expected ", want,
                                           " from rank ", prev));
    }
    for (cudaEvent_t e : {start, stop}) {
      if (e != nullptr) cudaEventDestroy(e);
    }
    cudaFree(send);
    cudaFree(recv);
    if (!s.ok()) return s;
    return 1e-3 * ms / hops;
  }
  absl::Status WaitInit() { return WaitReady(*nccl_, comm_, timeout(), "NCCL initialization"); }
  // After OpenBlocking's split (every rank's at once): waits for it.
  absl::Status WaitSplit() {
    RETURN_IF_ERROR(WaitReady(*nccl_, comm_, timeout(), "splitting the blocking communicator"));
    if (blocking_ == nullptr) {
      return absl::InternalError("ncclCommSplit finished without a communicator");
    }
    return absl::OkStatus();
  }

  // A batch holds nccl_mu_ from its start to its end (the watchdog's abort
  // waits for it); a communicator aborted before fails the batch. Its
  // sends and receives are collected and issued as one NCCL group at its
  // end.
  void StartBatch() override ABSL_NO_THREAD_SAFETY_ANALYSIS {
    if (batch_depth_++ > 0) return;
    nccl_mu_.Lock();
    batch_status_ = aborted_ ? AbortedStatus() : OrderAfterCompute();
  }

  void EndBatch() override ABSL_NO_THREAD_SAFETY_ANALYSIS {
    if (--batch_depth_ > 0) return;
    absl::Status s = batch_status_;
    if (s.ok() && !ops_.empty()) s = IssueGroup();
    ops_.clear();
    for (const auto& after : after_group_) {
      if (s.ok()) s = after();
    }
    after_group_.clear();
    std::shared_ptr<SharedEvent> done;
    if (s.ok()) done = std::make_shared<SharedEvent>(Record(comm_stream(), &s));
    for (const auto& t : batch_) {
      if (s.ok()) {
        t->Issue(done);
      } else {
        t->Fail(s);
      }
    }
    batch_.clear();
    nccl_mu_.Unlock();
    if (!s.ok()) Abort(s);
  }

  std::unique_ptr<Request> Send(int peer, int tag, absl::Span<const uint8_t> data) override {
    return Post(peer, const_cast<uint8_t*>(data.data()), data.size(), true);
  }
  std::unique_ptr<Request> Recv(int peer, int tag, absl::Span<uint8_t> data) override {
    return Post(peer, data.data(), data.size(), false);
  }

 protected:
  absl::Status TransportError() override {
    MutexLock lock(&nccl_mu_);
    if (aborted_) return absl::OkStatus();  // the abort flag says why
    for (ncclComm_t c : {comm_, blocking_}) {
      if (c == nullptr) continue;
      ncclResult_t state = ncclSuccess;
      const ncclResult_t r = nccl_->CommGetAsyncError(c, &state);
      if (r != ncclSuccess) return NcclStatus(*nccl_, r, c, "polling NCCL");
      if (state != ncclSuccess && state != ncclInProgress) {
        return NcclStatus(*nccl_, state, c, "NCCL transfer");
      }
    }
    return absl::OkStatus();
  }
  void AbortTransport() override {
    MutexLock lock(&nccl_mu_);
    AbortLocked();
  }

 private:
  struct Op {
    int peer;
    uint8_t* wire;
    size_t bytes;
    bool sending;
  };

  void AbortLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(nccl_mu_) {
    if (comm_ == nullptr || aborted_) return;
    aborted_ = true;
    cudaSetDevice(placement().device);
    // The split one first: it holds a share of comm_'s resources.
    if (blocking_ != nullptr) nccl_->CommAbort(blocking_);
    nccl_->CommAbort(comm_);
  }

  // Whether the communication stream finished its work within the timeout.
  bool StreamDrained() {
    return PollWithin(timeout(), "draining the communication stream",
                      [this]() -> absl::StatusOr<bool> {
                        const cudaError_t e = cudaStreamQuery(comm_stream());
                        if (e != cudaSuccess && e != cudaErrorNotReady) {
                          return Cuda(e, "draining the communication stream");
                        }
                        return e == cudaSuccess;
                      })
        .ok();
  }

  // The batch's group, on the blocking communicator where there is one
  // (NcclIssue): its group end costs the host 8-19 us where a non-blocking
  // one's costs 50-136 (NCCL 2.28 starts a thread for each; one H200,
  // bench/nccl_issue_probe), and the ring's next kernel is launched after
  // it. It was connected to every peer when it was made (ConnectBlocking),
  // so its group end waits for no peer: a silent one leaves the transfer
  // unfinished on the GPU, which the wait's timeout and abort end.
  absl::Status IssueGroup() ABSL_EXCLUSIVE_LOCKS_REQUIRED(nccl_mu_) {
    const ncclComm_t comm = blocking_ != nullptr ? blocking_ : comm_;
    RETURN_IF_ERROR(NcclStatus(*nccl_, nccl_->GroupStart(), comm, "ncclGroupStart"));
    absl::Status posted;
    for (const Op& op : ops_) {
      if (!posted.ok()) break;
      const ncclResult_t r =
          op.sending ? nccl_->Send(op.wire, op.bytes, ncclUint8, op.peer, comm, comm_stream())
                     : nccl_->Recv(op.wire, op.bytes, ncclUint8, op.peer, comm, comm_stream());
      posted = NcclStatus(*nccl_, r, comm, op.sending ? "ncclSend" : "ncclRecv");
    }
    // The group ends whatever was posted.
    RETURN_IF_ERROR(NcclStatus(*nccl_, nccl_->GroupEnd(), comm, "ncclGroupEnd"));
    RETURN_IF_ERROR(posted);
    // A non-blocking communicator may still be enqueueing; a blocking one
    // (unless NCCL_COMM_BLOCKING=0 overrode it) is done.
    return WaitReady(*nccl_, comm, timeout(), "enqueueing NCCL transfers");
  }

  std::unique_ptr<Request> Post(int peer, uint8_t* data, size_t bytes, bool sending) {
    if (peer < 0 || peer >= world() || peer == rank()) {
      return DoneRequest(absl::InvalidArgumentError(absl::StrCat(
          "rank ", rank(), ": peer ", peer, " is outside [0, ", world(), ") or itself")));
    }
    const bool host = IsHostMemory(data);
    StartBatch();  // fails the batch if the communicator was aborted
    auto transfer = std::make_shared<Transfer>();
    batch_.push_back(transfer);
    absl::Status s = batch_status_;
    uint8_t* wire = data;
    if (s.ok() && host) {
      // NCCL moves device memory: stage host bytes through the stream-ordered pool.
      void* staging = nullptr;
      s = Cuda(cudaMallocAsync(&staging, std::max<size_t>(bytes, 1), comm_stream()),
               "allocating a staging buffer");
      wire = static_cast<uint8_t*>(staging);
      if (s.ok() && sending) {
        s = Cuda(cudaMemcpyAsync(wire, data, bytes, cudaMemcpyHostToDevice, comm_stream()),
                 "staging a host send");
      }
      if (s.ok()) {
        after_group_.push_back([this, wire, data, bytes, sending]() -> absl::Status {
          absl::Status st;
          if (!sending) {
            st = Cuda(cudaMemcpyAsync(data, wire, bytes, cudaMemcpyDeviceToHost, comm_stream()),
                      "unstaging a host receive");
          }
          const absl::Status freed = Cuda(cudaFreeAsync(wire, comm_stream()), "freeing staging");
          return st.ok() ? freed : st;
        });
      }
    }
    if (s.ok()) ops_.push_back(Op{peer, wire, bytes, sending});
    if (!s.ok()) batch_status_ = s;
    EndBatch();
    return TransferRequest(transfer, host);
  }

  const Nccl* nccl_;
  // The rank's communicator, non-blocking (its initialization ends within
  // the timeout), and the blocking one split from it (NcclIssue), or null.
  ncclComm_t comm_ = nullptr;
  ncclComm_t blocking_ = nullptr;
  // NCCL calls on comm_ and blocking_ and their abort (the rank's thread,
  // the watchdog).
  Mutex nccl_mu_;
  bool aborted_ ABSL_GUARDED_BY(nccl_mu_) = false;
  int batch_depth_ = 0;
  absl::Status batch_status_;
  std::vector<Op> ops_;
  std::vector<std::shared_ptr<Transfer>> batch_;
  std::vector<std::function<absl::Status()>> after_group_;
};

}  // namespace

absl::StatusOr<NcclIssue> NcclIssueFromEnv(const char* value) {
  if (value == nullptr || *value == '\0' || std::strcmp(value, "nonblocking") == 0) {
    return NcclIssue::kNonBlocking;
  }
  if (std::strcmp(value, "blocking") == 0) return NcclIssue::kBlocking;
  return absl::InvalidArgumentError(
      absl::StrCat("RINGATTN_NCCL_ISSUE is '", value, "'; expected blocking or nonblocking"));
}

std::string NcclChunkSizeDefault(int world, const char* current) {
  if (current != nullptr || world < 3) return "";
  return "131072";
}

namespace {

// Connects every rank's blocking communicator to every peer, both ways:
// NCCL makes a communicator's connection to a peer at its first transfer
// there, a split one's too though it shares the parent's (one H200, two
// processes as two hosts: the first group on the split communicator waited
// for the peer, and hung where the peer had gone after the forward), and a
// blocking communicator waits for it without a timeout. So each sends a
// byte to and receives one from every peer, on a thread of its own, waited
// for at most `timeout`; where that passes, the non-blocking communicators
// are aborted (the blocking ones share their abort flag, which ends NCCL's
// wait) and it is an error. RINGATTN_NCCL_TEST_SKIP_CONNECT=1 makes this
// process skip it (a test's peer that does not join).
absl::Status ConnectBlocking(const Nccl& n, const std::vector<NcclRank*>& ranks,
                             absl::Duration timeout) {
  const char* skip = std::getenv("RINGATTN_NCCL_TEST_SKIP_CONNECT");
  if (skip != nullptr && std::strcmp(skip, "1") == 0) {
    return absl::CancelledError("skipped connecting the blocking communicator (test)");
  }
  struct Side {
    int device, rank, world;
    ncclComm_t comm;
    cudaStream_t stream;
    uint8_t* bytes = nullptr;  // world to send, world to receive
  };
  std::vector<Side> sides;
  absl::Status s;
  for (NcclRank* r : ranks) {
    Side side{r->placement().device, r->rank(), r->world(), r->blocking(), r->stream()};
    s = Cuda(cudaSetDevice(side.device), "selecting the device");
    if (s.ok()) s = Cuda(cudaMalloc(&side.bytes, 2 * side.world), "allocating the connect bytes");
    sides.push_back(side);
    if (!s.ok()) break;
  }
  const auto free_bytes = [&sides]() {
    for (const Side& side : sides) {
      cudaSetDevice(side.device);
      cudaFree(side.bytes);
    }
  };
  if (!s.ok()) {
    free_bytes();
    return s;
  }
  // The thread may outlive this call (a peer that never joins).
  auto outcome = std::make_shared<std::promise<absl::Status>>();
  std::future<absl::Status> done = outcome->get_future();
  const auto returned_within = [&done](absl::Duration d) {
    return done.wait_for(absl::ToChronoMilliseconds(d)) == std::future_status::ready;
  };
  std::thread connect([&n, sides, outcome]() {
    absl::Status st = NcclStatus(n, n.GroupStart(), nullptr, "ncclGroupStart");
    for (const Side& side : sides) {
      cudaSetDevice(side.device);
      for (int p = 0; st.ok() && p < side.world; ++p) {
        if (p == side.rank) continue;
        st = NcclStatus(n, n.Send(side.bytes + p, 1, ncclUint8, p, side.comm, side.stream),
                        side.comm, "ncclSend (connecting)");
        if (st.ok()) {
          st = NcclStatus(
              n, n.Recv(side.bytes + side.world + p, 1, ncclUint8, p, side.comm, side.stream),
              side.comm, "ncclRecv (connecting)");
        }
      }
    }
    const absl::Status end = NcclStatus(n, n.GroupEnd(), nullptr, "ncclGroupEnd (connecting)");
    if (st.ok()) st = end;
    for (const Side& side : sides) {
      cudaSetDevice(side.device);
      if (st.ok()) st = Cuda(cudaStreamSynchronize(side.stream), "connecting to every peer");
    }
    outcome->set_value(st);
  });
  if (returned_within(timeout)) {
    connect.join();
    free_bytes();
    return done.get();
  }
  for (NcclRank* r : ranks) r->AbortBeforeConnectReturned();
  const bool returned = returned_within(absl::Seconds(10));
  if (returned) {
    connect.join();
    free_bytes();
  } else {
    connect.detach();  // its bytes stay allocated
  }
  for (NcclRank* r : ranks) r->AbortAfterConnect(returned);
  return absl::DeadlineExceededError(
      absl::StrCat("connecting the blocking NCCL communicator to every peer did not finish within ",
                   absl::FormatDuration(timeout), " (a peer did not join?)"));
}

// Gives each of the ranks (one process's, initialized) the blocking
// communicator NcclIssue::kBlocking issues on: split from its
// non-blocking one with splitShare (the ranks of a process in one group,
// which the non-blocking parents make non-blocking: a peer that does not
// join is an error within the timeout), then connected (ConnectBlocking).
absl::Status OpenBlocking(const Nccl& n, const std::vector<NcclRank*>& ranks,
                          absl::Duration timeout) {
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 1;
  config.splitShare = 1;
  absl::Status s = NcclStatus(n, n.GroupStart(), nullptr, "ncclGroupStart");
  for (NcclRank* r : ranks) {
    if (!s.ok()) break;
    cudaSetDevice(r->placement().device);
    s = NcclStatus(n, n.CommSplit(r->comm(), /*color=*/0, r->rank(), r->blocking_slot(), &config),
                   r->comm(), "ncclCommSplit");
  }
  const absl::Status end = NcclStatus(n, n.GroupEnd(), nullptr, "ncclGroupEnd");
  if (s.ok()) s = end;
  for (NcclRank* r : ranks) {
    if (!s.ok()) break;
    s = r->WaitSplit();
  }
  if (s.ok()) s = ConnectBlocking(n, ranks, timeout);
  if (!s.ok()) {
    return absl::Status(s.code(), absl::StrCat(s.message(),
                                               " (RINGATTN_NCCL_ISSUE=nonblocking issues every "
                                               "transfer on the non-blocking communicator)"));
  }
  return s;
}

// Sets NCCL_P2P_NVL_CHUNKSIZE for the ring size unless the user set it.
void ApplyChunkSizeDefault(int world) {
  const std::string value = NcclChunkSizeDefault(world, std::getenv("NCCL_P2P_NVL_CHUNKSIZE"));
  if (!value.empty()) setenv("NCCL_P2P_NVL_CHUNKSIZE", value.c_str(), /*overwrite=*/0);
}

}  // namespace

absl::StatusOr<std::unique_ptr<NcclWorld>> NcclWorld::Create(
    const std::vector<CudaPlacement>& ranks, absl::Duration timeout) {
  if (ranks.empty()) return absl::InvalidArgumentError("an NCCL world needs at least one rank");
  std::set<int> devices;
  for (const CudaPlacement& p : ranks) {
    if (!devices.insert(p.device).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("two ranks on device ", p.device,
                       "; NCCL takes one rank per GPU (virtual ranks "
                       "on one GPU use the device-copy communicator: --comm=device)"));
    }
  }
  ApplyChunkSizeDefault(static_cast<int>(ranks.size()));
  ASSIGN_OR_RETURN(const NcclIssue issue, NcclIssueFromEnv(std::getenv("RINGATTN_NCCL_ISSUE")));
  ASSIGN_OR_RETURN(const Nccl* nccl, LoadNccl());
  const Nccl& n = *nccl;
  ncclUniqueId id;
  RETURN_IF_ERROR(NcclStatus(n, n.GetUniqueId(&id), nullptr, "ncclGetUniqueId"));
  std::unique_ptr<NcclWorld> world(new NcclWorld);
  auto abort = std::make_shared<AbortFlag>();
  const int size = static_cast<int>(ranks.size());
  std::vector<NcclRank*> raw;
  for (int r = 0; r < size; ++r) {
    auto rank = std::make_unique<NcclRank>(r, size, ranks[r], timeout, abort, &n);
    RETURN_IF_ERROR(rank->InitStreams());
    raw.push_back(rank.get());
    world->ranks_.push_back(std::move(rank));
  }
  // One thread initializes every rank inside a group (NCCL's single-process
  // pattern); the communicators are non-blocking, so poll them ready.
  ncclConfig_t config = NonBlockingConfig();
  absl::Status s = NcclStatus(n, n.GroupStart(), nullptr, "ncclGroupStart");
  for (int r = 0; s.ok() && r < size; ++r) {
    cudaSetDevice(ranks[r].device);
    s = NcclStatus(n, n.CommInitRankConfig(raw[r]->comm_slot(), size, id, r, &config), nullptr,
                   "ncclCommInitRankConfig");
  }
  const absl::Status end = NcclStatus(n, n.GroupEnd(), nullptr, "ncclGroupEnd");
  if (s.ok()) s = end;
  for (int r = 0; s.ok() && r < size; ++r) s = raw[r]->WaitInit();
  if (s.ok() && issue == NcclIssue::kBlocking) s = OpenBlocking(n, raw, timeout);
  if (!s.ok()) return s;
  return world;
}

NcclWorld::~NcclWorld() = default;
int NcclWorld::world() const { return static_cast<int>(ranks_.size()); }
Communicator& NcclWorld::rank(int r) { return *ranks_.at(r); }

absl::StatusOr<double> NcclPlainRingSeconds(Communicator& comm, int64_t bytes, int hops) {
  auto* rank = dynamic_cast<NcclRank*>(&comm);
  if (rank == nullptr) {
    return absl::InvalidArgumentError(
        "a plain NCCL ring needs an NCCL communicator (--comm=nccl or nccl_env); this one is not");
  }
  if (comm.world() < 2 || bytes <= 0 || hops <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("a plain NCCL ring of ", comm.world(), " ranks, ", bytes, " bytes, ", hops,
                     " hops; expected >= 2 ranks, bytes and hops > 0"));
  }
  return rank->PlainRingSeconds(bytes, hops);
}

namespace {

constexpr absl::Duration kSelfTimeout = absl::Seconds(20);
// The probes' warm-up round before their `rounds` timed ones.
constexpr int kWarmupRounds = 1;

// The probes' communicator: one rank on `device`, sending to itself.
absl::StatusOr<ncclComm_t> OpenSelfComm(const Nccl& n, int device, bool blocking) {
  ncclUniqueId id;
  RETURN_IF_ERROR(NcclStatus(n, n.GetUniqueId(&id), nullptr, "ncclGetUniqueId"));
  RETURN_IF_ERROR(Cuda(cudaSetDevice(device), "selecting the device"));
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = blocking ? 1 : 0;
  ncclComm_t comm = nullptr;
  RETURN_IF_ERROR(NcclStatus(n, n.CommInitRankConfig(&comm, 1, id, 0, &config), nullptr,
                             "ncclCommInitRankConfig"));
  if (absl::Status s = WaitReady(n, comm, kSelfTimeout, "NCCL initialization"); !s.ok()) {
    n.CommAbort(comm);
    return s;
  }
  return comm;
}

// One group of `parts` sends and as many receives of `bytes / parts` each
// to itself on `stream`, until NCCL has enqueued it.
absl::Status SelfGroup(const Nccl& n, ncclComm_t comm, const uint8_t* send, uint8_t* recv,
                       int64_t bytes, int parts, cudaStream_t stream) {
  const size_t part = static_cast<size_t>(bytes / parts);
  RETURN_IF_ERROR(NcclStatus(n, n.GroupStart(), comm, "ncclGroupStart"));
  absl::Status posted;
  for (int k = 0; posted.ok() && k < parts; ++k) {
    posted =
        NcclStatus(n, n.Send(send + k * part, part, ncclUint8, 0, comm, stream), comm, "ncclSend");
  }
  for (int k = 0; posted.ok() && k < parts; ++k) {
    posted =
        NcclStatus(n, n.Recv(recv + k * part, part, ncclUint8, 0, comm, stream), comm, "ncclRecv");
  }
  // The group ends whatever was posted.
  RETURN_IF_ERROR(NcclStatus(n, n.GroupEnd(), comm, "ncclGroupEnd"));
  RETURN_IF_ERROR(posted);
  return WaitReady(n, comm, kSelfTimeout, "enqueueing the group");
}

// Finalizes and destroys `comm` after a probe that ended with `s` (aborts
// it where that or the finalize failed); returns the first error.
absl::Status CloseSelfComm(const Nccl& n, ncclComm_t comm, absl::Status s) {
  if (s.ok()) {
    s = NcclStatus(n, n.CommFinalize(comm), comm, "ncclCommFinalize");
    if (s.ok()) s = WaitReady(n, comm, kSelfTimeout, "finalizing NCCL");
  }
  if (s.ok()) {
    n.CommDestroy(comm);
  } else {
    n.CommAbort(comm);
  }
  return s;
}

}  // namespace

absl::StatusOr<double> NcclSelfGroupIssueSeconds(int device, bool blocking, int parts,
                                                 int64_t bytes, int rounds) {
  if (parts < 1 || bytes < parts || rounds < 1) {
    return absl::InvalidArgumentError(absl::StrCat("a group of ", parts, " parts of ", bytes,
                                                   " bytes, ", rounds,
                                                   " rounds; expected parts, rounds >= 1 and "
                                                   "bytes >= parts"));
  }
  ASSIGN_OR_RETURN(const Nccl* nccl, LoadNccl());
  const Nccl& n = *nccl;
  ASSIGN_OR_RETURN(ncclComm_t comm, OpenSelfComm(n, device, blocking));
  cudaStream_t stream = nullptr;
  uint8_t *send = nullptr, *recv = nullptr;
  absl::Status s = Cuda(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "a stream");
  if (s.ok()) s = Cuda(cudaMalloc(&send, bytes), "allocating the send buffer");
  if (s.ok()) s = Cuda(cudaMalloc(&recv, bytes), "allocating the receive buffer");
  double issue = 0;
  if (s.ok()) {
    // Each group with the GPU idle before it.
    const absl::StatusOr<double> median = MedianHostSeconds(
        kWarmupRounds, rounds,
        HostRound{[&] { return Cuda(cudaStreamSynchronize(stream), "waiting for the last group"); },
                  [&] { return SelfGroup(n, comm, send, recv, bytes, parts, stream); }, nullptr});
    s = median.status();
    if (s.ok()) issue = *median;
  }
  if (s.ok()) s = Cuda(cudaStreamSynchronize(stream), "waiting for the last group");
  s = CloseSelfComm(n, comm, s);
  cudaFree(send);
  cudaFree(recv);
  if (stream != nullptr) cudaStreamDestroy(stream);
  if (!s.ok()) return s;
  return issue;
}

absl::StatusOr<SelfHopTimes> NcclSelfHopBeside(int device, int64_t bytes, bool work_first,
                                               const std::function<cudaError_t(cudaStream_t)>& work,
                                               int rounds) {
  if (bytes < 1 || rounds < 1) {
    return absl::InvalidArgumentError(absl::StrCat("a hop of ", bytes, " bytes, ", rounds,
                                                   " rounds; expected bytes and rounds >= 1"));
  }
  ASSIGN_OR_RETURN(const Nccl* nccl, LoadNccl());
  const Nccl& n = *nccl;
  // ringattn's communicators are non-blocking.
  ASSIGN_OR_RETURN(ncclComm_t comm, OpenSelfComm(n, device, /*blocking=*/false));
  cudaStream_t streams[2] = {nullptr, nullptr};         // the work's, the hop's
  cudaEvent_t events[3] = {nullptr, nullptr, nullptr};  // start, hop done, work done
  uint8_t *send = nullptr, *recv = nullptr;
  absl::Status s;
  for (cudaStream_t& st : streams) {
    if (s.ok()) s = Cuda(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking), "a stream");
  }
  for (cudaEvent_t& e : events) {
    if (s.ok()) s = Cuda(cudaEventCreate(&e), "an event");
  }
  if (s.ok()) s = Cuda(cudaMalloc(&send, bytes), "allocating the send buffer");
  if (s.ok()) s = Cuda(cudaMalloc(&recv, bytes), "allocating the receive buffer");
  const auto launch_work = [&]() { return Cuda(work(streams[0]), "launching the work"); };
  std::vector<double> hop_ms, work_ms;
  for (int round = 0; s.ok() && round < kWarmupRounds + rounds; ++round) {
    s = Cuda(cudaDeviceSynchronize(), "waiting for the last round");
    if (s.ok()) s = Cuda(cudaEventRecord(events[0], streams[0]), "recording the start");
    if (s.ok()) s = Cuda(cudaStreamWaitEvent(streams[1], events[0], 0), "ordering the hop");
    if (s.ok() && work && work_first) s = launch_work();
    if (s.ok()) s = SelfGroup(n, comm, send, recv, bytes, 1, streams[1]);
    if (s.ok() && work && !work_first) s = launch_work();
    if (s.ok()) s = Cuda(cudaEventRecord(events[1], streams[1]), "recording the hop's end");
    if (s.ok()) s = Cuda(cudaEventRecord(events[2], streams[0]), "recording the work's end");
    if (s.ok()) s = Cuda(cudaDeviceSynchronize(), "waiting for the round");
    float h = 0, w = 0;
    if (s.ok()) s = Cuda(cudaEventElapsedTime(&h, events[0], events[1]), "timing the hop");
    if (s.ok()) s = Cuda(cudaEventElapsedTime(&w, events[0], events[2]), "timing the work");
    if (s.ok() && round >= kWarmupRounds) {
      hop_ms.push_back(h);
      work_ms.push_back(w);
    }
  }
  s = CloseSelfComm(n, comm, s);
  cudaFree(send);
  cudaFree(recv);
  for (cudaEvent_t e : events) {
    if (e != nullptr) cudaEventDestroy(e);
  }
  for (cudaStream_t st : streams) {
    if (st != nullptr) cudaStreamDestroy(st);
  }
  if (!s.ok()) return s;
  std::sort(hop_ms.begin(), hop_ms.end());
  std::sort(work_ms.begin(), work_ms.end());
  return SelfHopTimes{hop_ms[hop_ms.size() / 2], work_ms[work_ms.size() / 2]};
}

absl::StatusOr<std::string> NewNcclUniqueId() {
  ASSIGN_OR_RETURN(const Nccl* nccl, LoadNccl());
  ncclUniqueId id;
  RETURN_IF_ERROR(NcclStatus(*nccl, nccl->GetUniqueId(&id), nullptr, "ncclGetUniqueId"));
  return std::string(reinterpret_cast<const char*>(&id), sizeof(id));
}

absl::StatusOr<std::unique_ptr<Communicator>> CreateNcclCommunicatorWithId(
    int rank, int world, CudaPlacement placement, absl::string_view unique_id,
    absl::Duration timeout) {
  if (world < 1 || rank < 0 || rank >= world) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", rank, " of world ", world, "; expected 0 <= rank < world"));
  }
  ncclUniqueId id;
  if (unique_id.size() != sizeof(id)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the NCCL unique id has ", unique_id.size(), " bytes; expected ", sizeof(id)));
  }
  std::memcpy(&id, unique_id.data(), sizeof(id));
  ApplyChunkSizeDefault(world);
  ASSIGN_OR_RETURN(const NcclIssue issue, NcclIssueFromEnv(std::getenv("RINGATTN_NCCL_ISSUE")));
  ASSIGN_OR_RETURN(const Nccl* nccl, LoadNccl());
  const Nccl& n = *nccl;
  auto comm = std::make_unique<NcclRank>(rank, world, placement, timeout,
                                         std::make_shared<AbortFlag>(), &n);
  RETURN_IF_ERROR(comm->InitStreams());
  ncclConfig_t config = NonBlockingConfig();
  cudaSetDevice(placement.device);
  RETURN_IF_ERROR(NcclStatus(n, n.CommInitRankConfig(comm->comm_slot(), world, id, rank, &config),
                             nullptr, "ncclCommInitRankConfig"));
  RETURN_IF_ERROR(comm->WaitInit());
  if (issue == NcclIssue::kBlocking) RETURN_IF_ERROR(OpenBlocking(n, {comm.get()}, timeout));
  return std::unique_ptr<Communicator>(std::move(comm));
}

absl::StatusOr<std::unique_ptr<Communicator>> CreateNcclCommunicator(int rank, int world,
                                                                     CudaPlacement placement,
                                                                     const std::string& id_file,
                                                                     absl::Duration timeout) {
  if (world < 1 || rank < 0 || rank >= world) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", rank, " of world ", world, "; expected 0 <= rank < world"));
  }
  if (id_file.empty()) {
    return absl::InvalidArgumentError(
        "one process per GPU needs --nccl_id_file: a fresh path on a filesystem every "
        "process sees");
  }
  std::string id;
  namespace fs = std::filesystem;
  if (rank == 0) {
    if (fs::exists(id_file)) {
      return absl::AlreadyExistsError(absl::StrCat(
          id_file, " exists (from an earlier run?); expected a fresh path for the NCCL id"));
    }
    ASSIGN_OR_RETURN(id, NewNcclUniqueId());
    const std::string tmp = absl::StrCat(id_file, ".tmp");
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      out.write(id.data(), static_cast<std::streamsize>(id.size()));
      if (!out) return absl::InternalError(absl::StrCat("cannot write ", tmp));
    }
    std::error_code ec;
    fs::rename(tmp, id_file, ec);
    if (ec) {
      return absl::InternalError(
          absl::StrCat("renaming ", tmp, " to ", id_file, ": ", ec.message()));
    }
  } else {
    const absl::Time deadline = absl::Now() + timeout;
    id.resize(sizeof(ncclUniqueId));
    while (true) {
      std::ifstream in(id_file, std::ios::binary);
      if (in && in.read(id.data(), static_cast<std::streamsize>(id.size()))) break;
      if (absl::Now() > deadline) {
        return absl::DeadlineExceededError(absl::StrCat("rank ", rank, ": no NCCL id in ", id_file,
                                                        " after ", absl::FormatDuration(timeout),
                                                        "; is rank 0 running with the same path?"));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  return CreateNcclCommunicatorWithId(rank, world, placement, id, timeout);
}

}  // namespace ringattn::comm
