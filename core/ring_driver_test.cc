// The ring driver alone, with a backend that computes nothing: its K/V is
// one float per kv head holding the owner's rank, its dK/dV count the
// contributions, and every backend call and every transfer goes into one
// log per rank. The tests check which block each step computes on, that
// every dK/dV sum gets one contribution per ring member, and the order of
// sends, receives and computes (what device communicators depend on).
#include "core/ring_driver.h"

#include <array>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "comm/thread_communicator.h"
#include "core/schedule.h"
#include "core/status_macros.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ringattn {
namespace {

using Log = std::vector<std::string>;

std::string TagName(int tag) {
  switch (tag) {
    case kTagKv:
      return "kv";
    case kTagDkv:
      return "dkv";
    default:
      return absl::StrCat("tag", tag);
  }
}

// Forwards to a communicator and logs point-to-point traffic and batches.
class LoggingCommunicator : public Communicator {
 public:
  LoggingCommunicator(Communicator& inner, Log& log) : inner_(inner), log_(log) {}
  int rank() const override { return inner_.rank(); }
  int world() const override { return inner_.world(); }
  std::unique_ptr<Request> Send(int peer, int tag, absl::Span<const uint8_t> data) override {
    log_.push_back(absl::StrCat("send ", TagName(tag), " to ", peer));
    return inner_.Send(peer, tag, data);
  }
  std::unique_ptr<Request> Recv(int peer, int tag, absl::Span<uint8_t> data) override {
    log_.push_back(absl::StrCat("recv ", TagName(tag), " from ", peer));
    return inner_.Recv(peer, tag, data);
  }
  void Abort(const absl::Status& reason) override { inner_.Abort(reason); }
  void StartBatch() override { log_.push_back("batch"); }
  void EndBatch() override { log_.push_back("end batch"); }
  absl::Status Synchronize() override { return inner_.Synchronize(); }
  std::unique_ptr<Request> StartAllGather(absl::Span<const int> group,
                                          absl::Span<const uint8_t> send,
                                          absl::Span<uint8_t> recv) override {
    log_.push_back("all-gather");
    return inner_.StartAllGather(group, send, recv);
  }
  absl::Status ReduceScatterSum(absl::Span<const int> group, absl::Span<const float> send,
                                absl::Span<float> recv) override {
    log_.push_back("reduce-scatter");
    return inner_.ReduceScatterSum(group, send, recv);
  }

 private:
  Communicator& inner_;
  Log& log_;
};

// One float per kv head, K and V alike: the owner's rank (K/V) or the
// number of contributions (dK/dV).
class FakeBackend : public RingBackend {
 public:
  // own_kv: offers its K and V unpacked (OwnKv), one float each.
  FakeBackend(int rank, Log& log, bool own_kv = false)
      : rank_(rank), log_(log), own_kv_(own_kv), own_{float(rank), float(rank)} {}

