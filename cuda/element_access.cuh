// Elements of a dtype chosen at run time (ElementType) read as float and
// written rounded to nearest: the element-wise ring kernels and the
// correctness-first kernel use them (the tensor-core kernels are
// instantiated per dtype instead).
#ifndef RINGATTN_CUDA_ELEMENT_ACCESS_CUH_
#define RINGATTN_CUDA_ELEMENT_ACCESS_CUH_

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "cuda/kernel_args.h"

namespace ringattn::cuda {

// Element i of `p`, of `dtype`, as float.
__device__ __forceinline__ float LoadAsFloat(ElementType dtype, const void* p, int64_t i) {
  switch (dtype) {
    case ElementType::kFloat16:
      return __half2float(static_cast<const __half*>(p)[i]);
    case ElementType::kBFloat16:
      return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    default:
      return static_cast<const float*>(p)[i];
  }
}

// Element i of `p`, of `dtype`, = x rounded to nearest.
__device__ __forceinline__ void StoreRounded(ElementType dtype, void* p, int64_t i, float x) {
  switch (dtype) {
    case ElementType::kFloat16:
      static_cast<__half*>(p)[i] = __float2half_rn(x);
      break;
    case ElementType::kBFloat16:
      static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(x);
      break;
    default:
      static_cast<float*>(p)[i] = x;
  }
}

}  // namespace ringattn::cuda

#endif  // RINGATTN_CUDA_ELEMENT_ACCESS_CUH_
