#include "comm/poll_backoff.h"

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace ringattn::comm {
namespace {

constexpr absl::Duration kSpin = absl::Milliseconds(50);

TEST(PollBackoffTest, YieldsWhileTheWaitIsYoung) {
  for (absl::Duration waited : {absl::ZeroDuration(), absl::Microseconds(60), absl::Milliseconds(2),
                                absl::Milliseconds(49)}) {
    EXPECT_EQ(PollBackoff::PauseAfter(waited, kSpin), absl::ZeroDuration()) << waited;
  }
}

TEST(PollBackoffTest, SleepsAHundredthOfTheWaitThenAtMostAMillisecond) {
  EXPECT_EQ(PollBackoff::PauseAfter(absl::Milliseconds(50), kSpin), absl::Microseconds(500));
  EXPECT_EQ(PollBackoff::PauseAfter(absl::Milliseconds(80), kSpin), absl::Microseconds(800));
  EXPECT_EQ(PollBackoff::PauseAfter(absl::Milliseconds(100), kSpin), absl::Milliseconds(1));
  EXPECT_EQ(PollBackoff::PauseAfter(absl::Seconds(30), kSpin), absl::Milliseconds(1));
  // Without a spin phase the sleeps start at once, as small as the wait.
  EXPECT_EQ(PollBackoff::PauseAfter(absl::Milliseconds(1), absl::ZeroDuration()),
            absl::Microseconds(10));
}

TEST(PollBackoffTest, PausesReturn) {
  const PollBackoff spinning;
  spinning.Pause();  // a yield
  const PollBackoff sleeping(absl::ZeroDuration());
  const absl::Time before = absl::Now();
  sleeping.Pause();  // a sleep of about 1 % of the wait: microseconds
  EXPECT_LT(absl::Now() - before, absl::Seconds(1));
}

}  // namespace
}  // namespace ringattn::comm
