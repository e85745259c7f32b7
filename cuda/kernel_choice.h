// Which kernel runs a block task: the tensor-core kernels (cuda/flash/)
// where they take the arguments, else the correctness-first kernels
// (cuda/forward_block.h). The ring backend and the benchmarks call these.
#ifndef RINGATTN_CUDA_KERNEL_CHOICE_H_
#define RINGATTN_CUDA_KERNEL_CHOICE_H_

#include <cuda_runtime_api.h>

#include "cuda/kernel_args.h"

namespace ringattn::cuda {

// The fastest forward kernel that takes `a`: the tensor-core kernel where
// flash::FlashForwardSupports(a) (kAuto: the warp-specialized kernel on
// Hopper, RINGATTN_FORWARD_KERNEL overrides), else the correctness-first
// kernel (other head dims, fp32 at d256, unaligned pointers).
cudaError_t LaunchForward(const ForwardBlockArgs& a, cudaStream_t stream);

// The fastest backward kernel that takes `args` (tensor cores where
// flash::FlashBackwardSupports, else the correctness-first kernel).
cudaError_t LaunchBackward(const BackwardBlockArgs& args, cudaStream_t stream);

// Whether LaunchBackward(args) writes every row of args' dK and dV, so that
// they need not be zeroed first (flash::FlashBackwardStoresEveryKeyRow; the
// correctness-first kernel adds).
bool BackwardStoresEveryKeyRow(const BackwardBlockArgs& args);

}  // namespace ringattn::cuda

#endif  // RINGATTN_CUDA_KERNEL_CHOICE_H_
