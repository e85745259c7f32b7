// GPU test helpers: host vectors to device memory and back (failures are
// gtest failures, not crashes).
#ifndef RINGATTN_CUDA_DEVICE_TEST_UTIL_H_
#define RINGATTN_CUDA_DEVICE_TEST_UTIL_H_

#include <cuda_runtime.h>

#include <algorithm>
#include <vector>

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

}  // namespace ringattn::cuda::testing

#endif  // RINGATTN_CUDA_DEVICE_TEST_UTIL_H_
