// PreloadKernels: every .cu registers its module (checked without a GPU);
// on a GPU under lazy loading, a ring kernel never launched before runs
// beside a kernel that waits for it (without the preload it would wait for
// that kernel to end: docs/measurements/2026-12-04_h200_lazy_loading_and_w1_python.txt).
#include "cuda/kernel_preload.h"

#include <cuda_runtime.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <thread>

#include "absl/status/statusor.h"
#include "cuda/device.h"
#include "cuda/ring_backend.h"
#include "cuda/ring_kernels.h"
#include "cuda/spin_until_set.h"
#include "gtest/gtest.h"

namespace ringattn::cuda {
namespace {

// The ring backend linked in (its factory used), as every binary that runs a
// ring links it: the preload the GPU test times is the backend's.
const RankBackendFactory kBackendFactory = CudaBackendFactory(1);

TEST(KernelPreloadTest, EveryLinkedKernelFileRegistersItsModule) {
  // One module per .cu linked in (cuda_library force-includes
  // cuda/kernel_module.cuh): this test's spin kernel and the ring
  // backend's: ring_kernels.cu, forward_block.cu, backward_delta.cu and
  // cuda/flash's 20 files.
  ASSERT_TRUE(kBackendFactory);
  EXPECT_EQ(RegisteredKernelModules(), 24);
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
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
  float* flag = nullptr;
  long long* result = nullptr;
  ASSERT_EQ(cudaMalloc(&flag, sizeof(float)), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&result, 2 * sizeof(long long)), cudaSuccess);
  cudaStream_t spinning = nullptr, other = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&spinning, cudaStreamNonBlocking), cudaSuccess);
  ASSERT_EQ(cudaStreamCreateWithFlags(&other, cudaStreamNonBlocking), cudaSuccess);
  // The spinning kernel gives up after limit_ns; returns {saw the flag, ns}.
  auto spin_beside = [&](long long limit_ns, auto&& launch_setter) -> std::array<long long, 2> {
    std::array<long long, 2> host = {-1, -1};
    EXPECT_EQ(cudaMemset(flag, 0, sizeof(float)), cudaSuccess);
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    EXPECT_EQ(
        LaunchSpinUntilSet(reinterpret_cast<const unsigned*>(flag), limit_ns, result, spinning),
        cudaSuccess);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_EQ(launch_setter(), cudaSuccess);
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(host.data(), result, sizeof(host), cudaMemcpyDeviceToHost), cudaSuccess);
    return host;
  };
  // Without the preload (reported, not asserted: it is the driver's
  // behaviour): the add kernel's first launch, its flag set from a float 1.
  const float one = 1.0f;
  float* one_d = nullptr;
  ASSERT_EQ(cudaMalloc(&one_d, sizeof(float)), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(one_d, &one, sizeof(float), cudaMemcpyHostToDevice), cudaSuccess);
  const std::array<long long, 2> unloaded =
      spin_beside(1'000'000'000, [&] { return LaunchAddF32(flag, one_d, 1, other); });
  std::printf(
      "without the preload, a ring kernel's first launch beside a spinning kernel: %s "
      "after %.3f s\n",
      unloaded[0] == 1 ? "ran, the spin saw its flag" : "waited, the spin gave up",
      unloaded[1] * 1e-9);

  const auto start = std::chrono::steady_clock::now();
  const absl::StatusOr<KernelPreload> p = PreloadKernels(0);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(p.ok()) << p.status();
  std::printf("PreloadKernels(0): %d modules, %d kernels, %.1f ms\n", p->modules, p->kernels, ms);
  EXPECT_TRUE(p->lazy);
  EXPECT_EQ(p->modules, RegisteredKernelModules());
  EXPECT_GT(p->kernels, p->modules);  // each module: its anchor and its kernels
  const absl::StatusOr<KernelPreload> again = PreloadKernels(0);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->kernels, p->kernels);

  // The fill kernel's first launch in this process sets the flag.
  const std::array<long long, 2> host =
      spin_beside(5'000'000'000, [&] { return LaunchFillF32(flag, 1.0f, 1, other); });
  EXPECT_EQ(host[0], 1) << "the spinning kernel gave up after " << host[1] * 1e-9
                        << " s: the fill kernel waited for it (loaded lazily)";
  EXPECT_LT(host[1], 2'000'000'000);
  cudaStreamDestroy(spinning);
  cudaStreamDestroy(other);
  cudaFree(flag);
  cudaFree(result);
  cudaFree(one_d);
}

}  // namespace
}  // namespace ringattn::cuda
