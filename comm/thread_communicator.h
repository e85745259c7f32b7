// In-process communicator: W ranks as W threads of one process, exchanging
// messages through per-rank inboxes. Sends complete at once (the bytes are
// copied into the receiver's inbox, so they "travel" while the sender
// computes); receives wait for their message, at most `timeout`. A send
// locks and wakes only its receiver (no world-wide lock or broadcast
// wakeup), so a world of a thousand ranks runs as fast as its messages.
#ifndef RINGATTN_COMM_THREAD_COMMUNICATOR_H_
#define RINGATTN_COMM_THREAD_COMMUNICATOR_H_

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/communicator.h"
#include "core/mutex.h"

namespace ringattn::comm {

class ThreadWorld {
 public:
  // `timeout`: how long a receive waits for its message before it fails
  // with DeadlineExceeded (and aborts the world).
  ThreadWorld(int world, absl::Duration timeout);
  ~ThreadWorld();

  int world() const { return world_; }

  // The communicator of `rank` (owned by the world).
  Communicator& rank(int rank);

  // Runs fn(comm) for every rank on its own thread and returns each rank's
  // status. A rank whose fn fails aborts the world, so the others fail fast
  // instead of waiting for it.
  static std::vector<absl::Status> Run(int world, absl::Duration timeout,
                                       const std::function<absl::Status(Communicator&)>& fn);

 private:
  class RankCommunicator;
  class RecvRequest;
  // The messages waiting for one rank, by (sender, tag), in send order.
  struct Inbox {
    Mutex mu;
    CondVar arrived;  // a message came, or the world aborted
    std::map<std::pair<int, int>, std::deque<std::vector<uint8_t>>> messages ABSL_GUARDED_BY(mu);
  };

  void Post(int from, int to, int tag, absl::Span<const uint8_t> data);
  absl::Status Take(int from, int to, int tag, absl::Span<uint8_t> data);
  // The first abort's status wins; every waiting receive wakes up.
  void Abort(const absl::Status& status);
  absl::Status AbortStatus() const;

  const int world_;
  const absl::Duration timeout_;
  std::vector<std::unique_ptr<Inbox>> inboxes_;  // one per rank
  std::atomic<bool> aborted_{false};             // set once, after abort_status_
  mutable Mutex abort_mu_;
  absl::Status abort_status_ ABSL_GUARDED_BY(abort_mu_);
  std::vector<std::unique_ptr<RankCommunicator>> ranks_;
};

}  // namespace ringattn::comm

#endif  // RINGATTN_COMM_THREAD_COMMUNICATOR_H_