  int64_t KvElements(int64_t head_begin, int64_t head_end) const override {
    return head_end - head_begin;
  }
  DType kv_dtype() const override { return DType::kFloat32; }
  DType grad_dtype() const override { return DType::kFloat32; }
  absl::StatusOr<absl::Span<uint8_t>> Buffer(int slot, int64_t bytes) override {
    std::vector<uint8_t>& b = buffers_[slot];
    if (static_cast<int64_t>(b.size()) < bytes) b.resize(bytes);
    return absl::MakeSpan(b).subspan(0, bytes);
  }
  // Sets dst to src + 1 where the last backward step left it unwritten.
  absl::Status Accumulate(absl::Span<uint8_t> dst, absl::Span<const uint8_t> src) override {
    log_.push_back("accumulate");
    for (size_t i = 0; i < dst.size() / 4; ++i) {
      Floats(dst)[i] = (set_by_accumulate_ ? 1 : Floats(dst)[i]) + Floats(src)[i];
    }
    set_by_accumulate_ = false;
    return absl::OkStatus();
  }
  absl::Status PackKv(int64_t head_begin, int64_t head_end, absl::Span<uint8_t> out) override {
    log_.push_back("pack");
    for (int64_t h = 0; h < head_end - head_begin; ++h) Floats(out)[h] = rank_;
    return absl::OkStatus();
  }
  std::optional<OwnKvSpans> OwnKv() const override {
    if (!own_kv_) return std::nullopt;
    const auto* own = reinterpret_cast<const uint8_t*>(own_);
    return OwnKvSpans{absl::MakeConstSpan(own, 4), absl::MakeConstSpan(own + 4, 4)};
  }
  absl::Status ForwardStep(absl::Span<const BlockTask> tasks, const KvBlock& kv) override {
    log_.push_back(absl::StrCat("forward on ", Owners(kv)));
    return absl::OkStatus();
  }
  absl::Status FinishForward() override {
    log_.push_back("finish forward");
    return absl::OkStatus();
  }
  absl::Status StartBackward() override { return absl::OkStatus(); }
  // One contribution to every row; with kSetByNextAccumulate the rows are
  // left unwritten (NaN), for the next Accumulate to set (a NaN in a
  // finished sum: the driver asked for it where no sum arrives), and the
  // log says "+ sum".
  absl::Status BackwardStep(absl::Span<const BlockTask> tasks, const KvBlock& kv,
                            absl::Span<uint8_t> dkv, UnwrittenDkv unwritten) override {
    set_by_accumulate_ = unwritten == UnwrittenDkv::kSetByNextAccumulate;
    log_.push_back(absl::StrCat("backward on ", Owners(kv), set_by_accumulate_ ? " + sum" : ""));
    for (size_t i = 0; i < dkv.size() / 4; ++i) {
      Floats(dkv)[i] = set_by_accumulate_ ? std::numeric_limits<float>::quiet_NaN() : 1;
    }
    return absl::OkStatus();
  }
  absl::Status AddOwnDkv(int64_t head_begin, int64_t head_end,
                         absl::Span<const uint8_t> dkv) override {
    std::vector<std::string> counts;
    for (int64_t h = 0; h < head_end - head_begin; ++h) {
      counts.push_back(absl::StrCat(Floats(dkv)[h]));
    }
    log_.push_back(absl::StrCat("own dkv of heads ", head_begin, "-", head_end, " = ",
                                absl::StrJoin(counts, ",")));
    return absl::OkStatus();
  }

 private:
  static float* Floats(absl::Span<uint8_t> b) { return reinterpret_cast<float*>(b.data()); }
  static const float* Floats(absl::Span<const uint8_t> b) {
    return reinterpret_cast<const float*>(b.data());
  }
  // The owner of each shard of a visiting block.
  std::string Owners(const KvBlock& kv) const {
    const int64_t per_shard = kv.head_end - kv.head_begin;
    std::vector<int> owners;
    for (int r = 0; r < kv.ranks; ++r) {
      owners.push_back(static_cast<int>(Floats(kv.data)[r * per_shard]));
    }
    return absl::StrJoin(owners, ",");
  }

