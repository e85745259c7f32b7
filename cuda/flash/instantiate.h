// The explicit instantiations of a kernel family's launcher for one head
// dim, fp16 and bf16: one line per generated .cu file (generate.py).
#ifndef RINGATTN_CUDA_FLASH_INSTANTIATE_H_
#define RINGATTN_CUDA_FLASH_INSTANTIATE_H_

#include <cuda_runtime_api.h>

#include "cuda/kernel_args.h"

#define RINGATTN_INSTANTIATE_HALF_KERNELS(launcher, Args, head_dim)                           \
  namespace ringattn::cuda::flash {                                                           \
  template cudaError_t launcher<ElementType::kFloat16, head_dim>(const Args&, cudaStream_t);  \
  template cudaError_t launcher<ElementType::kBFloat16, head_dim>(const Args&, cudaStream_t); \
  }

#endif  // RINGATTN_CUDA_FLASH_INSTANTIATE_H_
