#include "bench/lazy_loading_probe.h"

namespace ringattn::bench {
namespace {

__global__ void SetFlag0(unsigned* flag) { *flag = 1; }
__global__ void SetFlag1(unsigned* flag) { *flag = 1; }
__global__ void SetFlag2(unsigned* flag) { *flag = 1; }

using Setter = void (*)(unsigned*);
Setter SetterOf(int which) { return which == 0 ? SetFlag0 : which == 1 ? SetFlag1 : SetFlag2; }

}  // namespace

cudaError_t LaunchSetFlag(int which, unsigned* flag, cudaStream_t stream) {
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
