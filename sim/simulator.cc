#include "sim/simulator.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <thread>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/communicator.h"
#include "core/mutex.h"
#include "core/ring_driver.h"
#include "core/schedule.h"
#include "core/status_macros.h"

namespace ringattn::sim {
namespace {

struct Event {
  double start_s, end_s;
  int lane;  // 0 compute, 1 comm
  std::string name;
  std::string args;  // JSON object body
};

// One rank's virtual time; touched only by the rank's own thread.
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

  void Advance(double until) {
    if (until > now) {
      exposed += until - now;
      now = until;
    }
  }
};

struct Message {
  double arrival_s;
  int64_t bytes;
};

// Mailboxes of the simulated network: the only state ranks share. Each rank
// has its own inbox, lock and condition variable, so a message wakes only
// its receiver.
class SimNetwork {
 public:
  explicit SimNetwork(int world) : clocks_(world), inboxes_(world) {}
  RankClock& clock(int rank) { return clocks_[rank]; }

  void Post(int from, int to, int tag, Message m) {
    Inbox& inbox = inboxes_[to];
    {
      MutexLock lock(&inbox.mu);
      inbox.boxes[{from, tag}].push_back(m);
    }
    inbox.cv.NotifyOne();
  }
  absl::StatusOr<Message> Take(int from, int to, int tag) {
    Inbox& inbox = inboxes_[to];
    MutexLock lock(&inbox.mu);
    auto& box = inbox.boxes[{from, tag}];
    // Real time: only a bug (a message never sent) waits this long.
    if (!inbox.cv.WaitWithTimeout(&inbox.mu, absl::Seconds(120),
                                  [&] { return !box.empty() || aborted_.load(); })) {
      return absl::DeadlineExceededError(
          absl::StrCat("simulated rank ", to, " never got a message from rank ", from));
    }
    if (aborted_.load()) return absl::AbortedError("a simulated rank failed");
    const Message m = box.front();
    box.pop_front();
    return m;
  }
  void Abort() {
    aborted_.store(true);
    for (Inbox& inbox : inboxes_) {
      { MutexLock lock(&inbox.mu); }  // a waiter is either waiting or sees the flag
      inbox.cv.NotifyAll();
    }
  }

 private:
  struct Inbox {
    Mutex mu;
    CondVar cv;
    std::map<std::pair<int, int>, std::deque<Message>> boxes ABSL_GUARDED_BY(mu);  // (from, tag)
  };
  std::vector<RankClock> clocks_;
  std::vector<Inbox> inboxes_;
  std::atomic<bool> aborted_{false};
};

class ClockRequest : public Communicator::Request {
 public:
  // A send completes when its bytes left the link (known once it started).
  ClockRequest(RankClock* clock, std::shared_ptr<const double> done_s)
      : clock_(clock), done_s_(std::move(done_s)) {}
  absl::Status Wait() override {
    clock_->StartPendingSends();
    clock_->Advance(*done_s_);
    return absl::OkStatus();
  }

