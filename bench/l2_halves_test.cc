#include "bench/l2_halves.h"

#include <cuda_runtime_api.h>

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ringattn::bench {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(SplitSmsByLatencyTest, TwoGroupsByTheLargestGap) {
  // SMs 0, 2, 3 near (~260 cycles), 1 and 4 far (~360); SM 5 not measured.
  const auto h = SplitSmsByLatency({{0, 258}, {1, 361}, {2, 262}, {3, 260}, {4, 355}}, 6);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_THAT(h->half, ElementsAre(0, 1, 0, 0, 1, -1));
  EXPECT_DOUBLE_EQ(h->near_cycles, 260.0);
  EXPECT_DOUBLE_EQ(h->far_cycles, 358.0);
  EXPECT_DOUBLE_EQ(h->separation, (355.0 - 262.0) / 6.0);  // spreads 4 and 6
}

// The H200's shape: 33 cycles within the near half, 25.5 within the far
// one, a 53-cycle gap between them (separation 1.61; the H200's own 1.57).
TEST(SplitSmsByLatencyTest, HalvesWiderThanTheirGapApartStillSplit) {
  const auto h = SplitSmsByLatency(
      {{0, 276.6}, {1, 290.0}, {2, 362.6}, {3, 388.1}, {4, 309.6}, {5, 375.2}}, 6);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_THAT(h->half, ElementsAre(0, 0, 1, 1, 0, 1));
  EXPECT_NEAR(h->separation, (362.6 - 309.6) / (309.6 - 276.6), 1e-12);
  // The same points under a stricter threshold: not two groups.
  EXPECT_EQ(SplitSmsByLatency({{0, 276.6}, {1, 290.0}, {2, 362.6}, {3, 388.1}, {4, 309.6}}, 5, 3.0)
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(SplitSmsByLatencyTest, OneGroupIsNotSplit) {
  const auto h = SplitSmsByLatency({{0, 260}, {1, 262}, {2, 270}, {3, 266}}, 4);
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(h.status().message()), HasSubstr("no two latency groups"));
}

TEST(SplitSmsByLatencyTest, BadMeasurements) {
  EXPECT_EQ(SplitSmsByLatency({{0, 260}}, 1).status().code(), absl::StatusCode::kInvalidArgument);
  const auto out_of_range = SplitSmsByLatency({{0, 260}, {7, 300}}, 4);
  EXPECT_THAT(std::string(out_of_range.status().message()), HasSubstr("SM id 7 outside [0, 4)"));
  const auto twice = SplitSmsByLatency({{1, 260}, {1, 300}}, 4);
  EXPECT_THAT(std::string(twice.status().message()), HasSubstr("SM 1 measured twice"));
  const auto negative = SplitSmsByLatency({{0, 260}, {1, -3}}, 4);
  EXPECT_THAT(std::string(negative.status().message()), HasSubstr("not a positive number"));
}

// On a GPU: every SM measured once, in two groups of about half each.
// Without one: Unavailable.
TEST(ProbeL2LatencyTest, MeasuresEverySmOrSaysWhyNot) {
  int devices = 0;
  const bool gpu = cudaGetDeviceCount(&devices) == cudaSuccess && devices > 0;
  cudaGetLastError();
  const auto latencies = ProbeL2Latency(64);
  if (!gpu) {
    ASSERT_FALSE(latencies.ok());
    EXPECT_EQ(latencies.status().code(), absl::StatusCode::kUnavailable);
    return;
  }
  ASSERT_TRUE(latencies.ok()) << latencies.status();
  int sms = 0;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  ASSERT_EQ(static_cast<int>(latencies->size()), sms);
  const auto halves = SplitSmsByLatency(*latencies, sms);
  ASSERT_TRUE(halves.ok()) << halves.status();
  int far = 0;
  for (int h : halves->half) far += h == 1;
  EXPECT_GT(far, sms / 4);
  EXPECT_LT(far, 3 * sms / 4);
  EXPECT_LT(halves->near_cycles, halves->far_cycles);
  EXPECT_EQ(ProbeL2Latency(0).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ringattn::bench
