// The tensor-core backward kernels (mma.sync, sm_80 and later; wgmma,
// sm_90a): the fast path of a block task's backward for fp16/bf16 inputs
// with head_dim 64 or 128, and on Hopper also with head_dim 256 and for fp32
// inputs with head_dim 64 (3xTF32, accurate to fp32). Same arguments and semantics as
// LaunchBackwardBlock (cuda/forward_block.h).
#ifndef RINGATTN_CUDA_FLASH_BACKWARD_H_
#define RINGATTN_CUDA_FLASH_BACKWARD_H_

#include <cuda_runtime_api.h>

#include "cuda/flash/forward.h"
#include "cuda/kernel_args.h"

namespace ringattn::cuda::flash {

// Whether LaunchFlashBackward takes `args`: fp16 or bf16 with head_dim 64 or
// 128 (or 256 on a Hopper device), or fp32 with head_dim 64 on a Hopper
// device; 16-byte aligned q/k/v/dout and 8-byte aligned dq/dk/dv.
bool FlashBackwardSupports(const BackwardBlockArgs& args);

// Enqueues the task; cudaErrorNotSupported when !FlashBackwardSupports, for
// kHopper and kWarpSpecialized when !HopperDevice(), and for
// kWarpSpecialized when dq is not 16-byte aligned. kAuto runs the
// warp-specialized kernel on Hopper (the cp.async wgmma kernel when dq is
// only 8-byte aligned), the mma.sync kernel elsewhere. fp32 and head_dim
// 256 have a wgmma kernel alone (kAuto, kHopper; the others are
// cudaErrorNotSupported).
cudaError_t LaunchFlashBackward(const BackwardBlockArgs& args, cudaStream_t stream,
                                TensorCoreKernel kernel = TensorCoreKernel::kAuto);

// One instantiation per (dtype, head dim), compiled in backward_d<D>.cu.
template <ElementType E, int kHeadDim>
cudaError_t LaunchFlashBackwardKernel(const BackwardBlockArgs& args, cudaStream_t stream);
// The fp32 wgmma kernel (3xTF32, head_dim 64), compiled in backward_f32_hopper.cu.
template <int kHeadDim>
cudaError_t LaunchFlashBackwardF32HopperKernel(const BackwardBlockArgs& args, cudaStream_t stream);
// The wgmma kernel for head_dim 256 (dK, dV split by columns between the
// warpgroups), compiled in backward_column_split_d256.cu.
template <ElementType E, int kHeadDim>
cudaError_t LaunchFlashBackwardColumnSplitKernel(const BackwardBlockArgs& args,
                                                 cudaStream_t stream);
// The wgmma kernel, compiled in backward_hopper_d<D>.cu.
template <ElementType E, int kHeadDim>
cudaError_t LaunchFlashBackwardHopperKernel(const BackwardBlockArgs& args, cudaStream_t stream);
// The warp-specialized wgmma kernel, compiled in
// backward_warp_specialized_d<D>.cu.
template <ElementType E, int kHeadDim>
cudaError_t LaunchFlashBackwardWarpSpecializedKernel(const BackwardBlockArgs& args,
                                                     cudaStream_t stream);

}  // namespace ringattn::cuda::flash

#endif  // RINGATTN_CUDA_FLASH_BACKWARD_H_
