// GPU test helpers: host vectors to device memory and back (failures are
// gtest failures, not crashes), and a test dtype's kernel element type.
#ifndef RINGATTN_CUDA_DEVICE_TEST_UTIL_H_
#define RINGATTN_CUDA_DEVICE_TEST_UTIL_H_

#include <cuda_runtime.h>

#include <algorithm>
#include <vector>

#include "core/dtype.h"
#include "cuda/kernel_args.h"
#include "gtest/gtest.h"

namespace ringattn::cuda::testing {

// A device copy of x (cudaFree it).
template <typename T>
T* ToDevice(const std::vector<T>& x) {
  T* d = nullptr;
  EXPECT_EQ(cudaMalloc(&d, std::max<size_t>(x.size(), 1) * sizeof(T)), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(d, x.data(), x.size() * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  return d;
}

// n elements at d, copied to the host.
template <typename T>
std::vector<T> ToHost(const T* d, size_t n) {
  std::vector<T> x(n);
  EXPECT_EQ(cudaMemcpy(x.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
  return x;
}

// The kernels' element type of a float32, float16 or bfloat16 test dtype.
inline ElementType ElementTypeOf(DType dtype) {
  switch (dtype) {
    case DType::kBFloat16:
      return ElementType::kBFloat16;
    case DType::kFloat16:
      return ElementType::kFloat16;
    default:
      return ElementType::kFloat32;
  }
}

}  // namespace ringattn::cuda::testing

#endif  // RINGATTN_CUDA_DEVICE_TEST_UTIL_H_
