#include "bench/lazy_loading_probe.h"

namespace ringattn::bench {
namespace {

__device__ __forceinline__ long long Now() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return static_cast<long long>(t);
}

__global__ void Spin(const volatile int* flag, long long limit_ns, long long* out) {
  const long long start = Now();
  while (*flag == 0 && Now() - start < limit_ns) {
  }
  out[0] = *flag != 0 ? 1 : 0;
  out[1] = Now() - start;
}

__global__ void SetFlag0(int* flag) { *flag = 1; }
__global__ void SetFlag1(int* flag) { *flag = 1; }
__global__ void SetFlag2(int* flag) { *flag = 1; }

using Setter = void (*)(int*);
Setter SetterOf(int which) { return which == 0 ? SetFlag0 : which == 1 ? SetFlag1 : SetFlag2; }

}  // namespace

cudaError_t LaunchSpin(const int* flag, long long limit_ns, long long* out, cudaStream_t stream) {
  Spin<<<1, 1, 0, stream>>>(flag, limit_ns, out);
  return cudaGetLastError();
}

cudaError_t LaunchSetFlag(int which, int* flag, cudaStream_t stream) {
  SetterOf(which)<<<1, 1, 0, stream>>>(flag);
  return cudaGetLastError();
}

cudaError_t LoadSetFlag(int which) {
  cudaFuncAttributes attributes;
  return cudaFuncGetAttributes(&attributes, SetterOf(which));
}

cudaError_t SetSetFlagAttribute(int which) {
  return cudaFuncSetAttribute(SetterOf(which), cudaFuncAttributeMaxDynamicSharedMemorySize, 1024);
}

}  // namespace ringattn::bench