  int rank_;
  Log& log_;
  bool own_kv_;
  float own_[2];  // K and V of the (two) kv heads, unpacked
  std::map<int, std::vector<uint8_t>> buffers_;
  bool set_by_accumulate_ = false;  // the last backward step's rows await Accumulate
};

struct RingLogs {
  std::vector<Log> logs;
  std::vector<absl::Status> status;
};

// Forward, then backward, on every rank (threads).
RingLogs RunRing(const Schedule& schedule, const BackwardOptions& options, bool reuse_forward_kv,
                 bool own_kv = false) {
  const int world = schedule.layout().world();
  RingLogs run;
  run.logs.resize(world);
  run.status = comm::ThreadWorld::Run(world, absl::Seconds(20), [&](Communicator& c) {
    Log& log = run.logs[c.rank()];
    LoggingCommunicator comm(c, log);
    FakeBackend backend(c.rank(), log, own_kv);
    ASSIGN_OR_RETURN(RingRunStats forward, RunRingForward(schedule, comm, backend));
    log.push_back("--");
    BackwardOptions o = options;
    if (reuse_forward_kv) o.forward_kv = forward.last_kv;
    return RunRingBackward(schedule, comm, backend, o).status();
  });
  return run;
}

Schedule MakeSchedule(LayoutSpec spec, int64_t kv_heads = 2) {
  absl::StatusOr<Schedule> s = Schedule::Build(spec, {.causal = true}, {1, 96, 96, 4, kv_heads, 8});
  EXPECT_TRUE(s.ok()) << s.status();
  return *std::move(s);
}

// The entries of `log` between `from` (inclusive) and the next "--" or end.
Log Part(const Log& log, bool backward) {
  Log out;
  bool in = !backward;
  for (const std::string& e : log) {
    if (e == "--") {
      if (in) break;
      in = true;
      continue;
    }
    if (in) out.push_back(e);
  }
  return out;
}

// A pattern's entries for a backend that packs (own_kv false) or offers
// its K/V unpacked: "PACK" is the own block's packing (then absent), an
// entry "OWN:x" a transfer of the own block (then two: K and V).
Log Expand(const Log& pattern, bool own_kv) {
  Log out;
  for (const std::string& e : pattern) {
    if (e == "PACK") {
      if (!own_kv) out.push_back("pack");
    } else if (absl::StartsWith(e, "OWN:")) {
      for (int i = 0; i < (own_kv ? 2 : 1); ++i) out.push_back(e.substr(4));
    } else {
      out.push_back(e);
    }
  }
  return out;
}

// Runs the forward, then the backward, with a backend that packs and one
// that offers its K/V unpacked, and compares one pass's log of every rank
// with the pattern want(rank, next rank, previous rank).
void ExpectLogs(const Schedule& schedule, const BackwardOptions& options, bool reuse_forward_kv,
                bool backward, const std::function<Log(int, int, int)>& want) {
  const int world = schedule.layout().world();
  for (bool own_kv : {false, true}) {
    const RingLogs run = RunRing(schedule, options, reuse_forward_kv, own_kv);
    for (int r = 0; r < world; ++r) {
      ASSERT_TRUE(run.status[r].ok()) << run.status[r];
      EXPECT_EQ(Part(run.logs[r], backward),
                Expand(want(r, (r + 1) % world, (r + world - 1) % world), own_kv))
          << "rank " << r << (own_kv ? ", own K/V" : ", packed");
    }
  }
}

std::string Of(absl::string_view what, int rank) { return absl::StrCat(what, rank); }

TEST(RingDriverTest, RingPassForwardSendsOnWhileComputing) {
  ExpectLogs(MakeSchedule({.kind = LayoutKind::kZigzag, .world = 3}), {}, true, false,
             [](int r, int next, int prev) {
               return Log{"PACK",
                          "batch",
                          Of("OWN:send kv to ", next),
                          Of("OWN:recv kv from ", prev),
                          "end batch",
                          Of("forward on ", r),
                          "batch",
                          Of("send kv to ", next),
                          Of("recv kv from ", prev),
                          "end batch",
                          Of("forward on ", prev),
                          Of("forward on ", next),
                          "finish forward"};
             });
}

// Starts on the forward's last block (held: no fetch), K/V and partial sums
// move to the previous rank, the own block comes last.
TEST(RingDriverTest, OwnBlockLastBackwardEndsAtHomeWithNoTransferAfterTheLastCompute) {
  ExpectLogs(MakeSchedule({.kind = LayoutKind::kZigzag, .world = 3}), {}, true, true,
             [](int r, int next, int prev) {
               return Log{"batch",
                          Of("send kv to ", prev),
                          Of("recv kv from ", next),
                          "end batch",
                          Of("backward on ", next),
                          "batch",
                          Of("recv dkv from ", next),
                          Of("send dkv to ", prev),
                          "end batch",
                          Of("backward on ", prev) + " + sum",
                          "accumulate",
                          "PACK",
                          "batch",
                          Of("recv dkv from ", next),
                          Of("send dkv to ", prev),
                          "end batch",
                          Of("backward on ", r) + " + sum",
                          "accumulate",
                          "own dkv of heads 0-2 = 3,3"};
             });
}

TEST(RingDriverTest, OwnBlockLastBackwardFetchesTheFirstBlockWithoutTheForwardsBuffers) {
  ExpectLogs(MakeSchedule({.kind = LayoutKind::kRing, .world = 2}), {}, false, true,
             [](int r, int next, int) {
               return Log{"PACK",
                          "batch",
                          Of("OWN:send kv to ", next),
                          Of("OWN:recv kv from ", next),
                          "end batch",
                          "batch",
                          "end batch",
                          Of("backward on ", next),
                          "PACK",
                          "batch",
                          Of("recv dkv from ", next),
                          Of("send dkv to ", next),
                          "end batch",
                          Of("backward on ", r) + " + sum",
                          "accumulate",
                          "own dkv of heads 0-2 = 2,2"};
             });
}

TEST(RingDriverTest, ClassicBackwardStartsAtHomeAndSendsTheSumsHomeLast) {
  ExpectLogs(MakeSchedule({.kind = LayoutKind::kRing, .world = 3}), {.own_block_first = true}, true,
             true, [](int r, int next, int prev) {
               return Log{"PACK",
                          "batch",
                          Of("OWN:send kv to ", next),
                          Of("OWN:recv kv from ", prev),
                          "end batch",
                          Of("backward on ", r),
                          "batch",
                          Of("recv dkv from ", prev),
                          Of("send dkv to ", next),
                          Of("send kv to ", next),
                          Of("recv kv from ", prev),
                          "end batch",
                          Of("backward on ", prev) + " + sum",
                          "accumulate",
                          "batch",
                          Of("recv dkv from ", prev),
                          Of("send dkv to ", next),
                          "end batch",
                          Of("backward on ", next) + " + sum",
                          "accumulate",
                          "batch",
                          Of("recv dkv from ", prev),
                          Of("send dkv to ", next),
                          "end batch",
                          "own dkv of heads 0-2 = 3,3"};
             });
}

TEST(RingDriverTest, AllGatherPrefetchesTheNextHeadGroupAndReducesEachGroup) {
  // llama3, one kv head per group: two steps of all-gathered K/V.
  const Schedule schedule =
      MakeSchedule({.kind = LayoutKind::kLlama3, .world = 2, .kv_heads_per_group = 1});
  const RingLogs run = RunRing(schedule, {}, true);
  for (int r = 0; r < 2; ++r) {
    ASSERT_TRUE(run.status[r].ok()) << run.status[r];
    EXPECT_THAT(Part(run.logs[r], false),
                ::testing::ElementsAre("pack", "all-gather", "pack", "all-gather", "forward on 0,1",
                                       "forward on 0,1", "finish forward"))
        << "rank " << r;
    EXPECT_THAT(
        Part(run.logs[r], true),
        ::testing::ElementsAre("pack", "all-gather", "pack", "all-gather", "backward on 0,1",
                               "reduce-scatter", "own dkv of heads 0-1 = 2", "backward on 0,1",
                               "reduce-scatter", "own dkv of heads 1-2 = 2"))
        << "rank " << r;
  }
}

// A communicator whose final Synchronize() takes `wait`: the pass's stats
// put that time in synchronize_seconds, inside total_seconds.
class SlowSynchronizeCommunicator : public LoggingCommunicator {
 public:
  SlowSynchronizeCommunicator(Communicator& inner, Log& log, absl::Duration wait)
      : LoggingCommunicator(inner, log), wait_(wait) {}
  absl::Status Synchronize() override {
    absl::SleepFor(wait_);
    return LoggingCommunicator::Synchronize();
  }

