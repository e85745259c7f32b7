// The tensor-core forward kernels (mma.sync, sm_80 and later; wgmma on
// sm_90a): the fast path of a block task for fp16/bf16 inputs with head_dim
// 64, 128 or 256 and fp32 inputs with head_dim 64 or 128. Same
// arguments and semantics as LaunchForwardBlock (cuda/forward_block.h).
#ifndef RINGATTN_CUDA_FLASH_FORWARD_H_
#define RINGATTN_CUDA_FLASH_FORWARD_H_

#include <cuda_runtime_api.h>

#include "cuda/kernel_args.h"

namespace ringattn::cuda::flash {

// Which tensor-core kernel runs a task (forward or backward): the mma.sync
// kernel (sm_80 and later), the wgmma kernel with cp.async loads (sm_90a:
// H100, H200, H800), the warp-specialized wgmma kernel with TMA loads
// (sm_90a; forward only), or the fastest one the current device has (kAuto).
enum class TensorCoreKernel { kAuto, kMmaSync, kHopper, kWarpSpecialized };

// What the launchers ask of a device, asked of the driver once per device
// (a launch is on the path of every ring step).
struct DeviceFacts {
  bool hopper = false;  // compute capability 9.0: the sm_90a (wgmma) kernels
  int sms = 0;          // streaming multiprocessors
  int l2_bytes = 0;     // L2 cache size
};
// The current device's. Errors: the CUDA runtime's.
cudaError_t CurrentDeviceFacts(DeviceFacts* facts);

// Whether the current device runs the wgmma kernel (compute capability 9.0;
// false when the runtime cannot say).
bool HopperDevice();

// Whether LaunchFlashForward takes `a`: fp16 or bf16 with head_dim 64, 128
// or 256, or fp32 with head_dim 64 or 128; 16-byte aligned q/k/v (and out),
// a valid head range.
bool FlashForwardSupports(const ForwardBlockArgs& a);

// Enqueues the task; cudaErrorNotSupported when !FlashForwardSupports(a),
// or for kHopper / kWarpSpecialized when !HopperDevice(). fp32 (3xTF32,
// accurate to fp32) has the mma.sync kernel and the wgmma one (kHopper;
// kAuto's choice on Hopper); kWarpSpecialized is cudaErrorNotSupported.
cudaError_t LaunchFlashForward(const ForwardBlockArgs& a, cudaStream_t stream,
                               TensorCoreKernel kernel = TensorCoreKernel::kAuto);

// One instantiation per (dtype, head dim), compiled in forward_d<D>.cu.
template <ElementType E, int kHeadDim>
cudaError_t LaunchFlashForwardKernel(const ForwardBlockArgs& a, cudaStream_t stream);
// The fp32 kernel (3xTF32), compiled in forward_f32.cu.
template <int kHeadDim>
cudaError_t LaunchFlashForwardF32Kernel(const ForwardBlockArgs& a, cudaStream_t stream);
// The fp32 wgmma kernel (3xTF32, head_dims 64 and 128), compiled in
// forward_f32_hopper.cu.
template <int kHeadDim>
cudaError_t LaunchFlashForwardF32HopperKernel(const ForwardBlockArgs& a, cudaStream_t stream);
// The wgmma kernel, compiled in forward_hopper_d<D>.cu.
template <ElementType E, int kHeadDim>
cudaError_t LaunchFlashForwardHopperKernel(const ForwardBlockArgs& a, cudaStream_t stream);
// The warp-specialized wgmma kernel (TMA producer, ping-pong consumers,
// persistent), compiled in forward_warp_specialized_d<D>.cu.
template <ElementType E, int kHeadDim>
cudaError_t LaunchFlashForwardWarpSpecializedKernel(const ForwardBlockArgs& a, cudaStream_t stream);

}  // namespace ringattn::cuda::flash

#endif  // RINGATTN_CUDA_FLASH_FORWARD_H_
