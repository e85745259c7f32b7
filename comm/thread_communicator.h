// In-process communicator: W ranks as W threads of one process, exchanging
// messages through shared mailboxes. Sends complete at once (the bytes are
// copied into the receiver's mailbox, so they "travel" while the sender
// computes); receives wait for their message, at most `timeout`.
#ifndef RINGATTN_COMM_THREAD_COMMUNICATOR_H_
#define RINGATTN_COMM_THREAD_COMMUNICATOR_H_

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/communicator.h"

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
  static std::vector<absl::Status> Run(
      int world, absl::Duration timeout,
      const std::function<absl::Status(Communicator&)>& fn);

 private:
  class RankCommunicator;
  class RecvRequest;
  using Key = std::tuple<int, int, int>;  // (from, to, tag)

  void Post(int from, int to, int tag, absl::Span<const uint8_t> data);
  absl::Status Take(int from, int to, int tag, absl::Span<uint8_t> data);
  void Abort(int rank, const absl::Status& reason);

  const int world_;
  const absl::Duration timeout_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<Key, std::deque<std::vector<uint8_t>>> mailboxes_;  // guarded by mu_
  absl::Status aborted_;                                        // guarded by mu_
  std::vector<std::unique_ptr<RankCommunicator>> ranks_;
};

}  // namespace ringattn::comm

#endif  // RINGATTN_COMM_THREAD_COMMUNICATOR_H_
