// kernel_preload_test's kernel: one thread spins until a word is nonzero.
#ifndef RINGATTN_CUDA_KERNEL_PRELOAD_TEST_SPIN_H_
#define RINGATTN_CUDA_KERNEL_PRELOAD_TEST_SPIN_H_

#include <cuda_runtime_api.h>

namespace ringattn::cuda::testing {

// Spins until *flag != 0 or limit_ns have passed (the GPU's global timer);
// then result[0] = 1 if it saw the flag (0 if it gave up) and result[1] =
// the nanoseconds it spun.
cudaError_t LaunchSpinUntilSet(const unsigned* flag, long long limit_ns, long long* result,
                               cudaStream_t stream);

}  // namespace ringattn::cuda::testing

#endif  // RINGATTN_CUDA_KERNEL_PRELOAD_TEST_SPIN_H_
