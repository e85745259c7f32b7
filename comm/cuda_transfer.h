// Internal to comm/: the completion of one device transfer, shared by the
// requests that wait on it (both sides of a peer copy, or every request of
// an NCCL group).
#ifndef RINGATTN_COMM_CUDA_TRANSFER_H_
#define RINGATTN_COMM_CUDA_TRANSFER_H_

#include <cuda_runtime_api.h>

#include <condition_variable>
#include <memory>
#include <mutex>

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
      std::lock_guard<std::mutex> lock(mu_);
      done_ = std::move(done);
      issued_ = true;
    }
    cv_.notify_all();
  }
  void Fail(absl::Status error) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      error_ = std::move(error);
      issued_ = true;
    }
    cv_.notify_all();
  }
  // Waits (host) until issued or `slice` passed; true when issued.
  bool WaitIssued(absl::Duration slice) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, absl::ToChronoNanoseconds(slice), [&] { return issued_; });
  }
  absl::Status error() {
    std::lock_guard<std::mutex> lock(mu_);
    return error_;
  }
  std::shared_ptr<SharedEvent> done() {
    std::lock_guard<std::mutex> lock(mu_);
    return done_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool issued_ = false;
  std::shared_ptr<SharedEvent> done_;
  absl::Status error_;
};

}  // namespace ringattn::comm

#endif  // RINGATTN_COMM_CUDA_TRANSFER_H_
