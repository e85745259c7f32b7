// The simulated network: per-rank virtual clocks, inboxes of messages
// stamped with their virtual arrival time, and the Communicator simulated
// ranks run the real ring driver with (links of the calibration's
// bandwidth and latency, intra- and inter-node). Private to the simulator.
#ifndef RINGATTN_SIM_NETWORK_H_
#define RINGATTN_SIM_NETWORK_H_

#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/communicator.h"
#include "core/status_macros.h"
#include "sim/calibration.h"
#include "sim/fibers.h"

namespace ringattn::sim::internal {

struct Event {
  double start_s, end_s;
  int lane;  // 0 compute, 1 comm
  std::string name;
  std::string args;  // JSON object body
};

// One rank's virtual time; touched only by the rank's own fiber.
struct RankClock {
  double now = 0;
  double compute = 0;
  double exposed = 0;
  double egress_free[2] = {0, 0};  // intra-node, inter-node link
  int64_t tasks = 0;
  bool trace = false;
  std::vector<Event> events;
  // Sends that start only when the rank's running attention kernels end
  // (SimOptions::seed_implementation), in issue order.
  bool defer_sends = false;
  std::vector<std::function<void()>> pending_sends;

  void StartPendingSends() {
    std::vector<std::function<void()>> sends;
    sends.swap(pending_sends);
    for (const auto& send : sends) send();
  }

  // The rank's ring hops (its sends but a collective's) in flight, [start,
  // done) in virtual seconds, in start order: while one is, the rank's
  // kernels run at (1 - Calibration::hop_sm_share) of their rate (NCCL's
  // send/recv kernel holds SMs for the hop's length). Hops that ended
  // before the rank's clock are dropped as it passes them.
  std::vector<std::pair<double, double>> hops;

  // The time GPU work of `seconds` at the full rate takes from `now`, where
  // the hops in flight take `share` of the rate (0 <= share < 1).
  double BesideHops(double seconds, double share) {
    size_t ended = 0;
    while (ended < hops.size() && hops[ended].second <= now) ++ended;
    hops.erase(hops.begin(), hops.begin() + ended);
    if (share <= 0 || hops.empty()) return seconds;
    double t = now, left = seconds;
    for (const auto& [start, done] : hops) {
      if (done <= t) continue;
      if (start > t) {  // full rate until the hop starts
        if (left <= start - t) return t + left - now;
        left -= start - t;
        t = start;
      }
      const double slowed = (done - t) * (1 - share);  // the work the hop's span holds
      if (left <= slowed) return t + left / (1 - share) - now;
      left -= slowed;
      t = done;
    }
    return t + left - now;
  }

  void Advance(double until) {
    if (until > now) {
      exposed += until - now;
      now = until;
    }
  }

  // The rank's host: the time up to which it has issued the rank's work.
  // GPU work and transfers start no earlier; it moves only by the issue of
  // a batch of transfers (Calibration::hop_issue_us), so the GPU waits for
  // it only where it has less queued than an issue takes (a pass's first
  // step, blocks shorter than an issue). At a pass's start it is the GPU's
  // time (the host waited for the last pass).
  double host = 0;
  // The open batch's sends (SimCommunicator::StartBatch), put on the link
  // once the host has issued the batch.
  bool in_batch = false;
  std::vector<std::function<void()>> batch_sends;

  // The GPU idles until the host has enqueued its next work (exposed
  // communication: the transfers' issue).
  void WaitForHost() {
    if (host <= now) return;
    if (trace) events.push_back({now, host, 0, "waiting for the host's issue of transfers", ""});
    Advance(host);
  }
};

struct Message {
  double arrival_s;
  int64_t bytes;
};

// Mailboxes of the simulated network: the only state ranks share. Ranks are
// fibers of one thread (sim/fibers.h); a receive whose message has not been
// sent parks its rank until the sender posts it.
class SimNetwork {
 public:
  SimNetwork(int world, Fibers* fibers) : clocks_(world), inboxes_(world), fibers_(fibers) {}
  RankClock& clock(int rank) { return clocks_[rank]; }

