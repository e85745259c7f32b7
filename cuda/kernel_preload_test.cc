// PreloadKernels: every .cu registers its module (checked without a GPU);
// on a GPU under lazy loading, a ring kernel never launched before runs
// beside a kernel that waits for it (without the preload it would wait for
// that kernel to end: docs/measurements/2026-12-04_h200_lazy_loading_and_w1_python.txt).
#include "cuda/kernel_preload.h"

#include <cuda_runtime.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "absl/status/statusor.h"
#include "cuda/device.h"
#include "cuda/kernel_preload_test_spin.h"
#include "cuda/ring_kernels.h"
#include "gtest/gtest.h"

namespace ringattn::cuda {
namespace {

TEST(KernelPreloadTest, EveryLinkedKernelFileRegistersItsModule) {
  // This test's spin kernel and the ring kernels at least (one module per
  // .cu: cuda_library force-includes cuda/kernel_module.cuh).
  EXPECT_GE(RegisteredKernelModules(), 2);
}

TEST(KernelPreloadTest, WithoutAGpuItIsAnErrorNotACrash) {
  if (DeviceCount().ok()) GTEST_SKIP() << "a GPU is here (the next test runs)";
  const absl::StatusOr<KernelPreload> p = PreloadKernels(0);
  EXPECT_FALSE(p.ok());
}

TEST(KernelPreloadTest, ARingKernelNeverLaunchedRunsBesideAKernelThatWaitsForIt) {
  if (absl::StatusOr<int> n = DeviceCount(); !n.ok()) {
    GTEST_SKIP() << "needs a GPU: " << n.status().message();
  }
  const absl::StatusOr<bool> lazy = LazyKernelLoading();
  ASSERT_TRUE(lazy.ok()) << lazy.status();
  if (!*lazy) GTEST_SKIP() << "kernels load eagerly in this process (CUDA_MODULE_LOADING)";
  const auto start = std::chrono::steady_clock::now();
  const absl::StatusOr<KernelPreload> p = PreloadKernels(0);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(p.ok()) << p.status();
  std::printf("PreloadKernels(0): %d modules, %d kernels, %.1f ms (the CUDA context's start too)\n",
              p->modules, p->kernels, ms);
  EXPECT_TRUE(p->lazy);
  EXPECT_EQ(p->modules, RegisteredKernelModules());
  EXPECT_GT(p->kernels, p->modules);  // each module: its anchor and its kernels
  const absl::StatusOr<KernelPreload> again = PreloadKernels(0);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->kernels, p->kernels);

  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
  float* flag = nullptr;
  long long* result = nullptr;
  ASSERT_EQ(cudaMalloc(&flag, sizeof(float)), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&result, 2 * sizeof(long long)), cudaSuccess);
  ASSERT_EQ(cudaMemset(flag, 0, sizeof(float)), cudaSuccess);
  cudaStream_t spinning = nullptr, other = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&spinning, cudaStreamNonBlocking), cudaSuccess);
  ASSERT_EQ(cudaStreamCreateWithFlags(&other, cudaStreamNonBlocking), cudaSuccess);
  constexpr long long kLimitNs = 5'000'000'000;
  ASSERT_EQ(testing::LaunchSpinUntilSet(reinterpret_cast<const unsigned*>(flag), kLimitNs, result,
                                        spinning),
            cudaSuccess);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  // The fill kernel's first launch in this process sets the flag.
  ASSERT_EQ(LaunchFillF32(flag, 1.0f, 1, other), cudaSuccess);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  long long host[2] = {};
  ASSERT_EQ(cudaMemcpy(host, result, sizeof(host), cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(host[0], 1) << "the spinning kernel gave up after " << host[1] * 1e-9
                        << " s: the fill kernel waited for it (loaded lazily)";
  EXPECT_LT(host[1], 2'000'000'000);
  cudaStreamDestroy(spinning);
  cudaStreamDestroy(other);
  cudaFree(flag);
  cudaFree(result);
}

}  // namespace
}  // namespace ringattn::cuda
