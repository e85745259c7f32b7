#include <algorithm>
#include <cstdint>

#include "cuda/backward_delta.h"
#include "cuda/element_access.cuh"

namespace ringattn::cuda {
namespace {

// A lane's parts of sum_c dout[c] * o[c] over two rows (elements first0
// and first1 on; the same row twice where there is one), kN adjacent
// elements per load, both rows' loads issued together; lanes read
// consecutive elements (coalesced).
template <int kN, typename TD, typename TO>
__device__ __forceinline__ float2 RowDots(const TD* dout, const TO* o, int64_t first0,
                                          int64_t first1, int64_t head_dim, int lane) {
  float2 sum = {0.f, 0.f};
  for (int64_t c = kN * lane; c < head_dim; c += 32 * kN) {
    float x0[kN], y0[kN], x1[kN], y1[kN];
    LoadFloats<kN>(dout + first0 + c, x0);
    LoadFloats<kN>(o + first0 + c, y0);
    LoadFloats<kN>(dout + first1 + c, x1);
    LoadFloats<kN>(o + first1 + c, y1);
#pragma unroll
    for (int i = 0; i < kN; ++i) {
      sum.x += x0[i] * y0[i];
      sum.y += x1[i] * y1[i];
    }
  }
  return sum;
}

// The same with o's dtype chosen at run time.
template <int kN, typename TD>
__device__ __forceinline__ float2 RowDots(const TD* dout, ElementType o_dtype, const void* o,
                                          int64_t first0, int64_t first1, int64_t head_dim,
                                          int lane) {
  switch (o_dtype) {
    case ElementType::kFloat16:
      return RowDots<kN>(dout, static_cast<const __half*>(o), first0, first1, head_dim, lane);
    case ElementType::kBFloat16:
      return RowDots<kN>(dout, static_cast<const __nv_bfloat16*>(o), first0, first1, head_dim,
                         lane);
    default:
      return RowDots<kN>(dout, static_cast<const float*>(o), first0, first1, head_dim, lane);
  }
}

// And dout's.
template <int kN>
__device__ __forceinline__ float2 RowDots(ElementType dtype, const void* dout, ElementType o_dtype,
                                          const void* o, int64_t first0, int64_t first1,
                                          int64_t head_dim, int lane) {
  switch (dtype) {
    case ElementType::kFloat16:
      return RowDots<kN>(static_cast<const __half*>(dout), o_dtype, o, first0, first1, head_dim,
                         lane);
    case ElementType::kBFloat16:
      return RowDots<kN>(static_cast<const __nv_bfloat16*>(dout), o_dtype, o, first0, first1,
                         head_dim, lane);
    default:
      return RowDots<kN>(static_cast<const float*>(dout), o_dtype, o, first0, first1, head_dim,
                         lane);
  }
}

// delta's index of row (b * rows + t) * heads + h: (b * heads + h) * rows + t.
// 64-bit division is a long software routine: 32-bit when the rows fit.
__device__ __forceinline__ int64_t DeltaIndex(int64_t row, int64_t rows, int64_t heads,
                                              bool fits32) {
  int64_t h, t, b;
  if (fits32) {
    const uint32_t r = static_cast<uint32_t>(row), hs = static_cast<uint32_t>(heads);
    h = r % hs;
    t = (r / hs) % static_cast<uint32_t>(rows);
    b = r / (hs * static_cast<uint32_t>(rows));
  } else {
    h = row % heads, t = (row / heads) % rows, b = row / (heads * rows);
  }
  return (b * heads + h) * rows + t;
}

// Each warp takes two adjacent rows at a time (grid-stride): the dtypes and
// the elements per load (vector: 4, 2 or 1, as head_dim and the buffers'
// alignment allow) chosen once per thread, not per element, then shuffle
// reductions.
__global__ void DeltaKernel(ElementType dtype, const void* dout, ElementType o_dtype, const void* o,
                            float* delta, int64_t batch, int64_t rows, int64_t heads,
                            int64_t head_dim, int vector) {
  const int64_t n = batch * rows * heads;
  const bool fits32 = n <= INT32_MAX;
  const int lane = threadIdx.x % 32;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * blockDim.x / 32;
  for (int64_t row0 = 2 * ((static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32);
       row0 < n; row0 += 2 * warps) {
    const int64_t row1 = row0 + 1 < n ? row0 + 1 : row0;
    const int64_t first0 = row0 * head_dim, first1 = row1 * head_dim;
    float2 sum = vector == 4 ? RowDots<4>(dtype, dout, o_dtype, o, first0, first1, head_dim, lane)
                 : vector == 2
                     ? RowDots<2>(dtype, dout, o_dtype, o, first0, first1, head_dim, lane)
                     : RowDots<1>(dtype, dout, o_dtype, o, first0, first1, head_dim, lane);
    for (int offset = 16; offset > 0; offset /= 2) {
      sum.x += __shfl_xor_sync(0xffffffffu, sum.x, offset);
      sum.y += __shfl_xor_sync(0xffffffffu, sum.y, offset);
    }
    if (lane == 0) delta[DeltaIndex(row0, rows, heads, fits32)] = sum.x;
    if (lane == 1 && row1 != row0) delta[DeltaIndex(row1, rows, heads, fits32)] = sum.y;
  }
}

}  // namespace

cudaError_t LaunchBackwardDelta(ElementType dtype, const void* dout, ElementType o_dtype,
                                const void* o, float* delta, int64_t batch, int64_t rows,
                                int64_t heads, int64_t head_dim, cudaStream_t stream) {
  const int64_t n = batch * rows * heads;
  if (n == 0) return cudaSuccess;
  // Warps of 256 threads, each taking kPairsPerWarp pairs of rows.
  constexpr int64_t kWarpsPerBlock = 8, kPairsPerWarp = 4;
  const int64_t blocks =
      (n + 2 * kWarpsPerBlock * kPairsPerWarp - 1) / (2 * kWarpsPerBlock * kPairsPerWarp);
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
  DeltaKernel<<<static_cast<unsigned>(std::min<int64_t>(blocks, INT32_MAX)), 32 * kWarpsPerBlock, 0,
                stream>>>(dtype, dout, o_dtype, o, delta, batch, rows, heads, head_dim, vector);
  return cudaGetLastError();
}

}  // namespace ringattn::cuda