  void Post(int from, int to, int tag, Message m) {
    Inbox& inbox = inboxes_[to];
    inbox.boxes[{from, tag}].items.push_back(m);
    if (inbox.waiting_for == std::pair{from, tag}) {
      inbox.waiting_for = kNotWaiting;
      fibers_->Wake(to);
    }
  }
  absl::StatusOr<Message> Take(int from, int to, int tag) {
    Inbox& inbox = inboxes_[to];
    const std::pair<int, int> key{from, tag};
    auto box = inbox.boxes.find(key);
    while ((box == inbox.boxes.end() || box->second.empty()) && !aborted_) {
      inbox.waiting_for = key;
      fibers_->Park();
      box = inbox.boxes.find(key);  // Post may have rehashed the map
    }
    if (aborted_) return absl::AbortedError("a simulated rank failed");
    const Message m = box->second.Pop();
    // Boxes of the all-gather (one per group member) go once empty: memory
    // only for the messages in flight; a ring pass keeps its few.
    if (box->second.empty() && inbox.boxes.size() > 8) inbox.boxes.erase(box);
    return m;
  }
  void Abort() {
    aborted_ = true;
    for (size_t r = 0; r < inboxes_.size(); ++r) {
      if (inboxes_[r].waiting_for != kNotWaiting) {
        inboxes_[r].waiting_for = kNotWaiting;
        fibers_->Wake(static_cast<int>(r));
      }
    }
  }
  // Every simulated rank is parked: names what the first few wait for.
  std::string Stalled(absl::Span<const int> parked) const {
    std::string what;
    for (size_t i = 0; i < parked.size() && i < 4; ++i) {
      const auto [from, tag] = inboxes_[parked[i]].waiting_for;
      absl::StrAppend(&what, i > 0 ? "; " : "", "rank ", parked[i],
                      " waits for a message from rank ", from, " (tag ", tag, ")");
    }
    return absl::StrCat("the simulated ring is stuck: ", what, parked.size() > 4 ? "; ..." : "",
                        " that is never sent");
  }

 private:
  static constexpr std::pair<int, int> kNotWaiting{-1, -1};
  // Messages in flight from one sender with one tag, oldest first.
  struct Queue {
    std::vector<Message> items;
    size_t head = 0;
    bool empty() const { return head == items.size(); }
    Message Pop() {
      const Message m = items[head++];
      if (empty()) {  // keeps a small capacity; a long backlog's is freed
        head = 0;
        if (items.capacity() > 64) {
          std::vector<Message>().swap(items);
        } else {
          items.clear();
        }
      }
      return m;
    }
  };
  struct Inbox {
    absl::flat_hash_map<std::pair<int, int>, Queue> boxes;  // (from, tag)
    std::pair<int, int> waiting_for = kNotWaiting;          // (from, tag) of a parked receive
  };
  std::vector<RankClock> clocks_;
  std::vector<Inbox> inboxes_;
  Fibers* fibers_;
  bool aborted_ = false;
};

class ClockRequest : public Communicator::Request {
 public:
  // A send completes when its bytes left the link: at `done_s`, or, for a
  // deferred send, at the time it will write to `deferred_done_s` once it
  // started.
  ClockRequest(RankClock* clock, double done_s) : clock_(clock), done_s_(done_s) {}
  ClockRequest(RankClock* clock, std::shared_ptr<const double> deferred_done_s)
      : clock_(clock), deferred_done_s_(std::move(deferred_done_s)) {}
  absl::Status Wait() override {
    clock_->StartPendingSends();
    clock_->Advance(deferred_done_s_ != nullptr ? *deferred_done_s_ : done_s_);
    return absl::OkStatus();
  }

 private:
  RankClock* clock_;
  double done_s_ = 0;
  std::shared_ptr<const double> deferred_done_s_;
};

class RecvRequest : public Communicator::Request {
 public:
  RecvRequest(SimNetwork* net, int from, int to, int tag, int64_t bytes)
      : net_(net), from_(from), to_(to), tag_(tag), bytes_(bytes) {}
  absl::Status Wait() override {
    net_->clock(to_).StartPendingSends();  // before blocking on a peer
    ASSIGN_OR_RETURN(Message m, net_->Take(from_, to_, tag_));
    if (m.bytes != bytes_) {
      return absl::InternalError(absl::StrCat("rank ", to_, " expected ", bytes_, " bytes from ",
                                              from_, "; got ", m.bytes));
    }
    net_->clock(to_).Advance(m.arrival_s);
    return absl::OkStatus();
  }

 private:
  SimNetwork* net_;
  int from_, to_, tag_;
  int64_t bytes_;
};

class SimCommunicator : public Communicator {
 public:
  SimCommunicator(SimNetwork* net, int rank, int world, const Calibration& calibration,
                  int gpus_per_node)
      : net_(net), rank_(rank), world_(world), cal_(calibration), gpus_per_node_(gpus_per_node) {}
  int rank() const override { return rank_; }
  int world() const override { return world_; }

  std::unique_ptr<Request> Send(int peer, int tag, absl::Span<const uint8_t> data) override {
    return SendBytes(peer, tag, data.size(), /*collective=*/false);
  }
  std::unique_ptr<Request> Recv(int peer, int tag, absl::Span<uint8_t> data) override {
    return std::make_unique<RecvRequest>(net_, peer, rank_, tag, data.size());
  }
  // A batch's sends go out together once the host has issued them: its
  // clock moves on by the issue (Calibration::HopIssueUs of the batch's
  // sends), and the sends start no earlier.
  void StartBatch() override { net_->clock(rank_).in_batch = true; }
  void EndBatch() override {
    RankClock& clock = net_->clock(rank_);
    clock.in_batch = false;
    std::vector<std::function<void()>> sends;
    sends.swap(clock.batch_sends);
    if (sends.empty()) return;
    clock.host += 1e-6 * cal_.HopIssueUs(static_cast<int>(sends.size()));
    for (auto& send : sends) {
      if (clock.defer_sends) {
        clock.pending_sends.push_back(std::move(send));
      } else {
        send();
      }
    }
  }
  void Abort(const absl::Status&) override { net_->Abort(); }

