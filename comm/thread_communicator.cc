#include "comm/thread_communicator.h"

#include <chrono>
#include <cstring>
#include <system_error>
#include <thread>

#include "absl/strings/str_cat.h"

namespace ringattn::comm {

class ThreadWorld::RecvRequest : public Communicator::Request {
 public:
  RecvRequest(ThreadWorld* world, int from, int to, int tag, absl::Span<uint8_t> data)
      : world_(world), from_(from), to_(to), tag_(tag), data_(data) {}
  absl::Status Wait() override {
    if (!done_) {
      status_ = world_->Take(from_, to_, tag_, data_);
      done_ = true;
    }
    return status_;
  }

 private:
  ThreadWorld* world_;
  int from_, to_, tag_;
  absl::Span<uint8_t> data_;
  bool done_ = false;
  absl::Status status_;
};

class ThreadWorld::RankCommunicator : public Communicator {
 public:
  RankCommunicator(ThreadWorld* world, int rank) : world_(world), rank_(rank) {}
  int rank() const override { return rank_; }
  int world() const override { return world_->world_; }

  std::unique_ptr<Request> Send(int peer, int tag, absl::Span<const uint8_t> data) override {
    if (absl::Status s = CheckPeer(peer); !s.ok()) return DoneRequest(s);
    world_->Post(rank_, peer, tag, data);
    return DoneRequest(absl::OkStatus());
  }
  std::unique_ptr<Request> Recv(int peer, int tag, absl::Span<uint8_t> data) override {
    if (absl::Status s = CheckPeer(peer); !s.ok()) return DoneRequest(s);
    return std::make_unique<RecvRequest>(world_, peer, rank_, tag, data);
  }
  void Abort(const absl::Status& reason) override {
    world_->Abort(absl::AbortedError(absl::StrCat("rank ", rank_, " aborted: ", reason.message())));
  }

 private:
  absl::Status CheckPeer(int peer) const {
    if (peer < 0 || peer >= world_->world_) {
      return absl::InvalidArgumentError(
          absl::StrCat("peer ", peer, " is outside [0, world = ", world_->world_, ")"));
    }
    return absl::OkStatus();
  }

  ThreadWorld* world_;
  int rank_;
};

ThreadWorld::ThreadWorld(int world, absl::Duration timeout) : world_(world), timeout_(timeout) {
  for (int r = 0; r < world; ++r) {
    inboxes_.push_back(std::make_unique<Inbox>());
    ranks_.push_back(std::make_unique<RankCommunicator>(this, r));
  }
}

ThreadWorld::~ThreadWorld() = default;

Communicator& ThreadWorld::rank(int rank) { return *ranks_.at(rank); }

void ThreadWorld::Post(int from, int to, int tag, absl::Span<const uint8_t> data) {
  std::vector<uint8_t> message(data.begin(), data.end());
  Inbox& inbox = *inboxes_[to];
  {
    MutexLock lock(&inbox.mu);
    inbox.messages[{from, tag}].push_back(std::move(message));
  }
  inbox.arrived.NotifyAll();  // only the receiver's thread waits here
}

absl::Status ThreadWorld::Take(int from, int to, int tag, absl::Span<uint8_t> data) {
  Inbox& inbox = *inboxes_[to];
  std::vector<uint8_t> message;
  bool arrived = false;
  {
    MutexLock lock(&inbox.mu);
    std::deque<std::vector<uint8_t>>& box = inbox.messages[{from, tag}];
    arrived = inbox.arrived.WaitWithTimeout(&inbox.mu, timeout_, [&] {
      return !box.empty() || aborted_.load(std::memory_order_acquire);
    });
    if (aborted_.load(std::memory_order_acquire)) return AbortStatus();
    if (arrived) {
      message = std::move(box.front());
      box.pop_front();
    }
  }
  if (!arrived) {
    // Every other rank fails with the same reason from now on.
    Abort(absl::DeadlineExceededError(
        absl::StrCat("rank ", to, " waited ", absl::FormatDuration(timeout_),
                     " for a message (tag ", tag, ") from rank ", from, ", which did not answer")));
    return AbortStatus();
  }
  if (message.size() != data.size()) {
    return absl::InternalError(absl::StrCat("rank ", to, " expected ", data.size(),
                                            " bytes from rank ", from, " (tag ", tag, "); got ",
                                            message.size()));
  }
  if (!message.empty()) std::memcpy(data.data(), message.data(), message.size());
  return absl::OkStatus();
}

void ThreadWorld::Abort(const absl::Status& status) {
  {
    MutexLock lock(&abort_mu_);
    if (aborted_.load(std::memory_order_relaxed)) return;
    abort_status_ = status;
    aborted_.store(true, std::memory_order_release);
  }
  for (const std::unique_ptr<Inbox>& inbox : inboxes_) {
    { MutexLock lock(&inbox->mu); }  // a waiter is either waiting or sees the flag
    inbox->arrived.NotifyAll();
  }
}

absl::Status ThreadWorld::AbortStatus() const {
  MutexLock lock(&abort_mu_);
  return abort_status_;
}

std::vector<absl::Status> ThreadWorld::Run(int world, absl::Duration timeout,
                                           const std::function<absl::Status(Communicator&)>& fn) {
  ThreadWorld threads(world, timeout);
  std::vector<absl::Status> statuses(world);
  std::vector<std::thread> workers;
  for (int r = 0; r < world; ++r) {
    try {
      workers.emplace_back([&, r] {
        statuses[r] = fn(threads.rank(r));
        if (!statuses[r].ok()) threads.rank(r).Abort(statuses[r]);
      });
    } catch (const std::system_error& e) {
      // The system ran out of threads: the ranks started so far fail fast
      // (aborted), the others never start.
      const absl::Status no_thread = absl::ResourceExhaustedError(
          absl::StrCat("could not start a thread for rank ", r, " of ", world, " (", e.what(),
                       "); expected fewer ranks for this machine"));
      threads.Abort(no_thread);
      for (int q = r; q < world; ++q) statuses[q] = no_thread;
      break;
    }
  }
  for (std::thread& t : workers) t.join();
  return statuses;
}

}  // namespace ringattn::comm
