// Internal to comm/: the completion of one device transfer, shared by the
// requests that wait on it (both sides of a peer copy, or every request of
// an NCCL group).
#ifndef RINGATTN_COMM_CUDA_TRANSFER_H_
#define RINGATTN_COMM_CUDA_TRANSFER_H_

#include <cuda_runtime_api.h>

#include <memory>

#include "absl/status/status.h"
#include "comm/cuda_communicator.h"

namespace ringattn::comm {

// An event, destroyed with the last owner (after the work it marks has been
// queued; CUDA releases it once it completes).
class SharedEvent {
 public:
  explicit SharedEvent(cudaEvent_t event) : event_(event) {}
  ~SharedEvent() {
    if (event_ != nullptr) cudaEventDestroy(event_);
  }
  SharedEvent(const SharedEvent&) = delete;
  SharedEvent& operator=(const SharedEvent&) = delete;
  cudaEvent_t get() const { return event_; }

 private:
  cudaEvent_t event_;
};

// Issued once: either an event marking the transfer's end on some stream,
// or an error.
class Transfer {
 public:
  void Issue(std::shared_ptr<SharedEvent> done) {
    {
      MutexLock lock(&mu_);
      done_ = std::move(done);
      issued_ = true;
    }
    cv_.NotifyAll();
  }
  void Fail(absl::Status error) {
    {
      MutexLock lock(&mu_);
      error_ = std::move(error);
      issued_ = true;
    }
    cv_.NotifyAll();
  }
  // Waits (host) until issued or `slice` passed; true when issued.
  bool WaitIssued(absl::Duration slice) {
    MutexLock lock(&mu_);
    return cv_.WaitWithTimeout(&mu_, slice, [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return issued_;  // called with mu_ held
    });
  }
  absl::Status error() {
    MutexLock lock(&mu_);
    return error_;
  }
  std::shared_ptr<SharedEvent> done() {
    MutexLock lock(&mu_);
    return done_;
  }

 private:
  Mutex mu_;
  CondVar cv_;
  bool issued_ ABSL_GUARDED_BY(mu_) = false;
  std::shared_ptr<SharedEvent> done_ ABSL_GUARDED_BY(mu_);
  absl::Status error_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ringattn::comm

#endif  // RINGATTN_COMM_CUDA_TRANSFER_H_