  // Collectives move no bytes here: only their transfers are timed.
  std::unique_ptr<Request> StartAllGather(absl::Span<const int> group,
                                          absl::Span<const uint8_t> send,
                                          absl::Span<uint8_t> recv) override {
    return Exchange(group, kTagAllGather, send.size());
  }
  absl::Status ReduceScatterSum(absl::Span<const int> group, absl::Span<const float> send,
                                absl::Span<float> recv) override {
    return Exchange(group, kTagReduceScatter, recv.size() * sizeof(float))->Wait();
  }
  absl::Status ReduceScatterSum(absl::Span<const int> group, absl::Span<const double> send,
                                absl::Span<double> recv) override {
    return Exchange(group, kTagReduceScatter, recv.size() * sizeof(double))->Wait();
  }

 private:
  // A send now, at its batch's end (EndBatch), or when the rank's running
  // attention kernels end (SimOptions::seed_implementation).
  std::unique_ptr<Request> SendBytes(int peer, int tag, size_t bytes, bool collective) {
    RankClock& clock = net_->clock(rank_);
    if (!clock.defer_sends && !clock.in_batch) {
      return std::make_unique<ClockRequest>(&clock, StartSend(peer, tag, bytes, collective));
    }
    auto done = std::make_shared<double>(0);
    (clock.in_batch ? clock.batch_sends : clock.pending_sends)
        .push_back([this, peer, tag, bytes, collective, done] {
          *done = StartSend(peer, tag, bytes, collective);
        });
    return std::make_unique<ClockRequest>(&clock, std::move(done));
  }
  // Puts `bytes` on the link to `peer` now (or when it is free); returns
  // when they have left. A collective's sends within the node share the
  // rank's collective bandwidth when the calibration has one.
  double StartSend(int peer, int tag, size_t bytes, bool collective) {
    RankClock& clock = net_->clock(rank_);
    const bool across = rank_ / gpus_per_node_ != peer / gpus_per_node_;
    const double node_gbps =
        collective && cal_.collective_gbps > 0 ? cal_.collective_gbps : cal_.link_gbps;
    const double bandwidth = 1e9 * (across ? cal_.internode_gbps : node_gbps);
    const double latency = 1e-6 * (across ? cal_.internode_latency_us : cal_.link_latency_us);
    double& free = clock.egress_free[across ? 1 : 0];
    const double start = std::max({clock.now, free, clock.host});
    const double done = start + bytes / bandwidth;
    free = done;
    if (!collective) {
      // Start order: a hop on the other link may start before the last one's.
      const auto at = std::upper_bound(
          clock.hops.begin(), clock.hops.end(), start,
          [](double t, const std::pair<double, double>& hop) { return t < hop.first; });
      clock.hops.insert(at, {start, done});
    }
    const Message m{done + latency, static_cast<int64_t>(bytes)};
    if (clock.trace) {
      clock.events.push_back({start, m.arrival_s, 1,
                              absl::StrCat(tag == kTagDkv  ? "dK/dV"
                                           : tag == kTagKv ? "K/V"
                                                           : "collective",
                                           " to ", peer),
                              absl::StrCat("\"bytes\": ", bytes, ", \"link\": \"",
                                           across ? "inter-node" : "intra-node", "\"")});
    }
    net_->Post(rank_, peer, tag, m);
    return done;
  }
  // `bytes` to and from every other member, one batch (as the device
  // communicators issue a collective: every pair's sends and receives in
  // one group).
  std::unique_ptr<Request> Exchange(absl::Span<const int> group, int tag, size_t bytes) {
    std::vector<std::unique_ptr<Request>> parts;
    const absl::Span<uint8_t> sized(Placeholder(), bytes);
    StartBatch();
    for (int member : group) {
      if (member == rank_) continue;
      parts.push_back(SendBytes(member, tag, bytes, /*collective=*/true));
      parts.push_back(Recv(member, tag, sized));
    }
    EndBatch();
    return AllOf(std::move(parts));
  }
  static uint8_t* Placeholder() {
    static uint8_t byte;
    return &byte;
  }

  SimNetwork* net_;
  int rank_, world_;
  const Calibration& cal_;
  int gpus_per_node_;
};

}  // namespace ringattn::sim::internal

#endif  // RINGATTN_SIM_NETWORK_H_
