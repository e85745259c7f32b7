// Instantiations of the Hopper (wgmma) forward for head_dim 128.
#include "cuda/flash/forward_hopper_kernel.cuh"

namespace ringattn::cuda::flash {

template cudaError_t LaunchFlashForwardHopperKernel<ElementType::kFloat16, 128>(
    const ForwardBlockArgs&, cudaStream_t);
template cudaError_t LaunchFlashForwardHopperKernel<ElementType::kBFloat16, 128>(
    const ForwardBlockArgs&, cudaStream_t);

}  // namespace ringattn::cuda::flash