 private:
  RankClock* clock_;
  std::shared_ptr<const double> done_s_;
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
    RankClock& clock = net_->clock(rank_);
    auto done = std::make_shared<double>(0);
    auto start_send = [this, &clock, peer, tag, bytes = data.size(), done] {
      const bool across = rank_ / gpus_per_node_ != peer / gpus_per_node_;
      const double bandwidth = 1e9 * (across ? cal_.internode_gbps : cal_.link_gbps);
      const double latency = 1e-6 * (across ? cal_.internode_latency_us : cal_.link_latency_us);
      double& free = clock.egress_free[across ? 1 : 0];
      const double start = std::max(clock.now, free);
      *done = start + bytes / bandwidth;
      free = *done;
      const Message m{*done + latency, static_cast<int64_t>(bytes)};
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
    };
    if (clock.defer_sends) {
      clock.pending_sends.push_back(std::move(start_send));
    } else {
      start_send();
    }
    return std::make_unique<ClockRequest>(&clock, std::move(done));
  }
  std::unique_ptr<Request> Recv(int peer, int tag, absl::Span<uint8_t> data) override {
    return std::make_unique<RecvRequest>(net_, peer, rank_, tag, data.size());
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
  // `bytes` to and from every other member.
  std::unique_ptr<Request> Exchange(absl::Span<const int> group, int tag, size_t bytes) {
    std::vector<std::unique_ptr<Request>> parts;
    const absl::Span<uint8_t> sized(Placeholder(), bytes);
    for (int member : group) {
      if (member == rank_) continue;
      parts.push_back(Send(member, tag, sized));
      parts.push_back(Recv(member, tag, sized));
    }
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

// The cost of one block task for all batch rows and query heads.
struct TaskCost {
  double flops = 0;
  double seconds = 0;
};

TaskCost CostOf(const BlockTask& task, const Schedule& schedule, int rank, const SimOptions& o,
                bool backward) {
  const AttentionShape& s = o.shape;
  const auto [b0, b1] = schedule.layout().BatchRange(rank);
  int64_t pairs = 0;
  for (int64_t b = b0; b < b1; ++b) {
    pairs += CountAllowedPairs(task, schedule.mask(), b);
  }
  const double heads =
      static_cast<double>(s.group_size() * (task.kv_head_end - task.kv_head_begin));
  const double flops = 4.0 * pairs * heads * s.head_dim * (backward ? 2.5 : 1.0);
  const double density = static_cast<double>(pairs) / ((b1 - b0) * task.q.length * task.k.length);
  const double rate =
      1e12 * o.calibration.Tflops(backward, s.head_dim, task.q.length, task.k.length, density);
  return {flops, flops / rate + 1e-6 * o.calibration.launch_us};
}

class SimBackend : public RingBackend {
 public:
  SimBackend(const Schedule& schedule, int rank, const SimOptions& options, RankClock* clock)
      : schedule_(schedule), rank_(rank), o_(options), clock_(clock) {
    const Layout& layout = schedule.layout();
    rows_ = layout.local_seqlen();
    batch_ = layout.local_batch();
    q_elements_ = batch_ * rows_ * o_.shape.num_heads * o_.shape.head_dim;
    const int64_t kv = batch_ * rows_ * o_.shape.num_kv_heads * o_.shape.head_dim;
    const int64_t e = DTypeBytes(o_.dtype);
    // q, k, v, O in the input dtype; the fp32 state O and LSE.
    base_bytes_ =
        (2 * q_elements_ + 2 * kv) * e + 4 * q_elements_ + 4 * batch_ * rows_ * o_.shape.num_heads;
  }

  int64_t KvElements(int64_t head_begin, int64_t head_end) const override {
    return 2 * batch_ * rows_ * (head_end - head_begin) * o_.shape.head_dim;
  }
  DType kv_dtype() const override { return o_.dtype; }
  DType grad_dtype() const override { return DType::kFloat32; }
  absl::StatusOr<absl::Span<uint8_t>> Buffer(int slot, int64_t bytes) override {
    slots_[slot] = std::max(slots_[slot], bytes);
    static uint8_t placeholder;  // never read or written
    return absl::Span<uint8_t>(&placeholder, bytes);
  }
  absl::Status Accumulate(absl::Span<uint8_t> dst, absl::Span<const uint8_t>) override {
    Memory("add partial dK/dV", static_cast<int64_t>(dst.size()) * 3);
    return absl::OkStatus();
  }
  absl::Status Zero(absl::Span<uint8_t> buffer) override {
    Memory("zero dK/dV", static_cast<int64_t>(buffer.size()));
    return absl::OkStatus();
  }
  absl::Status PackKv(int64_t, int64_t, absl::Span<uint8_t>) override { return absl::OkStatus(); }

  absl::Status ForwardStep(absl::Span<const BlockTask> tasks, const KvBlock& kv) override {
    Run(tasks, false);
    if (o_.seed_implementation) SeedPasses(tasks, kv, false, forward_step_);
    ++forward_step_;
    return absl::OkStatus();
  }
  absl::Status FinishForward() override {
    Memory("write O", q_elements_ * (4 + DTypeBytes(o_.dtype)));
    return absl::OkStatus();
  }
  absl::Status StartBackward() override {
    backward_bytes_ =
        q_elements_ * (DTypeBytes(o_.dtype) + 4) + 2 * 4 * KvElements(0, o_.shape.num_kv_heads) / 2;
    Memory("D = rowsum(dO * O)", q_elements_ * 2 * DTypeBytes(o_.dtype));
    return absl::OkStatus();
  }
  absl::Status BackwardStep(absl::Span<const BlockTask> tasks, const KvBlock& kv,
                            absl::Span<uint8_t>) override {
    Run(tasks, true);
    if (o_.seed_implementation) SeedPasses(tasks, kv, true, backward_step_);
    ++backward_step_;
    return absl::OkStatus();
  }
  absl::Status AddOwnDkv(int64_t head_begin, int64_t head_end, absl::Span<const uint8_t>) override {
    Memory("dK/dV home", KvElements(head_begin, head_end) * (4 + 4 + 2));
    return absl::OkStatus();
  }

  int64_t peak_bytes() const {
    int64_t total = base_bytes_ + backward_bytes_;
    for (const auto& [slot, bytes] : slots_) total += bytes;
    return total;
  }

 private:
  void Run(absl::Span<const BlockTask> tasks, bool backward) {
    for (const BlockTask& task : tasks) {
      const TaskCost cost = CostOf(task, schedule_, rank_, o_, backward);
      Busy(cost.seconds, backward ? "bwd block" : "fwd block", [&] {
        return absl::StrFormat(
            "\"q\": \"%s\", \"k\": \"%s\", \"kv_heads\": \"[%d, %d)\", "
            "\"GFLOP\": %.3f",
            task.q.DebugString(), task.k.DebugString(), task.kv_head_begin, task.kv_head_end,
            cost.flops * 1e-9);
      });
      ++clock_->tasks;
    }
  }
  // ring-flash-attention's work around the kernel call of one step, as its
  // code does it (ring_flash_attn/{ring,zigzag_ring,stripe}_flash_attn.py,
  // zigzag_ring_flash_attn_varlen.py, llama3_flash_attn_varlen.py, utils.py),
  // in bytes through HBM per element of q (Q) or of k + v (KV), each kind of
  // op timed alone on one GPU (below):
  //   merge O (update_out_and_lse) of every step after the first, which
  //     casts; zigzag, step > rank: only the second half of q computes and
  //     its O, LSE are a slice, merged and written back; varlen gathers the
  //     half by a boolean index (out[half_index1]) and scatters it back;
  //     stripe, step > rank: q[:, 1:] against k[:, :-1], a shifted slice
  //   zigzag varlen, 0 < step <= rank: k[half_index0], v[half_index0]
  //     gather the first halves (r2 w2 per element of the half)
  //   backward: dq += block_dq (fp32 += bf16), dk = block_dk + dk; zigzag
  //     adds half of dK/dV (step <= rank) or of dQ (step > rank); varlen
  //     zigzag through boolean indices
  //   llama3: no merge (one call per head group over all gathered keys);
  //     backward copies each group's K/V into a contiguous buffer and its
  //     dK/dV out of one (r2 w2 each, 8 B per element)
  // Boolean-mask indexing with the seed's host-side masks copies the index
  // to the GPU with a blocking copy, so the host waits for the GPU, and the
  // GPU idles while the host dispatches the next ops: host_sync_us each.
  // Steps without tasks (the contiguous ring, causal, past the diagonal)
  // do nothing in the seed.
  void SeedPasses(absl::Span<const BlockTask> tasks, const KvBlock& kv, bool backward, int step) {
    if (tasks.empty()) return;
    const Layout& layout = schedule_.layout();
    const int r = layout.RingRank(rank_);
    const bool varlen = layout.varlen();
    const int64_t q = q_elements_;
    const int64_t all_kv = KvElements(0, o_.shape.num_kv_heads);
    // HBM bytes per element (at hbm_GBps) of the seed's eager ops, measured
    // one at a time by bench/seed_step_replay.py on an H100 (torch 2.11,
    // whose TorchScript fuser fuses the merge: 15 B, not the 38 B of its
    // ops unfused), bf16 8192 x 32 x 128:
    constexpr double kMerge = 15.1;         // O, LSE of all rows
    constexpr double kMergeHalf = 32.6;     // a half of the rows + write-back, per element of it
    constexpr double kMergeShifted = 30.8;  // rows 1: + write-back (stripe)
    constexpr double kAddQ = 13.9;          // dq += bf16 block (slice or not)
    constexpr double kAddKv = 16.0;         // dk = bf16 block + dk
    constexpr double kAddKvSlice = 15.2;    // dk[:, :-1] += (stripe), dk[:, :half] += (zigzag)
    constexpr double kCast = 6;             // the first step's fp32 casts
    double bytes = 0;
    int syncs = 0;
    switch (layout.kind()) {
      case LayoutKind::kLlama3:
        if (backward) bytes = 8.0 * KvElements(kv.head_begin, kv.head_end);
        break;
      case LayoutKind::kRing:
        bytes = step == 0  ? kCast * (q + (backward ? all_kv : 0))
                : backward ? kAddQ * q + kAddKv * all_kv
                           : kMerge * q;
        break;
      case LayoutKind::kStripe:
        bytes = step == 0  ? kCast * (q + (backward ? all_kv : 0))
                : backward ? kAddQ * q + (step > r ? kAddKvSlice : kAddKv) * all_kv
                           : (step > r ? kMergeShifted : kMerge) * q;
        break;
      case LayoutKind::kZigzag:
        if (step == 0) {
          bytes = kCast * (q + (backward ? all_kv : 0));
        } else if (step <= r) {
          bytes = backward ? kAddQ * q + kAddKvSlice * all_kv / 2 : kMerge * q;
          if (varlen) {
            bytes += 2.0 * all_kv;  // k[half_index0], v[half_index0]
            syncs += 2;
            if (backward) syncs += 2;  // dk[half_index0] +=, dv alike
          }
        } else {
          // varlen gathers the half by a boolean index (out[half_index1]:
          // 8 B more per element; not measured)
          bytes =
              backward ? kAddQ * q / 2 + kAddKv * all_kv : (kMergeHalf + (varlen ? 8 : 0)) * q / 2;
          if (varlen) syncs += backward ? 1 : 4;  // out, lse: gather, scatter
        }
        break;
    }
    if (bytes > 0) {
      Memory(backward ? "seed: merge dQ dK dV" : "seed: merge O", static_cast<int64_t>(bytes));
    }
    if (syncs > 0) {
      Busy(syncs * 1e-6 * o_.calibration.host_sync_us, "seed: host syncs",
           [&] { return absl::StrCat("\"syncs\": ", syncs); });
    }
  }
  void Memory(const char* what, int64_t bytes) {
    Busy(bytes / (1e9 * o_.calibration.hbm_gbps) + 1e-6 * o_.calibration.launch_us, what,
         [&] { return absl::StrCat("\"bytes\": ", bytes); });
  }
  template <typename Args>
  void Busy(double seconds, const char* name, Args&& args) {
    if (clock_->trace) {
      clock_->events.push_back({clock_->now, clock_->now + seconds, 0, name, args()});
    }
    clock_->now += seconds;
    clock_->compute += seconds;
  }

  const Schedule& schedule_;
  int rank_;
  const SimOptions& o_;
  RankClock* clock_;
  int64_t rows_ = 0, batch_ = 0, q_elements_ = 0;
  int64_t base_bytes_ = 0, backward_bytes_ = 0;
  int forward_step_ = 0, backward_step_ = 0;
  std::map<int, int64_t> slots_;
};

std::string TraceJson(SimNetwork& net, int world) {
  std::string out = "{\"displayTimeUnit\": \"ms\", \"traceEvents\": [\n";
  bool first = true;
  for (int r = 0; r < world; ++r) {
    for (int lane = 0; lane < 2; ++lane) {
      absl::StrAppendFormat(&out,
                            "%s{\"name\": \"thread_name\", \"ph\": \"M\", \"pid\": %d, "
                            "\"tid\": %d, \"args\": {\"name\": \"%s\"}}",
                            first ? "" : ",\n", r, lane, lane == 0 ? "compute" : "comm");
      first = false;
    }
    absl::StrAppendFormat(&out,
                          ",\n{\"name\": \"process_name\", \"ph\": \"M\", "
                          "\"pid\": %d, \"args\": {\"name\": \"rank %d\"}}",
                          r, r);
    for (const Event& e : net.clock(r).events) {
      absl::StrAppendFormat(&out,
                            ",\n{\"name\": \"%s\", \"ph\": \"X\", \"pid\": %d, \"tid\": %d, "
                            "\"ts\": %.3f, \"dur\": %.3f, \"args\": {%s}}",
                            e.name, r, e.lane, 1e6 * e.start_s, 1e6 * (e.end_s - e.start_s),
                            e.args);
    }
  }
  absl::StrAppend(&out, "\n]}\n");
  return out;
}

}  // namespace

absl::StatusOr<SimResult> Simulate(const SimOptions& o) {
  ASSIGN_OR_RETURN(Schedule schedule, Schedule::Build(o.layout, o.mask, o.shape));
  const int world = schedule.layout().world();
  // One thread per simulated rank.
  constexpr int kMaxWorld = 8192;
  if (world > kMaxWorld) {
    return absl::InvalidArgumentError(
        absl::StrCat("world ", world,
                     " is more simulated ranks than the simulator runs; "
                     "expected at most ",
                     kMaxWorld));
  }
  const int per_node = o.gpus_per_node == 0 ? world : o.gpus_per_node;
  if (per_node < 1 || world % per_node != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("gpus_per_node ", o.gpus_per_node, " does not divide world ", world));
  }

  SimNetwork net(world);
  std::vector<absl::Status> statuses(world);
  std::vector<RankSummary> ranks(world);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      RankClock& clock = net.clock(r);
      clock.trace = o.trace;
      clock.defer_sends = o.seed_implementation;
      SimCommunicator comm(&net, r, world, o.calibration, per_node);
      SimBackend backend(schedule, r, o, &clock);
      absl::StatusOr<RingRunStats> fwd = RunRingForward(schedule, comm, backend);
      if (!fwd.ok()) {
        statuses[r] = fwd.status();
        return;
      }
      ranks[r].forward_end_s = clock.now;
      if (o.backward) {
        BackwardOptions options;
        options.forward_kv = fwd->last_kv;
        options.own_block_first = o.seed_implementation;  // as ring-flash-attention
        absl::StatusOr<RingRunStats> bwd = RunRingBackward(schedule, comm, backend, options);
        if (!bwd.ok()) {
          statuses[r] = bwd.status();
          return;
        }
      }
      ranks[r].end_s = clock.now;
      ranks[r].compute_s = clock.compute;
      ranks[r].exposed_comm_s = clock.exposed;
      ranks[r].tasks = clock.tasks;
      ranks[r].peak_bytes = backend.peak_bytes();
    });
  }
  for (std::thread& t : threads) t.join();
  for (const absl::Status& s : statuses) {
    if (!s.ok() && s.code() != absl::StatusCode::kAborted) {
      return absl::InternalError(absl::StrCat("simulation failed: ", s.message()));
    }
  }
  SimResult result;
  result.ranks = ranks;
  double compute = 0;
  for (const RankSummary& r : ranks) {
    result.forward_s = std::max(result.forward_s, r.forward_end_s);
    result.iteration_s = std::max(result.iteration_s, r.end_s);
    compute += r.compute_s;
    result.tasks += r.tasks;
  }
  result.ideal_s = compute / world;
  result.efficiency = result.iteration_s > 0 ? result.ideal_s / result.iteration_s : 1;
  if (o.trace) result.trace_json = TraceJson(net, world);
  return result;
}

