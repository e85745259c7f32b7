#include "comm/thread_communicator.h"

#include <chrono>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"

namespace ringattn::comm {

class ThreadWorld::RecvRequest : public Communicator::Request {
 public:
  RecvRequest(ThreadWorld* world, int from, int to, int tag,
              absl::Span<uint8_t> data)
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

  std::unique_ptr<Request> Send(int peer, int tag,
                                absl::Span<const uint8_t> data) override {
    if (absl::Status s = CheckPeer(peer); !s.ok()) return DoneRequest(s);
    world_->Post(rank_, peer, tag, data);
    return DoneRequest(absl::OkStatus());
  }
  std::unique_ptr<Request> Recv(int peer, int tag,
                                absl::Span<uint8_t> data) override {
    if (absl::Status s = CheckPeer(peer); !s.ok()) return DoneRequest(s);
    return std::make_unique<RecvRequest>(world_, peer, rank_, tag, data);
  }
  void Abort(const absl::Status& reason) override {
    world_->Abort(rank_, reason);
  }

 private:
  absl::Status CheckPeer(int peer) const {
    if (peer < 0 || peer >= world_->world_) {
      return absl::InvalidArgumentError(absl::StrCat(
          "peer ", peer, " is outside [0, world = ", world_->world_, ")"));
    }
    return absl::OkStatus();
  }

  ThreadWorld* world_;
  int rank_;
};

ThreadWorld::ThreadWorld(int world, absl::Duration timeout)
    : world_(world), timeout_(timeout) {
  for (int r = 0; r < world; ++r) {
    ranks_.push_back(std::make_unique<RankCommunicator>(this, r));
  }
}

ThreadWorld::~ThreadWorld() = default;

Communicator& ThreadWorld::rank(int rank) { return *ranks_.at(rank); }

void ThreadWorld::Post(int from, int to, int tag,
                       absl::Span<const uint8_t> data) {
  std::vector<uint8_t> message(data.begin(), data.end());
  {
    std::lock_guard<std::mutex> lock(mu_);
    mailboxes_[Key{from, to, tag}].push_back(std::move(message));
  }
  cv_.notify_all();
}

absl::Status ThreadWorld::Take(int from, int to, int tag,
                               absl::Span<uint8_t> data) {
  std::unique_lock<std::mutex> lock(mu_);
  auto& box = mailboxes_[Key{from, to, tag}];
  const bool arrived = cv_.wait_for(
      lock, absl::ToChronoNanoseconds(timeout_),
      [&] { return !box.empty() || !aborted_.ok(); });
  if (!aborted_.ok()) return aborted_;
  if (!arrived) {
    // Every other rank fails with the same reason from now on.
    aborted_ = absl::DeadlineExceededError(absl::StrCat(
        "rank ", to, " waited ", absl::FormatDuration(timeout_),
        " for a message (tag ", tag, ") from rank ", from,
        ", which did not answer"));
    const absl::Status timed_out = aborted_;
    lock.unlock();
    cv_.notify_all();
    return timed_out;
  }
  std::vector<uint8_t> message = std::move(box.front());
  box.pop_front();
  if (message.size() != data.size()) {
    return absl::InternalError(absl::StrCat(
        "rank ", to, " expected ", data.size(), " bytes from rank ", from,
        " (tag ", tag, "); got ", message.size()));
  }
  if (!message.empty()) std::memcpy(data.data(), message.data(), message.size());
  return absl::OkStatus();
}

void ThreadWorld::Abort(int rank, const absl::Status& reason) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (aborted_.ok()) {
      aborted_ = absl::AbortedError(
          absl::StrCat("rank ", rank, " aborted: ", reason.message()));
    }
  }
  cv_.notify_all();
}

std::vector<absl::Status> ThreadWorld::Run(
    int world, absl::Duration timeout,
    const std::function<absl::Status(Communicator&)>& fn) {
  ThreadWorld threads(world, timeout);
  std::vector<absl::Status> statuses(world);
  std::vector<std::thread> workers;
  for (int r = 0; r < world; ++r) {
    workers.emplace_back([&, r] {
      statuses[r] = fn(threads.rank(r));
      if (!statuses[r].ok()) threads.rank(r).Abort(statuses[r]);
    });
  }
  for (std::thread& t : workers) t.join();
  return statuses;
}

}  // namespace ringattn::comm
