#include "bench/gpu_energy.h"

#include <cuda_runtime_api.h>

#include <chrono>
#include <string>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ringattn::bench {
namespace {

using ::testing::HasSubstr;

// Without a GPU: Unavailable, naming what is missing. With one (its driver
// brings NVML): a counter in joules that does not run backwards, an SM clock
// in a GPU's range, and a sampler's mean clock in the same range.
TEST(GpuEnergyTest, ReadsTheCounterOrSaysWhyNot) {
  const absl::StatusOr<GpuEnergy> energy = GpuEnergy::ForCurrentDevice();
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    cudaGetLastError();
    ASSERT_FALSE(energy.ok());
    EXPECT_EQ(energy.status().code(), absl::StatusCode::kUnavailable);
    EXPECT_THAT(std::string(energy.status().message()), HasSubstr("no CUDA device"));
    return;
  }
  ASSERT_TRUE(energy.ok()) << energy.status();
  const absl::StatusOr<double> first = energy->Joules();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const absl::StatusOr<double> second = energy->Joules();
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_GT(*first, 0.0);
  EXPECT_GE(*second, *first);
  const absl::StatusOr<unsigned> mhz = energy->SmClockMhz();
  ASSERT_TRUE(mhz.ok()) << mhz.status();
  EXPECT_GT(*mhz, 0u);
  EXPECT_LT(*mhz, 10000u);
  SmClockSampler sampler(*energy, std::chrono::milliseconds(5));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const double mean = sampler.MeanMhz();
  EXPECT_GT(mean, 0.0);
  EXPECT_LT(mean, 10000.0);
  EXPECT_EQ(sampler.MeanMhz(), mean);  // stopped: a second call reads the same samples
}

}  // namespace
}  // namespace ringattn::bench
