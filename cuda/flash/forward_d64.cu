// Instantiations of the tensor-core forward for head_dim 64.
#include "cuda/flash/forward_kernel.cuh"

namespace ringattn::cuda::flash {

template cudaError_t LaunchFlashForwardKernel<ElementType::kFloat16, 64>(const ForwardBlockArgs&,
                                                                         cudaStream_t);
template cudaError_t LaunchFlashForwardKernel<ElementType::kBFloat16, 64>(const ForwardBlockArgs&,
                                                                          cudaStream_t);

}  // namespace ringattn::cuda::flash