absl::StatusOr<double> KernelSeconds(const SimOptions& o) {
  ASSIGN_OR_RETURN(Schedule schedule, Schedule::Build({}, o.mask, o.shape));
  ASSIGN_OR_RETURN(std::vector<BlockTask> tasks, schedule.Tasks(0, 0));
  double seconds = 0;
  for (const BlockTask& task : tasks) {
    seconds += CostOf(task, schedule, 0, o, false).seconds;
    if (o.backward) seconds += CostOf(task, schedule, 0, o, true).seconds;
  }
  return seconds;
}

std::string FormatSummary(const SimOptions& o, const SimResult& r) {
  std::string out = absl::StrFormat(
      "simulated %s, world %d, %s, %s, %s on %s (%s)\n"
      "  iteration %.3f ms (forward %.3f ms), ideal %.3f ms, efficiency %.1f%%, "
      "%d block tasks\n",
      LayoutKindName(o.layout.kind), o.layout.world, o.shape.DebugString(),
      o.mask.causal ? "causal" : "full", DTypeName(o.dtype), o.calibration.gpu,
      o.backward ? "fwd+bwd" : "fwd", 1e3 * r.iteration_s, 1e3 * r.forward_s, 1e3 * r.ideal_s,
      100 * r.efficiency, r.tasks);
  double max_compute = 0, sum_compute = 0, max_exposed = 0, sum_exposed = 0;
  int64_t peak = 0;
  for (const RankSummary& s : r.ranks) {
    max_compute = std::max(max_compute, s.compute_s);
    sum_compute += s.compute_s;
    max_exposed = std::max(max_exposed, s.exposed_comm_s);
    sum_exposed += s.exposed_comm_s;
    peak = std::max(peak, s.peak_bytes);
  }
  const double n = static_cast<double>(r.ranks.size());
  absl::StrAppendFormat(&out,
                        "  exposed comm: mean %.3f ms, max %.3f ms; compute imbalance (max/mean) "
                        "%.3f; peak memory per rank %.1f MiB\n",
                        1e3 * sum_exposed / n, 1e3 * max_exposed, max_compute / (sum_compute / n),
                        peak / 1048576.0);
  absl::StrAppend(&out, "  rank   compute_ms  exposed_ms  idle_ms  peak_MiB\n");
  const size_t shown = std::min<size_t>(r.ranks.size(), 16);
  for (size_t i = 0; i < shown; ++i) {
    const RankSummary& s = r.ranks[i];
    absl::StrAppendFormat(&out, "  %4d %12.3f %11.3f %8.3f %9.1f\n", i, 1e3 * s.compute_s,
                          1e3 * s.exposed_comm_s, 1e3 * (r.iteration_s - s.compute_s),
                          s.peak_bytes / 1048576.0);
  }
  if (shown < r.ranks.size()) {
    absl::StrAppendFormat(&out, "  ... (%d ranks)\n", r.ranks.size());
  }
  return out;
}

}  // namespace ringattn::sim