 private:
  absl::Duration wait_;
};

TEST(RingDriverTest, StatsSplitTheFinalWaitFromTheRest) {
  const Schedule schedule = MakeSchedule({.kind = LayoutKind::kZigzag, .world = 2});
  std::vector<RingRunStats> stats(2);
  const std::vector<absl::Status> status =
      comm::ThreadWorld::Run(2, absl::Seconds(5), [&](Communicator& c) -> absl::Status {
        Log log;
        FakeBackend backend(c.rank(), log);
        SlowSynchronizeCommunicator slow(c, log, absl::Milliseconds(30));
        ASSIGN_OR_RETURN(stats[c.rank()], RunRingForward(schedule, slow, backend));
        return absl::OkStatus();
      });
  for (int r = 0; r < 2; ++r) {
    ASSERT_TRUE(status[r].ok()) << status[r];
    EXPECT_GE(stats[r].synchronize_seconds, 0.030) << "rank " << r;
    EXPECT_LE(stats[r].synchronize_seconds, stats[r].total_seconds) << "rank " << r;
    // The rest (enqueuing a fake pass) takes far less than the wait.
    EXPECT_LT(stats[r].total_seconds - stats[r].synchronize_seconds, 0.030) << "rank " << r;
  }
}

TEST(RingDriverTest, AWorldMismatchIsAnError) {
  const Schedule schedule = MakeSchedule({.kind = LayoutKind::kRing, .world = 2});
  const std::vector<absl::Status> status =
      comm::ThreadWorld::Run(3, absl::Seconds(5), [&](Communicator& c) {
        Log log;
        FakeBackend backend(c.rank(), log);
        return RunRingForward(schedule, c, backend).status();
      });
  for (const absl::Status& s : status) {
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(s.message(), ::testing::HasSubstr("the layout needs 2"));
  }
}

}  // namespace
}  // namespace ringattn
