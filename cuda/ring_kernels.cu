#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cuda/ring_kernels.h"

namespace ringattn::cuda {
namespace {

constexpr int kThreads = 256;

unsigned Blocks(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 65535 * 16 ? blocks : 65535 * 16);
}

__global__ void AddF32Kernel(float* dst, const float* src, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{kThreads} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * kThreads) {
    dst[i] += src[i];
  }
}

__global__ void ConvertF32Kernel(ElementType dtype, const float* src, void* dst, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{kThreads} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * kThreads) {
    switch (dtype) {
      case ElementType::kFloat16:
        static_cast<__half*>(dst)[i] = __float2half_rn(src[i]);
        break;
      case ElementType::kBFloat16:
        static_cast<__nv_bfloat16*>(dst)[i] = __float2bfloat16_rn(src[i]);
        break;
      default:
        static_cast<float*>(dst)[i] = src[i];
    }
  }
}

// The full-layout offset of packed element i, and whether it is V.
__device__ __forceinline__ int64_t FullOffset(const PackedKvShape& s, int64_t i, bool* is_v) {
  const int64_t heads = s.head_end - s.head_begin;
  const int64_t half = s.batch * s.rows * heads * s.head_dim;  // one K or V
  const int64_t shard = i / (2 * half);
  int64_t rest = i % (2 * half);
  *is_v = rest >= half;
  rest %= half;
  const int64_t c = rest % s.head_dim;
  rest /= s.head_dim;
  const int64_t h = rest % heads;
  rest /= heads;
  const int64_t t = rest % s.rows;
  const int64_t b = rest / s.rows;
  const int64_t row = b * s.ranks * s.rows + shard * s.rows + t;
  return (row * s.num_kv_heads + s.head_begin + h) * s.head_dim + c;
}

__global__ void PackedAddKernel(PackedKvShape s, int64_t n, bool to_packed, float* packed,
                                float* full_k, float* full_v) {
  for (int64_t i = blockIdx.x * int64_t{kThreads} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * kThreads) {
    bool is_v;
    const int64_t o = FullOffset(s, i, &is_v);
    float* full = is_v ? full_v : full_k;
    if (to_packed) {
      packed[i] += full[o];
    } else {
      full[o] += packed[i];
    }
  }
}

}  // namespace

cudaError_t LaunchAddF32(float* dst, const float* src, int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  AddF32Kernel<<<Blocks(n), kThreads, 0, stream>>>(dst, src, n);
  return cudaGetLastError();
}

cudaError_t LaunchConvertF32(ElementType dtype, const float* src, void* dst, int64_t n,
                             cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  ConvertF32Kernel<<<Blocks(n), kThreads, 0, stream>>>(dtype, src, dst, n);
  return cudaGetLastError();
}

cudaError_t LaunchPackedAddF32(const PackedKvShape& shape, bool to_packed, float* packed,
                               float* full_k, float* full_v, cudaStream_t stream) {
  const int64_t n = shape.PackedElements();
  if (n <= 0) return cudaSuccess;
  PackedAddKernel<<<Blocks(n), kThreads, 0, stream>>>(shape, n, to_packed, packed, full_k, full_v);
  return cudaGetLastError();
}

}  // namespace ringattn::cuda
