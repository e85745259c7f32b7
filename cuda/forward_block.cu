#include "cuda/forward_block.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "core/lse_math.h"

namespace ringattn::cuda {
namespace {

constexpr int kRowsPerBlock = 64;   // threads: one query row each
constexpr int kTileKeys = 16;       // keys staged per shared-memory tile

__device__ __forceinline__ float Load(ElementType t, const void* p, int64_t i) {
  switch (t) {
    case ElementType::kFloat16:
      return __half2float(static_cast<const __half*>(p)[i]);
    case ElementType::kBFloat16:
      return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    default:
      return static_cast<const float*>(p)[i];
  }
}

__device__ __forceinline__ int64_t At(const DeviceRun& r, int64_t i) {
  return r.base + (i / r.group) * r.group_stride + (i % r.group) * r.stride;
}

// grid: (ceil(q.length / kRowsPerBlock), query heads of the task, batch)
template <int kHeadDim>
__global__ void ForwardBlockKernel(ForwardBlockArgs a) {
  __shared__ float k_tile[kTileKeys][kHeadDim];
  __shared__ float v_tile[kTileKeys][kHeadDim];
  __shared__ int64_t k_positions[kTileKeys];
  const int64_t group = a.num_heads / a.num_kv_heads;
  const int64_t h = a.kv_head_begin * group + blockIdx.y;
  const int64_t kv_head = h / group;
  const int64_t b = blockIdx.z;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x;
  const bool active = i < a.q_pos.length;
  const int64_t row = a.q_row + i;
  const int64_t q_pos = active ? At(a.q_pos, i) : 0;
  const int64_t key_limit = a.key_limit != nullptr ? a.key_limit[b] : INT64_MAX;
  const int d = static_cast<int>(a.head_dim);

  float q[kHeadDim];
  float acc[kHeadDim];
  for (int c = 0; c < d; ++c) {
    q[c] = active ? Load(a.dtype, a.q,
                         ((b * a.q_rows + row) * a.num_heads + h) * a.head_dim + c) *
                        a.softmax_scale
                  : 0.f;
    acc[c] = 0.f;
  }
  float row_max = -INFINITY, row_sum = 0.f;
  for (int64_t k0 = 0; k0 < a.k_pos.length; k0 += kTileKeys) {
    const int64_t left = a.k_pos.length - k0;
    const int keys = static_cast<int>(left < kTileKeys ? left : kTileKeys);
    __syncthreads();
    for (int e = threadIdx.x; e < keys * d; e += blockDim.x) {
      const int j = e / d, c = e % d;
      const int64_t src =
          ((b * a.k_rows + a.k_row + k0 + j) * a.num_kv_heads + kv_head) * a.head_dim + c;
      k_tile[j][c] = Load(a.dtype, a.k, src);
      v_tile[j][c] = Load(a.dtype, a.v, src);
    }
    if (threadIdx.x < keys) k_positions[threadIdx.x] = At(a.k_pos, k0 + threadIdx.x);
    __syncthreads();
    if (!active) continue;
    for (int j = 0; j < keys; ++j) {
      const int64_t k_pos = k_positions[j];
      const int64_t delta = k_pos - q_pos;
      if (delta < a.min_delta || delta > a.max_delta || k_pos >= key_limit ||
          k_pos < a.doc_begin || k_pos >= a.doc_end) {
        continue;
      }
      float s = 0.f;
      for (int c = 0; c < d; ++c) s += q[c] * k_tile[j][c];
      if (s > row_max) {
        const float rescale = __expf(row_max - s);  // 0 when row_max = -inf
        row_sum *= rescale;
        for (int c = 0; c < d; ++c) acc[c] *= rescale;
        row_max = s;
      }
      const float p = __expf(s - row_max);
      row_sum += p;
      for (int c = 0; c < d; ++c) acc[c] += p * v_tile[j][c];
    }
  }
  if (!active || row_sum == 0.f) return;  // no allowed key: state unchanged
  const float inv = 1.f / row_sum;
  for (int c = 0; c < d; ++c) acc[c] *= inv;
  MergeRow(a.state_o + ((b * a.q_rows + row) * a.num_heads + h) * a.head_dim,
           a.state_lse + (b * a.num_heads + h) * a.q_rows + row, acc,
           row_max + logf(row_sum), d);
}

template <int kHeadDim>
cudaError_t Launch(const ForwardBlockArgs& a, cudaStream_t stream) {
  const int64_t group = a.num_heads / a.num_kv_heads;
  const dim3 grid(
      static_cast<unsigned>((a.q_pos.length + kRowsPerBlock - 1) / kRowsPerBlock),
      static_cast<unsigned>((a.kv_head_end - a.kv_head_begin) * group),
      static_cast<unsigned>(a.batch));
  ForwardBlockKernel<kHeadDim><<<grid, kRowsPerBlock, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace

cudaError_t LaunchForwardBlock(const ForwardBlockArgs& a, cudaStream_t stream) {
  if (a.head_dim < 1 || a.head_dim > kForwardBlockMaxHeadDim ||
      a.kv_head_begin >= a.kv_head_end || a.num_kv_heads < 1 ||
      a.num_heads % a.num_kv_heads != 0) {
    return cudaErrorInvalidValue;
  }
  if (a.q_pos.length == 0 || a.k_pos.length == 0 || a.batch == 0) return cudaSuccess;
  // Register arrays sized by the head_dim bucket.
  if (a.head_dim <= 64) return Launch<64>(a, stream);
  if (a.head_dim <= 128) return Launch<128>(a, stream);
  return Launch<256>(a, stream);
}

}  // namespace ringattn::cuda
