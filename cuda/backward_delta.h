// D = rowsum(dO * O), the per-row term every backward kernel reads
// (dS = P (dP - D)), computed before the backward's block tasks.
#ifndef RINGATTN_CUDA_BACKWARD_DELTA_H_
#define RINGATTN_CUDA_BACKWARD_DELTA_H_

#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/kernel_args.h"

namespace ringattn::cuda {

// delta[b, h, t] = sum_c dout[b, t, h, c] * o[b, t, h, c]: dout in `dtype`,
// o in `o_dtype` (the fp32 state, or a saved forward's output in the input
// dtype, read as it is); fp32 products and sums. With `zeros` (fp32, laid
// out like dout; null: none), the same launch also sets every element of
// it to 0: the backward's dQ, which its kernels add into, zeroed beside the
// reads of the same rows instead of by a launch of its own (a pass over 4
// bytes a query element; fifty-second session).
cudaError_t LaunchBackwardDelta(ElementType dtype, const void* dout, ElementType o_dtype,
                                const void* o, float* delta, int64_t batch, int64_t rows,
                                int64_t heads, int64_t head_dim, cudaStream_t stream,
                                float* zeros = nullptr);

}  // namespace ringattn::cuda

#endif  // RINGATTN_CUDA_BACKWARD_DELTA_H_
