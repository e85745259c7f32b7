// Instantiations of the Hopper (wgmma) backward for head_dim 128.
#include "cuda/flash/backward_hopper_kernel.cuh"

namespace ringattn::cuda::flash {

template cudaError_t LaunchFlashBackwardHopperKernel<ElementType::kFloat16, 128>(
    const BackwardBlockArgs&, cudaStream_t);
template cudaError_t LaunchFlashBackwardHopperKernel<ElementType::kBFloat16, 128>(
    const BackwardBlockArgs&, cudaStream_t);

}  // namespace ringattn::cuda::flash
