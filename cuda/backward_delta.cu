#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "cuda/backward_delta.h"
#include "cuda/element_access.cuh"

namespace ringattn::cuda {
namespace {

// D of 32 consecutive rows (one (b, h), query rows t0 on: elements
// `first` on, `row_stride` apart) for one warp: lanes_per_row lanes (a
// power of two) read a row, kN adjacent elements per load, so 32 /
// lanes_per_row rows are read at a time; shuffles sum each row's parts and
// hand row i's D to lane i (rows past `valid_rows`: 0), so that the warp
// writes its 32 D values with one coalesced store. `zeros` (or null): the
// elements of the same positions set to 0 as they are read.
template <int kN>
__device__ __forceinline__ void StoreZeros(float* p) {
  if constexpr (kN >= 4) {
#pragma unroll
    for (int i = 0; i < kN; i += 4) *reinterpret_cast<float4*>(p + i) = make_float4(0, 0, 0, 0);
  } else if constexpr (kN == 2) {
    *reinterpret_cast<float2*>(p) = make_float2(0, 0);
  } else {
    *p = 0;
  }
}
template <int kN, typename TD, typename TO>
__device__ __forceinline__ float WarpDeltas(const TD* dout, const TO* o, float* zeros,
                                            int64_t first, int64_t row_stride, int valid_rows,
                                            int64_t head_dim, int lanes_per_row, int lane) {
  const int rows_at_once = 32 / lanes_per_row;
  const int sub = lane / lanes_per_row, part = lane % lanes_per_row;
  float mine = 0.f;
  // Unrolled so that several passes' loads are in flight at once (each
  // pass alone is a round trip to memory before its shuffles).
#pragma unroll 4
  for (int pass = 0; pass < lanes_per_row; ++pass) {
    const int r = pass * rows_at_once + sub;
    float sum = 0.f;
    if (r < valid_rows) {
      const int64_t row_first = first + r * row_stride;
      for (int64_t c = kN * part; c < head_dim; c += kN * lanes_per_row) {
        float x[kN], y[kN];
        LoadFloats<kN>(dout + row_first + c, x);
        LoadFloats<kN>(o + row_first + c, y);
        if (zeros != nullptr) StoreZeros<kN>(zeros + row_first + c);
#pragma unroll
        for (int i = 0; i < kN; ++i) sum += x[i] * y[i];
      }
    }
    for (int offset = lanes_per_row / 2; offset > 0; offset /= 2) {
      sum += __shfl_xor_sync(0xffffffffu, sum, offset);
    }
    // Row pass * rows_at_once + j is lane j * lanes_per_row's (every lane
    // of its group holds it); lane i takes row i.
    const float row_sum = __shfl_sync(0xffffffffu, sum, (lane % rows_at_once) * lanes_per_row);
    if (lane / rows_at_once == pass) mine = row_sum;
  }
  return mine;
}

// Each warp takes 32 consecutive query rows of one (b, h) at a time
// (grid-stride; heads fastest, so a block's warps read neighbouring rows):
// D is [b, h, t] while dout and o are [b, t, h, c], and 32 rows of one head
// are one 128-byte store of D where consecutive rows of the input (other
// heads) were 32 scattered 4-byte stores. The elements per load (vector:
// 8, 4, 2 or 1, as head_dim and the buffers' alignment allow) are chosen on
// the host, the dtypes once per 32 rows (branches the whole warp takes
// alike), not per element.
__global__ void DeltaKernel(ElementType dtype, const void* dout, ElementType o_dtype, const void* o,
                            float* delta, float* zeros, int64_t batch, int64_t rows, int64_t heads,
                            int64_t head_dim, int vector, int lanes_per_row) {
  const int64_t row_chunks = (rows + 31) / 32;
  const int64_t chunks = batch * heads * row_chunks;
  const int lane = threadIdx.x % 32;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * blockDim.x / 32;
  for (int64_t chunk = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
       chunk < chunks; chunk += warps) {
    const int64_t h = chunk % heads, rest = chunk / heads;
    const int64_t t0 = 32 * (rest % row_chunks), b = rest / row_chunks;
    const int valid_rows = static_cast<int>(rows - t0 < 32 ? rows - t0 : 32);
    const int64_t first = ((b * rows + t0) * heads + h) * head_dim, stride = heads * head_dim;
    const auto deltas = [&](auto elements) {
      return WithTypedPointer(dtype, dout, [&](const auto* typed_dout) {
        return WithTypedPointer(o_dtype, o, [&](const auto* typed_o) {
          return WarpDeltas<decltype(elements)::value>(typed_dout, typed_o, zeros, first, stride,
                                                       valid_rows, head_dim, lanes_per_row, lane);
        });
      });
    };
    const float d = vector == 8   ? deltas(std::integral_constant<int, 8>())
                    : vector == 4 ? deltas(std::integral_constant<int, 4>())
                    : vector == 2 ? deltas(std::integral_constant<int, 2>())
                                  : deltas(std::integral_constant<int, 1>());
    if (lane < valid_rows) delta[(b * heads + h) * rows + t0 + lane] = d;
  }
}

}  // namespace

cudaError_t LaunchBackwardDelta(ElementType dtype, const void* dout, ElementType o_dtype,
                                const void* o, float* delta, int64_t batch, int64_t rows,
                                int64_t heads, int64_t head_dim, cudaStream_t stream,
                                float* zeros) {
  if (batch * rows * heads == 0) return cudaSuccess;
  // Elements per load: 8, 4, 2 or 1, as head_dim and the buffers'
  // alignment allow (up to 16 bytes a load; the zeros' stores likewise).
  const auto aligned = [](const void* p, ElementType t, int elements) {
    return reinterpret_cast<uintptr_t>(p) % std::min<int64_t>(16, elements * ElementBytes(t)) == 0;
  };
  int vector = 1;
  for (const int elements : {8, 4, 2}) {
    if (head_dim % elements == 0 && aligned(dout, dtype, elements) &&
        aligned(o, o_dtype, elements) &&
        (zeros == nullptr || aligned(zeros, ElementType::kFloat32, elements))) {
      vector = elements;
      break;
    }
  }
  // Lanes per row: the most (a power of two up to 32) that each have a load.
  int lanes_per_row = 32;
  while (lanes_per_row > 1 && lanes_per_row * vector > head_dim) lanes_per_row /= 2;
  // Blocks of 4 warps, a warp per chunk of 32 rows: a warp's chunk is
  // lanes_per_row dependent passes, so the GPU's memory parallelism comes
  // from many warps (8 warps of 4 chunks each took 65 us for the 2048
  // chunks of 2048 tokens x 32 heads on an H200: 64 blocks on 132 SMs;
  // ring_bench --timeline, forty-sixth session).
  constexpr int64_t kWarpsPerBlock = 4, kChunksPerWarp = 1;
  const int64_t chunks = batch * heads * ((rows + 31) / 32);
  const int64_t blocks =
      (chunks + kWarpsPerBlock * kChunksPerWarp - 1) / (kWarpsPerBlock * kChunksPerWarp);
  DeltaKernel<<<static_cast<unsigned>(std::min<int64_t>(blocks, INT32_MAX)), 32 * kWarpsPerBlock, 0,
                stream>>>(dtype, dout, o_dtype, o, delta, zeros, batch, rows, heads, head_dim,
                          vector, lanes_per_row);
  return cudaGetLastError();
}

}  // namespace ringattn::cuda
