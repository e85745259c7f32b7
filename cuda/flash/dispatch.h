// The dtype x head-dim switch of the tensor-core kernels: calls
// f(std::integral_constant<ElementType, E>, std::integral_constant<int, D>)
// for the instantiated pairs, or returns cudaErrorNotSupported.
#ifndef RINGATTN_CUDA_FLASH_DISPATCH_H_
#define RINGATTN_CUDA_FLASH_DISPATCH_H_

#include <cuda_runtime_api.h>

#include <cstdint>
#include <type_traits>

#include "cuda/kernel_args.h"

namespace ringattn::cuda::flash {

template <ElementType E, typename F>
cudaError_t DispatchHeadDim(int64_t head_dim, F&& f) {
  using Type = std::integral_constant<ElementType, E>;
  switch (head_dim) {
    case 64:
      return f(Type{}, std::integral_constant<int, 64>{});
    case 128:
      return f(Type{}, std::integral_constant<int, 128>{});
    case 256:
      return f(Type{}, std::integral_constant<int, 256>{});
    default:
      return cudaErrorNotSupported;
  }
}

template <typename F>
cudaError_t DispatchDtypeHeadDim(ElementType dtype, int64_t head_dim, F&& f) {
  switch (dtype) {
    case ElementType::kFloat16:
      return DispatchHeadDim<ElementType::kFloat16>(head_dim, f);
    case ElementType::kBFloat16:
      return DispatchHeadDim<ElementType::kBFloat16>(head_dim, f);
    default:
      return cudaErrorNotSupported;
  }
}

}  // namespace ringattn::cuda::flash

#endif  // RINGATTN_CUDA_FLASH_DISPATCH_H_
