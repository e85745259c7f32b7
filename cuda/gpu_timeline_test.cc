#include "cuda/gpu_timeline.h"

#include <cuda_runtime.h>

#include "cuda/device.h"
#include "gtest/gtest.h"

namespace ringattn::cuda {
namespace {

TEST(GpuTimelineTest, FormatsEveryMark) {  // runs without a GPU too
  EXPECT_EQ(FormatTimeline({{"start", 0, 0}, {"the forward kernel", 0.0876, 0.0124}}),
            "start 0.000 (0.000); the forward kernel 0.088 (0.012)");
  EXPECT_EQ(FormatTimeline({}), "");
}

TEST(GpuTimelineTest, ReadWithoutMarksIsEmpty) {  // no CUDA call: runs without a GPU too
  GpuTimeline timeline;
  absl::StatusOr<std::vector<GpuTimeline::Entry>> entries = timeline.Read();
  ASSERT_TRUE(entries.ok()) << entries.status();
  EXPECT_TRUE(entries->empty());
}

// A copy between two marks takes GPU time; the marks come back in order,
// their times never decreasing, and the events are reused after Read().
TEST(GpuTimelineTest, MarksTimeTheWorkBetweenThem) {
  if (absl::StatusOr<int> n = DeviceCount(); !n.ok()) {
    GTEST_SKIP() << "no CUDA device: " << n.status().message();
  }
  constexpr size_t kBytes = size_t{256} << 20;
  void *a = nullptr, *b = nullptr;
  ASSERT_EQ(cudaMalloc(&a, kBytes), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&b, kBytes), cudaSuccess);
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  GpuTimeline timeline;
  for (int round = 0; round < 2; ++round) {
    ASSERT_TRUE(timeline.Mark(stream, "start").ok());
    ASSERT_EQ(cudaMemcpyAsync(b, a, kBytes, cudaMemcpyDeviceToDevice, stream), cudaSuccess);
    ASSERT_TRUE(timeline.Mark(stream, "copy").ok());
    EXPECT_EQ(timeline.size(), 2);
    absl::StatusOr<std::vector<GpuTimeline::Entry>> entries = timeline.Read();
    ASSERT_TRUE(entries.ok()) << entries.status();
    ASSERT_EQ(entries->size(), 2u);
    EXPECT_EQ((*entries)[0].label, "start");
    EXPECT_EQ((*entries)[0].gpu_ms, 0);
    EXPECT_EQ((*entries)[1].label, "copy");
    // 512 MiB moved: more than 20 us at any HBM's rate, less than a second.
    EXPECT_GT((*entries)[1].gpu_ms, 0.02);
    EXPECT_LT((*entries)[1].gpu_ms, 1000);
    EXPECT_GE((*entries)[1].host_ms, 0);
    EXPECT_EQ(timeline.size(), 0);
  }
  cudaStreamDestroy(stream);
  cudaFree(a);
  cudaFree(b);
}

}  // namespace
}  // namespace ringattn::cuda
