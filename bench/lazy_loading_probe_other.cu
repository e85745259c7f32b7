#include "bench/lazy_loading_probe.h"

namespace ringattn::bench {
namespace {

__global__ void SetFlagOtherModule(int* flag) { *flag = 1; }

}  // namespace

cudaError_t LaunchSetFlagOtherModule(int* flag, cudaStream_t stream) {
  SetFlagOtherModule<<<1, 1, 0, stream>>>(flag);
  return cudaGetLastError();
}

}  // namespace ringattn::bench
