// bench::Settle on host "events": a call is a 1-ms sleep, an event the
// time it is recorded. The settle lasts its wall-clock seconds whatever one
// call's first timing said, returns the rate its calls reached, keeps one
// batch queued, and runs nothing when asked for no settle.
#include "bench/settle.h"

#include <chrono>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace ringattn::bench {
namespace {

using Clock = std::chrono::steady_clock;

// Events on the host clock; logs every Record / Synchronize as (kind, slot).
class HostEvents {
 public:
  void Record(int slot) {
    at_[slot] = Clock::now();
    log_.push_back({'r', slot});
  }
  void Synchronize(int slot) { log_.push_back({'s', slot}); }
  float ElapsedMs(int from, int to) {
    return std::chrono::duration<float, std::milli>(at_[to] - at_[from]).count();
  }
  struct Entry {
    char kind;
    int slot;
  };
  const std::vector<Entry>& log() const { return log_; }

 private:
  Clock::time_point at_[3];
  std::vector<Entry> log_;
};

struct SleepingCall {
  int calls = 0;
  void operator()() {
    ++calls;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
};

TEST(Settle, LastsItsSecondsAndReturnsTheRateItReached) {
  HostEvents events;
  SleepingCall call;
  const Clock::time_point begin = Clock::now();
  // One call read 50 ms before the settle (a boosted, throttled or
  // host-bound first call); the calls take ~1 ms.
  const float ms = Settle([&] { call(); }, events, 0.3, 50.0f);
  const double elapsed = std::chrono::duration<double>(Clock::now() - begin).count();
  EXPECT_GE(elapsed, 0.3);
  EXPECT_LT(elapsed, 1.3);  // one batch past the end, and a loaded machine's slack
  EXPECT_GT(ms, 0.95f);     // the sleeps' rate, not the 50 ms given
  EXPECT_LT(ms, 25.0f);
  EXPECT_GT(call.calls, 40);  // counted from 50 ms, 0.3 s would have been 6 calls
}

TEST(Settle, KeepsOneBatchQueuedAndMarksTheSecondHalf) {
  HostEvents events;
  SleepingCall call;
  Settle([&] { call(); }, events, 0.2, 5.0f);  // batches of 4 calls
  const std::vector<HostEvents::Entry>& log = events.log();
  ASSERT_GE(log.size(), 6u);
  EXPECT_EQ(log[0].kind, 'r');  // the mark before the first call
  EXPECT_EQ(log[0].slot, kSettleMark);
  int marks = 0, last_batch_slot = -1;
  for (size_t i = 1; i < log.size(); ++i) {
    if (log[i].kind == 'r' && log[i].slot == kSettleMark) {
      ++marks;
    } else if (log[i].kind == 'r') {
      last_batch_slot = log[i].slot;
    } else if (i + 1 < log.size()) {  // a wait inside the loop: for the batch before the last
      ASSERT_NE(last_batch_slot, -1);
      EXPECT_NE(log[i].slot, last_batch_slot) << "entry " << i;
    }
  }
  EXPECT_EQ(marks, 1);              // the second half's mark, once
  EXPECT_EQ(log.back().kind, 's');  // the end waits for the last batch
  EXPECT_EQ(log.back().slot, last_batch_slot);
  EXPECT_EQ(call.calls % 4, 0);
}

TEST(Settle, NoSettleRunsNothingAndKeepsOneCallsTime) {
  HostEvents events;
  SleepingCall call;
  EXPECT_EQ(Settle([&] { call(); }, events, 0.0, 7.5f), 7.5f);
  EXPECT_EQ(call.calls, 0);
  EXPECT_TRUE(events.log().empty());
}

TEST(Settle, ShorterThanTwoBatchesReturnsTheRateOverAllOfIt) {
  HostEvents events;
  SleepingCall call;
  const float ms = Settle([&] { call(); }, events, 1e-6, 1.0f);  // one batch of 20 calls
  EXPECT_EQ(call.calls, 20);
  EXPECT_GT(ms, 0.95f);
  EXPECT_LT(ms, 25.0f);
}

TEST(SustainedCalls, CoversTheSecondsAndIsAtLeastOne) {
  EXPECT_EQ(SustainedCalls(2.0, 0.5f), 4000);
  EXPECT_EQ(SustainedCalls(2.0, 0.3f), 6667);
  EXPECT_EQ(SustainedCalls(1e-9, 5.0f), 1);
  EXPECT_EQ(SustainedCalls(1.0, 0.0f), 1000000);  // a zero time clamps to 1 us a call
}

// A ring line's untimed passes: 3 without a settle (or without a pass
// time), else the settle's seconds over a pass's, clamped to [3, 100000].
TEST(SettlePasses, CoversTheSettleInWholePasses) {
  EXPECT_EQ(SettlePasses(0, 1e-3), 3);
  EXPECT_EQ(SettlePasses(2, 0), 3);
  EXPECT_EQ(SettlePasses(2, -1), 3);
  EXPECT_EQ(SettlePasses(2, 1e-3), 2000);
  EXPECT_EQ(SettlePasses(1, 0.3), 4);  // 3.33 passes: whole ones, at least the time
  EXPECT_EQ(SettlePasses(1, 2), 3);    // a pass longer than the settle: the warm-up
  EXPECT_EQ(SettlePasses(100, 1e-6), 100000);
}

}  // namespace
}  // namespace ringattn::bench
