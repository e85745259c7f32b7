// Instantiations of the fp32 (3xTF32) forward for head_dim 64 and 128.
#include "cuda/flash/forward_f32_kernel.cuh"

namespace ringattn::cuda::flash {

template cudaError_t LaunchFlashForwardF32Kernel<64>(const ForwardBlockArgs&, cudaStream_t);
template cudaError_t LaunchFlashForwardF32Kernel<128>(const ForwardBlockArgs&, cudaStream_t);

}  // namespace ringattn::cuda::flash
