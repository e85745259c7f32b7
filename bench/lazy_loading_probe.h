// The lazy-loading probe's flag setters (bench/lazy_loading_probe_main.cc),
// in two modules; the kernel that waits for them is cuda/spin_until_set.h's.
#ifndef RINGATTN_BENCH_LAZY_LOADING_PROBE_H_
#define RINGATTN_BENCH_LAZY_LOADING_PROBE_H_

#include <cuda_runtime_api.h>

namespace ringattn::bench {

// *flag = 1 by setter `which` of lazy_loading_probe_kernels.cu's module: 0
// and 1 (never launched before by the probe), 2 (loaded before the spin).
cudaError_t LaunchSetFlag(int which, unsigned* flag, cudaStream_t stream);

// cudaFuncGetAttributes on setter `which` (loads it).
cudaError_t LoadSetFlag(int which);

// cudaFuncSetAttribute (max dynamic shared memory) on setter `which`.
cudaError_t SetSetFlagAttribute(int which);

// *flag = 1 by the kernel of another module (lazy_loading_probe_other.cu).
cudaError_t LaunchSetFlagOtherModule(unsigned* flag, cudaStream_t stream);

}  // namespace ringattn::bench

#endif  // RINGATTN_BENCH_LAZY_LOADING_PROBE_H_
