// Instantiations of the Hopper (wgmma) forward for head_dim 256.
#include "cuda/flash/forward_hopper_kernel.cuh"

namespace ringattn::cuda::flash {

template cudaError_t LaunchFlashForwardHopperKernel<ElementType::kFloat16, 256>(
    const ForwardBlockArgs&, cudaStream_t);
template cudaError_t LaunchFlashForwardHopperKernel<ElementType::kBFloat16, 256>(
    const ForwardBlockArgs&, cudaStream_t);

}  // namespace ringattn::cuda::flash
