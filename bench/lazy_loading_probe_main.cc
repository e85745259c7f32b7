// Does a kernel's first launch wait for the kernels running on the device?
// (CUDA's lazy loading: docs/RING_BENCH.md, fifty-fifth section.)
//
//   lazy_loading_probe EXPERIMENT     (one experiment per process: a kernel
//                                      loaded once stays loaded)
//   for e in launch preloaded set_attribute get_attributes malloc
//            threads_loaded threads_same_module threads_other_module
//            two_gpus two_gpus_same_module (one line; the last two need two GPUs); do
//     for m in LAZY EAGER; do CUDA_MODULE_LOADING=$m lazy_loading_probe $e; done; done
//
// A kernel spins until a flag is set (giving up after 2 s); 100 ms after
// its launch the host does what the experiment names, and the line says
// whether the spin saw the flag and when. Kernels that are never preloaded
// here do not touch //cuda:kernel_preload (this binary never calls it).
#include <cuda_runtime.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "bench/lazy_loading_probe.h"
#include "cuda/kernel_preload.h"
#include "cuda/spin_until_set.h"

namespace ringattn::bench {
namespace {

double MsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

// Waits for the current device, reads the spinning kernel's result from
// `out` and prints the experiment's line; 0, or 1 if CUDA failed.
int Report(const std::string& experiment, bool lazy, double x_ms, double y_ms,
           const long long* out) {
  long long host[2] = {};
  if (cudaDeviceSynchronize() != cudaSuccess ||
      cudaMemcpy(host, out, sizeof(host), cudaMemcpyDeviceToHost) != cudaSuccess) {
    std::fprintf(stderr, "CUDA failed: %s\n", cudaGetErrorString(cudaGetLastError()));
    return 1;
  }
  std::printf(
      "%-20s %s loading: X's call %8.1f ms, Y's call %8.1f ms; the spinning kernel %s "
      "after %.1f ms\n",
      experiment.c_str(), lazy ? "lazy " : "eager", x_ms, y_ms,
      host[0] ? "saw the flag" : "GAVE UP", host[1] / 1e6);
  return 0;
}

// Two GPUs, one host thread each, as NCCL one thread per GPU runs them: GPU 0
// spins until GPU 1 writes its flag (peer memory). Thread X (GPU 0) launches
// a never-launched kernel of one module, whose load waits for the spin;
// 100 ms later thread Y (GPU 1) launches the never-launched setter: of
// another module (two_gpus) or of X's (two_gpus_same_module). If Y's launch
// waits for X's load, the spin gives up: the one-process deadlock, bounded.
int RunTwoGpus(const std::string& experiment, bool lazy) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices < 2) {
    std::fprintf(stderr, "%s needs two GPUs\n", experiment.c_str());
    return 2;
  }
  unsigned *flag = nullptr, *scratch = nullptr;
  long long* out = nullptr;
  cudaStream_t spinning, x_stream, y_stream;
  if (cudaSetDevice(1) || cudaDeviceEnablePeerAccess(0, 0) ||
      cudaStreamCreateWithFlags(&y_stream, cudaStreamNonBlocking) || cudaSetDevice(0) ||
      cudaDeviceEnablePeerAccess(1, 0) || cudaMalloc(&flag, sizeof(unsigned)) ||
      cudaMalloc(&scratch, sizeof(unsigned)) || cudaMalloc(&out, 2 * sizeof(long long)) ||
      cudaMemset(flag, 0, sizeof(unsigned)) ||
      cudaStreamCreateWithFlags(&spinning, cudaStreamNonBlocking) ||
      cudaStreamCreateWithFlags(&x_stream, cudaStreamNonBlocking) || cudaDeviceSynchronize()) {
    std::fprintf(stderr, "CUDA set-up failed: %s\n", cudaGetErrorString(cudaGetLastError()));
    return 1;
  }
  cuda::LaunchSpinUntilSet(flag, 2'000'000'000, out, spinning);
  double x_ms = -1, y_ms = -1;
  std::thread x([&] {
    cudaSetDevice(0);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const auto a = std::chrono::steady_clock::now();
    LaunchSetFlag(1, scratch, x_stream);
    x_ms = MsSince(a);
  });
  std::thread y([&] {
    cudaSetDevice(1);
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    const auto b = std::chrono::steady_clock::now();
    if (experiment == "two_gpus") LaunchSetFlagOtherModule(flag, y_stream);
    if (experiment == "two_gpus_same_module") LaunchSetFlag(0, flag, y_stream);
    y_ms = MsSince(b);
  });
  x.join();
  y.join();
  if (cudaSetDevice(0) != cudaSuccess) {
    std::fprintf(stderr, "CUDA failed: %s\n", cudaGetErrorString(cudaGetLastError()));
    return 1;
  }
  return Report(experiment, lazy, x_ms, y_ms, out);
}

int Run(const std::string& experiment) {
  const absl::StatusOr<bool> lazy = cuda::LazyKernelLoading();
  if (!lazy.ok()) {
    std::fprintf(stderr, "%s\n", std::string(lazy.status().message()).c_str());
    return 1;
  }
  if (experiment.rfind("two_gpus", 0) == 0) return RunTwoGpus(experiment, *lazy);
  unsigned *flag = nullptr, *scratch = nullptr;
  long long* out = nullptr;
  cudaStream_t spinning, other, third;
  if (cudaMalloc(&flag, sizeof(unsigned)) != cudaSuccess ||
      cudaMalloc(&scratch, sizeof(unsigned)) || cudaMalloc(&out, 2 * sizeof(long long)) ||
      cudaMemset(flag, 0, sizeof(unsigned)) ||
      cudaStreamCreateWithFlags(&spinning, cudaStreamNonBlocking) ||
      cudaStreamCreateWithFlags(&other, cudaStreamNonBlocking) ||
      cudaStreamCreateWithFlags(&third, cudaStreamNonBlocking) || LoadSetFlag(2) ||
      LaunchSetFlag(2, scratch, third) || cudaDeviceSynchronize()) {
    std::fprintf(stderr, "CUDA set-up failed: %s\n", cudaGetErrorString(cudaGetLastError()));
    return 1;
  }
  if (experiment == "preloaded") LoadSetFlag(0);
  cuda::LaunchSpinUntilSet(flag, 2'000'000'000, out, spinning);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  double x_ms = -1, y_ms = -1;
  const auto start = std::chrono::steady_clock::now();
  if (experiment == "launch" || experiment == "preloaded") {
    LaunchSetFlag(0, flag, other);
    x_ms = MsSince(start);
  } else if (experiment == "set_attribute" || experiment == "get_attributes" ||
             experiment == "malloc") {
    void* p = nullptr;
    if (experiment == "set_attribute") SetSetFlagAttribute(0);
    if (experiment == "get_attributes") LoadSetFlag(0);
    if (experiment == "malloc") cudaMalloc(&p, 1 << 20);
    x_ms = MsSince(start);
    LaunchSetFlag(2, flag, other);
  } else if (experiment.rfind("threads_", 0) == 0) {
    // X: a never-launched kernel (no flag). Y, 100 ms later: the setter.
    std::thread x([&] {
      const auto a = std::chrono::steady_clock::now();
      LaunchSetFlag(0, scratch, other);
      x_ms = MsSince(a);
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const auto b = std::chrono::steady_clock::now();
    if (experiment == "threads_loaded") LaunchSetFlag(2, flag, third);
    if (experiment == "threads_same_module") LaunchSetFlag(1, flag, third);
    if (experiment == "threads_other_module") LaunchSetFlagOtherModule(flag, third);
    y_ms = MsSince(b);
    x.join();
  } else {
    std::fprintf(stderr,
                 "unknown experiment '%s'; expected launch, preloaded, set_attribute, "
                 "get_attributes, malloc, threads_loaded, threads_same_module, "
                 "threads_other_module, two_gpus or two_gpus_same_module\n",
                 experiment.c_str());
    return 2;
  }
  return Report(experiment, *lazy, x_ms, y_ms, out);
}

}  // namespace
}  // namespace ringattn::bench

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: lazy_loading_probe EXPERIMENT (see the source's header)\n");
    return 2;
  }
  return ringattn::bench::Run(argv[1]);
}
