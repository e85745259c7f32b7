#include "comm/host_rounds.h"

#include <string>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ringattn::comm {
namespace {

using ::testing::HasSubstr;

// Round r of the timed call sleeps r ms: warm-ups are left out of the
// median, the parts run in order, the median is the upper middle one.
TEST(MedianHostSecondsTest, TimesOnlyTheCallAfterTheWarmUps) {
  std::string order;
  int call = 0;
  const HostRound round{[&] {
                          order += 'b';
                          absl::SleepFor(absl::Milliseconds(30));  // untimed
                          return absl::OkStatus();
                        },
                        [&] {
                          order += 't';
                          absl::SleepFor(absl::Milliseconds(10 * call++));
                          return absl::OkStatus();
                        },
                        [&] {
                          order += 'a';
                          return absl::OkStatus();
                        }};
  // Calls 0 (warm-up), then 10, 20, 30, 40 ms: the upper median is 30.
  const absl::StatusOr<double> s = MedianHostSeconds(1, 4, round);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_GE(*s, 0.030);
  EXPECT_LT(*s, 0.039);
  EXPECT_EQ(order, "btabtabtabtabta");
}

TEST(MedianHostSecondsTest, StopsAtTheFirstErrorAndRejectsBadCounts) {
  int calls = 0;
  const HostRound failing{
      nullptr, [&] { return ++calls == 2 ? absl::InternalError("second call") : absl::OkStatus(); },
      nullptr};
  const absl::StatusOr<double> s = MedianHostSeconds(0, 5, failing);
  EXPECT_TRUE(absl::IsInternal(s.status())) << s.status();
  EXPECT_EQ(calls, 2);
  const HostRound nothing{nullptr, [] { return absl::OkStatus(); }, nullptr};
  EXPECT_THAT(MedianHostSeconds(-1, 1, nothing).status().message(),
              HasSubstr("expected warm-up >= 0, timed >= 1"));
  EXPECT_TRUE(absl::IsInvalidArgument(MedianHostSeconds(0, 0, nothing).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(MedianHostSeconds(0, 1, HostRound{}).status()));
}

}  // namespace
}  // namespace ringattn::comm
