#include "core/position_run.h"

#include <vector>

#include "gtest/gtest.h"

namespace ringattn {
namespace {

std::vector<PositionRun> Runs() {
  return {PositionRun::Contiguous(5, 12), PositionRun::Strided(3, 7, 4),
          PositionRun::Grouped(2, 12, 3, 8), PositionRun::Grouped(0, 10, 4, 16),
          PositionRun::Strided(0, 1, 9)};
}

TEST(PositionRunTest, CountAtMostMatchesBruteForce) {
  for (const PositionRun& run : Runs()) {
    for (int64_t x = -3; x < 80; ++x) {
      int64_t expected = 0;
      for (int64_t i = 0; i < run.length; ++i) expected += run.At(i) <= x;
      EXPECT_EQ(run.CountAtMost(x), expected) << run.DebugString() << " x=" << x;
    }
  }
}

TEST(PositionRunTest, PositionsIncrease) {
  for (const PositionRun& run : Runs()) {
    for (int64_t i = 1; i < run.length; ++i) EXPECT_LT(run.At(i - 1), run.At(i));
  }
}

TEST(PositionRunTest, SubAndShape) {
  const PositionRun run = PositionRun::Contiguous(10, 8);
  EXPECT_TRUE(run.contiguous());
  EXPECT_EQ(run.Sub(2, 5), PositionRun::Contiguous(12, 3));
  const PositionRun strided = PositionRun::Strided(1, 6, 3);
  EXPECT_FALSE(strided.contiguous());
  EXPECT_EQ(strided.Sub(1, 3).At(1), 7);
  EXPECT_EQ(PositionRun::Grouped(0, 4, 8, 32), PositionRun::Contiguous(0, 4));
  EXPECT_EQ(PositionRun::Grouped(0, 4, 2, 6).At(3), 7);
  EXPECT_EQ(run.DebugString(), "[10, 18)");
}

}  // namespace
}  // namespace ringattn
