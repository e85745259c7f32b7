#include "bench/lazy_loading_probe.h"

namespace ringattn::bench {
namespace {

__global__ void SetFlagOtherModule(unsigned* flag) { *flag = 1; }

}  // namespace

cudaError_t LaunchSetFlagOtherModule(unsigned* flag, cudaStream_t stream) {
  SetFlagOtherModule<<<1, 1, 0, stream>>>(flag);
  return cudaGetLastError();
}

}  // namespace ringattn::bench
