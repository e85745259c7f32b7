// The kernels of ProbeL2Latency (bench/l2_halves.h).
#include <cuda_runtime.h>

#include <cstdint>

#include "bench/l2_halves_probe.h"

namespace ringattn::bench {
namespace {

__device__ __forceinline__ uint32_t SmId() {
  uint32_t id;
  asm volatile("mov.u32 %0, %%smid;" : "=r"(id));
  return id;
}

__device__ __forceinline__ uint32_t LoadL2(const uint32_t* p) {
  uint32_t v;
  asm volatile("ld.global.cg.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}

// The CTA on SM 0 reads every line (its L2 half then holds them all).
__global__ void WarmFromSmZero(const uint32_t* lines, int64_t count, uint32_t* sink) {
  if (SmId() != 0) return;
  uint32_t acc = 0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x)
    acc += LoadL2(lines + i * kL2ProbeLineWords);
  if (acc == 0xffffffffu) *sink = acc;  // keeps the loads
}

// CTA b walks its own lines [b * per_cta, (b + 1) * per_cta) as a chain
// (each line holds the next's index) and records its SM and the mean
// cycles per load.
__global__ void TimeChains(const uint32_t* lines, int per_cta, uint32_t* sms, double* cycles,
                           uint32_t* sink) {
  if (threadIdx.x != 0) return;
  uint32_t next = blockIdx.x * per_cta;
  const long long start = clock64();
  for (int i = 0; i < per_cta; ++i)
    next = LoadL2(lines + static_cast<int64_t>(next) * kL2ProbeLineWords);
  const long long stop = clock64();
  sms[blockIdx.x] = SmId();
  cycles[blockIdx.x] = static_cast<double>(stop - start) / per_cta;
  if (next == 0xffffffffu) *sink = next;
}

}  // namespace

cudaError_t LaunchL2Probe(const uint32_t* lines, int64_t count, int ctas, int per_cta,
                          uint32_t* sm_ids, double* cycles, uint32_t* sink) {
  // One CTA per SM: the shared memory asked for leaves room for one.
  constexpr int kShared = 160 << 10;
  cudaError_t e =
      cudaFuncSetAttribute(WarmFromSmZero, cudaFuncAttributeMaxDynamicSharedMemorySize, kShared);
  if (e == cudaSuccess) {
    e = cudaFuncSetAttribute(TimeChains, cudaFuncAttributeMaxDynamicSharedMemorySize, kShared);
  }
  if (e != cudaSuccess) return e;
  WarmFromSmZero<<<ctas, 128, kShared>>>(lines, count, sink);
  if ((e = cudaDeviceSynchronize()) != cudaSuccess) return e;
  TimeChains<<<ctas, 32, kShared>>>(lines, per_cta, sm_ids, cycles, sink);
  return cudaDeviceSynchronize();
}

}  // namespace ringattn::bench
