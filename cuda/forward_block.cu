#include "core/lse_math.h"
#include "cuda/element_access.cuh"
#include "cuda/forward_block.h"

namespace ringattn::cuda {
namespace {

constexpr int kRowsPerBlock = 64;  // threads: one query row each
constexpr int kTileKeys = 16;      // keys staged per shared-memory tile

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
    q[c] = active ? LoadAsFloat(a.dtype, a.q,
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
      const int64_t src = KvOffset(a, b, a.k_row + k0 + j, kv_head) + c;
      k_tile[j][c] = LoadAsFloat(a.dtype, a.k, src);
      v_tile[j][c] = LoadAsFloat(a.dtype, a.v, src);
    }
    if (threadIdx.x < keys) k_positions[threadIdx.x] = At(a.k_pos, k0 + threadIdx.x);
    __syncthreads();
    if (!active) continue;
    for (int j = 0; j < keys; ++j) {
      const int64_t k_pos = k_positions[j];
      const int64_t delta = k_pos - q_pos;
      if (delta < a.min_delta || delta > a.max_delta || k_pos >= key_limit || k_pos < a.doc_begin ||
          k_pos >= a.doc_end) {
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
  if (!active) return;
  const float inv = row_sum > 0.f ? 1.f / row_sum : 0.f;
  for (int c = 0; c < d; ++c) acc[c] *= inv;
  if (a.out != nullptr) {  // one-call attention: O in the input dtype, LSE
    const int64_t offset = ((b * a.q_rows + row) * a.num_heads + h) * a.head_dim;
    for (int c = 0; c < d; ++c) StoreRounded(a.dtype, a.out, offset + c, acc[c]);
    a.state_lse[(b * a.num_heads + h) * a.q_rows + row] =
        row_sum > 0.f ? row_max + logf(row_sum) : -INFINITY;
    return;
  }
  if (row_sum == 0.f) return;  // no allowed key: state unchanged
  MergeRow(a.state_o + ((b * a.q_rows + row) * a.num_heads + h) * a.head_dim,
           a.state_lse + (b * a.num_heads + h) * a.q_rows + row, acc, row_max + logf(row_sum), d);
}

template <int kHeadDim>
cudaError_t Launch(const ForwardBlockArgs& a, cudaStream_t stream) {
  const int64_t group = a.num_heads / a.num_kv_heads;
  const dim3 grid(static_cast<unsigned>((a.q_pos.length + kRowsPerBlock - 1) / kRowsPerBlock),
                  static_cast<unsigned>((a.kv_head_end - a.kv_head_begin) * group),
                  static_cast<unsigned>(a.batch));
  ForwardBlockKernel<kHeadDim><<<grid, kRowsPerBlock, 0, stream>>>(a);
  return cudaGetLastError();
}

// grid: (ceil(k.length / kRowsPerBlock), query heads of the task, batch)
template <int kHeadDim>
__global__ void BackwardBlockKernel(BackwardBlockArgs args) {
  const ForwardBlockArgs& a = args.task;
  __shared__ float q_tile[kTileKeys][kHeadDim];
  __shared__ float do_tile[kTileKeys][kHeadDim];
  __shared__ float lse_tile[kTileKeys];
  __shared__ float delta_tile[kTileKeys];
  __shared__ int64_t q_positions[kTileKeys];
  const int64_t group = a.num_heads / a.num_kv_heads;
  const int64_t h = a.kv_head_begin * group + blockIdx.y;
  const int64_t kv_head = h / group;
  const int64_t b = blockIdx.z;
  const int64_t j = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x;
  const bool active = j < a.k_pos.length;
  const int64_t k_row = a.k_row + j;
  const int64_t k_pos = active ? At(a.k_pos, j) : 0;
  const int64_t key_limit = a.key_limit != nullptr ? a.key_limit[b] : INT64_MAX;
  const bool key_valid = active && k_pos < key_limit && k_pos >= a.doc_begin && k_pos < a.doc_end;
  const int d = static_cast<int>(a.head_dim);
  const int64_t kv_offset = KvOffset(a, b, k_row, kv_head);
  float k[kHeadDim], v[kHeadDim], dk[kHeadDim], dv[kHeadDim];
  for (int c = 0; c < d; ++c) {
    k[c] = active ? LoadAsFloat(a.dtype, a.k, kv_offset + c) : 0.f;
    v[c] = active ? LoadAsFloat(a.dtype, a.v, kv_offset + c) : 0.f;
    dk[c] = dv[c] = 0.f;
  }
  for (int64_t q0 = 0; q0 < a.q_pos.length; q0 += kTileKeys) {
    const int64_t left = a.q_pos.length - q0;
    const int rows = static_cast<int>(left < kTileKeys ? left : kTileKeys);
    __syncthreads();
    for (int e = threadIdx.x; e < rows * d; e += blockDim.x) {
      const int i = e / d, c = e % d;
      const int64_t src = ((b * a.q_rows + a.q_row + q0 + i) * a.num_heads + h) * a.head_dim + c;
      q_tile[i][c] = LoadAsFloat(a.dtype, a.q, src);
      do_tile[i][c] = LoadAsFloat(a.dtype, args.dout, src);
    }
    if (threadIdx.x < rows) {
      const int64_t stat = (b * a.num_heads + h) * a.q_rows + a.q_row + q0 + threadIdx.x;
      lse_tile[threadIdx.x] = args.lse[stat];
      delta_tile[threadIdx.x] = args.delta[stat];
      q_positions[threadIdx.x] = At(a.q_pos, q0 + threadIdx.x);
    }
    __syncthreads();
    if (!key_valid) continue;
    for (int i = 0; i < rows; ++i) {
      const int64_t delta_pos = k_pos - q_positions[i];
      if (delta_pos < a.min_delta || delta_pos > a.max_delta || lse_tile[i] == -INFINITY) {
        continue;
      }
      float s = 0.f, dp = 0.f;
      for (int c = 0; c < d; ++c) {
        s += q_tile[i][c] * k[c];
        dp += do_tile[i][c] * v[c];
      }
      const float p = __expf(s * a.softmax_scale - lse_tile[i]);
      const float ds = p * (dp - delta_tile[i]) * a.softmax_scale;
      float* dq = args.dq + ((b * a.q_rows + a.q_row + q0 + i) * a.num_heads + h) * a.head_dim;
      for (int c = 0; c < d; ++c) {
        dv[c] += p * do_tile[i][c];
        dk[c] += ds * q_tile[i][c];
        atomicAdd(dq + c, ds * k[c]);
      }
    }
  }
  if (!key_valid) return;
  for (int c = 0; c < d; ++c) {
    atomicAdd(args.dk + kv_offset + c, dk[c]);  // GQA: several heads add
    atomicAdd(args.dv + kv_offset + c, dv[c]);
  }
}

template <int kHeadDim>
cudaError_t LaunchBackward(const BackwardBlockArgs& args, cudaStream_t stream) {
  const ForwardBlockArgs& a = args.task;
  const int64_t group = a.num_heads / a.num_kv_heads;
  const dim3 grid(static_cast<unsigned>((a.k_pos.length + kRowsPerBlock - 1) / kRowsPerBlock),
                  static_cast<unsigned>((a.kv_head_end - a.kv_head_begin) * group),
                  static_cast<unsigned>(a.batch));
  BackwardBlockKernel<kHeadDim><<<grid, kRowsPerBlock, 0, stream>>>(args);
  return cudaGetLastError();
}

bool ValidTask(const ForwardBlockArgs& a) {
  return a.head_dim >= 1 && a.head_dim <= kForwardBlockMaxHeadDim &&
         a.kv_head_begin < a.kv_head_end && a.num_kv_heads >= 1 &&
         a.num_heads % a.num_kv_heads == 0 && a.kv_head_begin >= a.kv_head_offset &&
         a.kv_head_end <= a.kv_head_offset + KvBufferHeads(a);
}

}  // namespace

cudaError_t LaunchBackwardBlock(const BackwardBlockArgs& args, cudaStream_t stream) {
  const ForwardBlockArgs& a = args.task;
  if (!ValidTask(a)) return cudaErrorInvalidValue;
  if (a.q_pos.length == 0 || a.k_pos.length == 0 || a.batch == 0) return cudaSuccess;
  if (a.head_dim <= 64) return LaunchBackward<64>(args, stream);
  if (a.head_dim <= 128) return LaunchBackward<128>(args, stream);
  return LaunchBackward<256>(args, stream);
}

cudaError_t LaunchForwardBlock(const ForwardBlockArgs& a, cudaStream_t stream) {
  if (!ValidTask(a)) return cudaErrorInvalidValue;
  if (a.q_pos.length == 0 || a.k_pos.length == 0 || a.batch == 0) return cudaSuccess;
  // Register arrays sized by the head_dim bucket.
  if (a.head_dim <= 64) return Launch<64>(a, stream);
  if (a.head_dim <= 128) return Launch<128>(a, stream);
  return Launch<256>(a, stream);
}

}  // namespace ringattn::cuda
