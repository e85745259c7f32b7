// The lazy-loading probe's kernels (bench/lazy_loading_probe_main.cc): a
// kernel that spins until a flag is set, and flag setters in two modules.
#ifndef RINGATTN_BENCH_LAZY_LOADING_PROBE_H_
#define RINGATTN_BENCH_LAZY_LOADING_PROBE_H_

#include <cuda_runtime_api.h>

namespace ringattn::bench {

// Spins until *flag != 0 or limit_ns pass; out[0] = 1 if it saw the flag,
// out[1] = the nanoseconds it spun.
cudaError_t LaunchSpin(const int* flag, long long limit_ns, long long* out, cudaStream_t stream);

// *flag = 1 by setter `which` of lazy_loading_probe_kernels.cu's module: 0
// and 1 (never launched before by the probe), 2 (loaded before the spin).
cudaError_t LaunchSetFlag(int which, int* flag, cudaStream_t stream);

// cudaFuncGetAttributes on setter `which` (loads it).
cudaError_t LoadSetFlag(int which);

// cudaFuncSetAttribute (max dynamic shared memory) on setter `which`.
cudaError_t SetSetFlagAttribute(int which);

// *flag = 1 by the kernel of another module (lazy_loading_probe_other.cu).
cudaError_t LaunchSetFlagOtherModule(int* flag, cudaStream_t stream);

}  // namespace ringattn::bench

#endif  // RINGATTN_BENCH_LAZY_LOADING_PROBE_H_
