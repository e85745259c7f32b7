// Elements of a dtype chosen at run time (ElementType) read as float and
// written rounded to nearest: the element-wise ring kernels and the
// correctness-first kernel use them (the tensor-core kernels are
// instantiated per dtype instead); and typed loads as float for kernels
// that choose the dtype once (the backward's D kernel).
#ifndef RINGATTN_CUDA_ELEMENT_ACCESS_CUH_
#define RINGATTN_CUDA_ELEMENT_ACCESS_CUH_

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

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

// The same with the dtype known at compile time: x as float, and kN
// adjacent elements at p as floats with one load (two for 32 bytes); p
// aligned to the load's size (16 bytes for 32).
__device__ __forceinline__ float ToFloat(__half x) { return __half2float(x); }
__device__ __forceinline__ float ToFloat(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float ToFloat(float x) { return x; }
template <int kN, typename T>
__device__ __forceinline__ void LoadFloats(const T* p, float (&x)[kN]) {
  constexpr size_t kBytes = kN * sizeof(T);
  if constexpr (kBytes > 16) {  // 8 fp32 elements: two 16-byte loads
    float(&lo)[kN / 2] = *reinterpret_cast<float(*)[kN / 2]>(x);
    float(&hi)[kN / 2] = *reinterpret_cast<float(*)[kN / 2]>(x + kN / 2);
    LoadFloats<kN / 2>(p, lo);
    LoadFloats<kN / 2>(p + kN / 2, hi);
  } else {
    using Raw =
        std::conditional_t<kBytes == 16, uint4,
                           std::conditional_t<kBytes == 8, uint2,
                                              std::conditional_t<kBytes == 4, uint32_t, uint16_t>>>;
    static_assert(sizeof(Raw) == kBytes, "1, 2, 4 or 8 elements");
    const Raw raw = *reinterpret_cast<const Raw*>(p);
    T e[kN];
    memcpy(e, &raw, kBytes);
#pragma unroll
    for (int i = 0; i < kN; ++i) x[i] = ToFloat(e[i]);
  }
}

// f(p as a pointer to `dtype`'s C++ type): a kernel that chooses the
// dtype once, then loads typed (LoadFloats).
template <typename F>
__device__ __forceinline__ auto WithTypedPointer(ElementType dtype, const void* p, F&& f) {
  switch (dtype) {
    case ElementType::kFloat16:
      return f(static_cast<const __half*>(p));
    case ElementType::kBFloat16:
      return f(static_cast<const __nv_bfloat16*>(p));
    default:
      return f(static_cast<const float*>(p));
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
