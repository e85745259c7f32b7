// A kernel that waits for another: one thread spins until a word is
// nonzero (kernel_preload_test and bench/lazy_loading_probe: whether a
// kernel's first launch runs beside a running kernel).
#ifndef RINGATTN_CUDA_SPIN_UNTIL_SET_H_
#define RINGATTN_CUDA_SPIN_UNTIL_SET_H_

#include <cuda_runtime_api.h>

namespace ringattn::cuda {

// Spins until *flag != 0 or limit_ns have passed (the GPU's global timer);
// then result[0] = 1 if it saw the flag (0 if it gave up) and result[1] =
// the nanoseconds it spun.
cudaError_t LaunchSpinUntilSet(const unsigned* flag, long long limit_ns, long long* result,
                               cudaStream_t stream);

}  // namespace ringattn::cuda

#endif  // RINGATTN_CUDA_SPIN_UNTIL_SET_H_
