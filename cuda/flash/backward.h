// The tensor-core backward kernels (mma.sync, sm_80 and later; wgmma,
// sm_90a): the fast path of a block task's backward for fp16/bf16 inputs
// with head_dim 64 or 128 (on Hopper also 256), and fp32 inputs with
// head_dim 64 or 128 (3xTF32, accurate to fp32). Same arguments and semantics as
// LaunchBackwardBlock (cuda/forward_block.h).
#ifndef RINGATTN_CUDA_FLASH_BACKWARD_H_
#define RINGATTN_CUDA_FLASH_BACKWARD_H_

#include <cuda_runtime_api.h>

#include "cuda/flash/forward.h"
#include "cuda/kernel_args.h"

namespace ringattn::cuda::flash {

// Whether LaunchFlashBackward takes `args`: fp16, bf16 or fp32 with head_dim
// 64 or 128 (fp16/bf16 also 256 on a Hopper device); 16-byte aligned
// q/k/v/dout and 8-byte aligned dq/dk/dv.
bool FlashBackwardSupports(const BackwardBlockArgs& args);

// Enqueues the task; cudaErrorNotSupported when !FlashBackwardSupports, for
// kHopper and kWarpSpecialized when !HopperDevice(), and for
// kWarpSpecialized when dq is not 16-byte aligned. kAuto runs the
// warp-specialized kernel on Hopper (the cp.async wgmma kernel when dq is
// only 8-byte aligned), the mma.sync kernel elsewhere. fp32 has the
// mma.sync kernel and at head_dim 64 the wgmma one (kHopper; kAuto's choice
// on Hopper); head_dim 256 has the wgmma kernel alone (kAuto, kHopper);
// the other choices are cudaErrorNotSupported.
cudaError_t LaunchFlashBackward(const BackwardBlockArgs& args, cudaStream_t stream,
                                TensorCoreKernel kernel = TensorCoreKernel::kAuto);

// Whether LaunchFlashBackward(args, kernel) writes every row of args' dK
// and dV instead of adding to them (zeros in key tiles no query meets): the
// warp-specialized kernel with key_grads_fresh and no GQA. A caller whose
// launches store every row of a buffer need not zero it first.
bool FlashBackwardStoresEveryKeyRow(const BackwardBlockArgs& args,
                                    TensorCoreKernel kernel = TensorCoreKernel::kAuto);

// One instantiation per (dtype, head dim), compiled in backward_d<D>.cu.
template <ElementType E, int kHeadDim>
cudaError_t LaunchFlashBackwardKernel(const BackwardBlockArgs& args, cudaStream_t stream);
// The fp32 mma.sync kernel (3xTF32), compiled in backward_f32.cu.
template <int kHeadDim>
cudaError_t LaunchFlashBackwardF32Kernel(const BackwardBlockArgs& args, cudaStream_t stream);
// The fp32 wgmma kernel (3xTF32, head_dim 64), compiled in backward_f32_hopper.cu.
template <int kHeadDim>
cudaError_t LaunchFlashBackwardF32HopperKernel(const BackwardBlockArgs& args, cudaStream_t stream);
// The wgmma backward for head_dim 256: the key-tile kernel (dK, dV split by
// columns between the warpgroups), then the dQ pass; compiled in
// backward_column_split_d256.cu.
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
