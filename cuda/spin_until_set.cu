#include "cuda/spin_until_set.h"

namespace ringattn::cuda {
namespace {

__device__ __forceinline__ long long GlobalNanoseconds() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return static_cast<long long>(t);
}

__global__ void SpinUntilSet(const volatile unsigned* flag, long long limit_ns, long long* result) {
  const long long start = GlobalNanoseconds();
  long long spun = 0;
  while (*flag == 0 && (spun = GlobalNanoseconds() - start) < limit_ns) {
  }
  result[0] = *flag != 0 ? 1 : 0;
  result[1] = GlobalNanoseconds() - start;
}

}  // namespace

cudaError_t LaunchSpinUntilSet(const unsigned* flag, long long limit_ns, long long* result,
                               cudaStream_t stream) {
  SpinUntilSet<<<1, 1, 0, stream>>>(flag, limit_ns, result);
  return cudaGetLastError();
}

}  // namespace ringattn::cuda
