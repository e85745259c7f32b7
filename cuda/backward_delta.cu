#include <cstdint>

#include "cuda/backward_delta.h"
#include "cuda/element_access.cuh"

namespace ringattn::cuda {
namespace {

// A lane's part of sum_c dout[c] * o[c] over one row, kN adjacent elements
// per load; lanes read consecutive elements (coalesced).
template <int kN, typename TD, typename TO>
__device__ __forceinline__ float RowDot(const TD* dout, const TO* o, int64_t head_dim, int lane) {
  float sum = 0.f;
  for (int64_t c = kN * lane; c < head_dim; c += 32 * kN) {
    float x[kN], y[kN];
    LoadFloats<kN>(dout + c, x);
    LoadFloats<kN>(o + c, y);
#pragma unroll
    for (int i = 0; i < kN; ++i) sum += x[i] * y[i];
  }
  return sum;
}

// The same with o's dtype chosen at run time (o + first: the row's first
// element).
template <int kN, typename TD>
__device__ __forceinline__ float RowDot(const TD* dout, ElementType o_dtype, const void* o,
                                        int64_t first, int64_t head_dim, int lane) {
  switch (o_dtype) {
    case ElementType::kFloat16:
      return RowDot<kN>(dout, static_cast<const __half*>(o) + first, head_dim, lane);
    case ElementType::kBFloat16:
      return RowDot<kN>(dout, static_cast<const __nv_bfloat16*>(o) + first, head_dim, lane);
    default:
      return RowDot<kN>(dout, static_cast<const float*>(o) + first, head_dim, lane);
  }
}

template <int kN>
__device__ __forceinline__ float RowDot(ElementType dtype, const void* dout, ElementType o_dtype,
                                        const void* o, int64_t first, int64_t head_dim, int lane) {
  switch (dtype) {
    case ElementType::kFloat16:
      return RowDot<kN>(static_cast<const __half*>(dout) + first, o_dtype, o, first, head_dim,
                        lane);
    case ElementType::kBFloat16:
      return RowDot<kN>(static_cast<const __nv_bfloat16*>(dout) + first, o_dtype, o, first,
                        head_dim, lane);
    default:
      return RowDot<kN>(static_cast<const float*>(dout) + first, o_dtype, o, first, head_dim, lane);
  }
}

// One warp per row (row = (b * rows + t) * heads + h): the dtypes and the
// elements per load (vector: 4, 2 or 1, as head_dim and the buffers'
// alignment allow) chosen once per thread, not per element, then a shuffle
// reduction.
__global__ void DeltaKernel(ElementType dtype, const void* dout, ElementType o_dtype, const void* o,
                            float* delta, int64_t batch, int64_t rows, int64_t heads,
                            int64_t head_dim, int vector) {
  const int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (row >= batch * rows * heads) return;  // whole warps leave together
  const int64_t first = row * head_dim;
  float sum = vector == 4   ? RowDot<4>(dtype, dout, o_dtype, o, first, head_dim, lane)
              : vector == 2 ? RowDot<2>(dtype, dout, o_dtype, o, first, head_dim, lane)
                            : RowDot<1>(dtype, dout, o_dtype, o, first, head_dim, lane);
  for (int offset = 16; offset > 0; offset /= 2) {
    sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  }
  if (lane != 0) return;
  // 64-bit division is a long software routine: 32-bit when the rows fit.
  int64_t h, t, b;
  if (batch * rows * heads <= INT32_MAX) {
    const uint32_t r = static_cast<uint32_t>(row), hs = static_cast<uint32_t>(heads);
    h = r % hs;
    t = (r / hs) % static_cast<uint32_t>(rows);
    b = r / (hs * static_cast<uint32_t>(rows));
  } else {
    h = row % heads, t = (row / heads) % rows, b = row / (heads * rows);
  }
  delta[(b * heads + h) * rows + t] = sum;
}

}  // namespace

cudaError_t LaunchBackwardDelta(ElementType dtype, const void* dout, ElementType o_dtype,
                                const void* o, float* delta, int64_t batch, int64_t rows,
                                int64_t heads, int64_t head_dim, cudaStream_t stream) {
  const int64_t n = batch * rows * heads;
  if (n == 0) return cudaSuccess;
  constexpr int64_t kRowsPerBlock = 8;  // warps of 256 threads
  // Elements per load: 4, 2 or 1, as head_dim and both buffers' alignment allow.
  const auto aligned = [](const void* p, ElementType t, int elements) {
    return reinterpret_cast<uintptr_t>(p) % (elements * ElementBytes(t)) == 0;
  };
  int vector = 1;
  for (const int elements : {4, 2}) {
    if (head_dim % elements == 0 && aligned(dout, dtype, elements) &&
        aligned(o, o_dtype, elements)) {
      vector = elements;
      break;
    }
  }
  DeltaKernel<<<static_cast<unsigned>((n + kRowsPerBlock - 1) / kRowsPerBlock), 32 * kRowsPerBlock,
                0, stream>>>(dtype, dout, o_dtype, o, delta, batch, rows, heads, head_dim, vector);
  return cudaGetLastError();
}

}  // namespace ringattn::cuda
