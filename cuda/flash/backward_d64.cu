// Instantiations of the tensor-core backward for head_dim 64.
#include "cuda/flash/backward_kernel.cuh"

namespace ringattn::cuda::flash {

template cudaError_t LaunchFlashBackwardKernel<ElementType::kFloat16, 64>(const BackwardBlockArgs&,
                                                                          cudaStream_t);
template cudaError_t LaunchFlashBackwardKernel<ElementType::kBFloat16, 64>(const BackwardBlockArgs&,
                                                                           cudaStream_t);

}  // namespace ringattn::cuda::flash
