// The kernels' element type of a tensor dtype: the one mapping the CUDA
// backend and the GPU tests share.
#ifndef RINGATTN_CUDA_ELEMENT_TYPE_H_
#define RINGATTN_CUDA_ELEMENT_TYPE_H_

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "core/dtype.h"
#include "cuda/kernel_args.h"

namespace ringattn::cuda {

// float32, float16 and bfloat16; InvalidArgument for any other (float64
// runs on the CPU backend).
inline absl::StatusOr<ElementType> ElementTypeOf(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return ElementType::kFloat32;
    case DType::kFloat16:
      return ElementType::kFloat16;
    case DType::kBFloat16:
      return ElementType::kBFloat16;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("the CUDA backend takes float32, float16 or bfloat16 inputs, not ",
                       DTypeName(dtype), " (float64 runs on the CPU backend)"));
  }
}

}  // namespace ringattn::cuda

#endif  // RINGATTN_CUDA_ELEMENT_TYPE_H_
