#include "comm/device_sum.h"

namespace ringattn::comm {
namespace {

template <typename T>
__global__ void SumParts(T* __restrict__ dst, const T* __restrict__ src, int parts, int64_t n) {
  for (int64_t j = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; j < n;
       j += int64_t{gridDim.x} * blockDim.x) {
    T sum = 0;
    for (int i = 0; i < parts; ++i) sum += src[i * n + j];
    dst[j] = sum;
  }
}

template <typename T>
cudaError_t Launch(T* dst, const T* src, int parts, int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  const int64_t blocks = (n + 255) / 256;
  SumParts<T><<<static_cast<unsigned>(blocks < 4096 ? blocks : 4096), 256, 0, stream>>>(dst, src,
                                                                                        parts, n);
  return cudaGetLastError();
}

}  // namespace

cudaError_t LaunchSumParts(float* dst, const float* src, int parts, int64_t n,
                           cudaStream_t stream) {
  return Launch(dst, src, parts, n, stream);
}
cudaError_t LaunchSumParts(double* dst, const double* src, int parts, int64_t n,
                           cudaStream_t stream) {
  return Launch(dst, src, parts, n, stream);
}

}  // namespace ringattn::comm
