// Forward attention of one block task on the GPU, merged into the rank's
// fp32 ring state (O, LSE) in the same kernel: no block output is ever
// rounded to the input dtype. Masks come from the task's position runs.
//
// These are the correctness-first kernels (one thread per row, tiles staged
// in shared memory, fp32 math for every input dtype): the oracle the
// tensor-core kernels of issue #5 are tested against on the GPU. Their
// arguments, which every kernel shares, are in cuda/kernel_args.h.
#ifndef RINGATTN_CUDA_FORWARD_BLOCK_H_
#define RINGATTN_CUDA_FORWARD_BLOCK_H_

#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/kernel_args.h"

namespace ringattn::cuda {

// The correctness-first backward of one block task (one thread per key
// row, atomics into dQ and, across GQA heads, dK/dV).
cudaError_t LaunchBackwardBlock(const BackwardBlockArgs& args, cudaStream_t stream);

// Largest head_dim the kernel takes.
inline constexpr int64_t kForwardBlockMaxHeadDim = 256;

// Enqueues the task on `stream`. Returns cudaErrorInvalidValue for a
// head_dim above kForwardBlockMaxHeadDim or an empty head range.
cudaError_t LaunchForwardBlock(const ForwardBlockArgs& args, cudaStream_t stream);

}  // namespace ringattn::cuda

#endif  // RINGATTN_CUDA_FORWARD_BLOCK_H_
