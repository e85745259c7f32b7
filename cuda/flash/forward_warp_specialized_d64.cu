// Instantiations of the warp-specialized Hopper forward for head_dim 64.
#include "cuda/flash/forward_warp_specialized_kernel.cuh"

namespace ringattn::cuda::flash {

template cudaError_t LaunchFlashForwardWarpSpecializedKernel<ElementType::kFloat16, 64>(
    const ForwardBlockArgs&, cudaStream_t);
template cudaError_t LaunchFlashForwardWarpSpecializedKernel<ElementType::kBFloat16, 64>(
    const ForwardBlockArgs&, cudaStream_t);

}  // namespace ringattn::cuda::flash
