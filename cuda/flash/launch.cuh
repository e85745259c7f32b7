// The launch tail the tensor-core kernels share: the grid of a block task
// (one CTA per tile of a run x query head x batch row), a forward or
// backward CTA's task decoded from its block index, and a launch that first raises the
// kernel's dynamic shared-memory limit.
#ifndef RINGATTN_CUDA_FLASH_LAUNCH_CUH_
#define RINGATTN_CUDA_FLASH_LAUNCH_CUH_

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/flash/block_mask.cuh"
#include "cuda/kernel_args.h"

namespace ringattn::cuda::flash {

// One CTA per tile of `tile` of the task's `rows` (query rows for a
// forward, key rows for a backward), per query head of the launch's kv
// heads, per batch row.
inline dim3 TaskGrid(const ForwardBlockArgs& a, int64_t rows, int tile) {
  const int64_t group = a.num_heads / a.num_kv_heads;
  return dim3(static_cast<unsigned>((rows + tile - 1) / tile),
              static_cast<unsigned>((a.kv_head_end - a.kv_head_begin) * group),
              static_cast<unsigned>(a.batch));
}

// A (non-persistent) forward CTA's task from its block index (TaskGrid over
// query rows): query tile m_tile of kBlockM rows (q_valid of them in the
// task, from task row q0; blockIdx.x counts from the last tile, so heavy
// causal tiles start first), query head h = blockIdx.y of the launch's,
// batch row b = blockIdx.z; element offsets of the tile's first Q row
// (q_offset0) and of the task's first key row in K and V (kv_offset0).
template <int kHeadDim, int kBlockM>
struct QueryTileTask {
  int64_t k_len;
  int m_tile;
  int64_t q0;
  int q_valid;
  int64_t group, h, kv_head, b;
  int64_t q_stride, kv_stride;  // elements between rows
  int64_t q_offset0, kv_offset0;
  __device__ __forceinline__ explicit QueryTileTask(const ForwardBlockArgs& a)
      : k_len(a.k_pos.length),
        m_tile(gridDim.x - 1 - blockIdx.x),
        q0(static_cast<int64_t>(m_tile) * kBlockM),
        q_valid(static_cast<int>(min64(kBlockM, a.q_pos.length - q0))),
        group(a.num_heads / a.num_kv_heads),
        h(a.kv_head_begin * group + blockIdx.y),
        kv_head(h / group),
        b(blockIdx.z),
        q_stride(a.num_heads * kHeadDim),
        kv_stride(KvBufferHeads(a) * kHeadDim),
        q_offset0(((b * a.q_rows + a.q_row + q0) * a.num_heads + h) * kHeadDim),
        kv_offset0(KvOffset(a, b, a.k_row, kv_head)) {}
};

// A backward CTA's task from its block index (TaskGrid over key rows): key
// tile n_tile = blockIdx.x of kBlockN keys (k_valid of them in the task,
// from task key k0), query head h = blockIdx.y of the launch's, batch row
// b = blockIdx.z; element offsets of its first key row in K, V, dK, dV
// (kv_offset0) and of the task's first query row in Q, dO, dQ (q_offset0),
// and the index of that row's LSE and D (stat0).
template <int kHeadDim, int kBlockN>
struct KeyTileTask {
  int64_t q_len;
  int n_tile;
  int64_t k0;
  int k_valid;
  int64_t group, h, kv_head, b;
  int64_t q_stride, kv_stride;  // elements between rows
  int64_t kv_offset0, q_offset0, stat0;
  __device__ __forceinline__ explicit KeyTileTask(const ForwardBlockArgs& a)
      : q_len(a.q_pos.length),
        n_tile(blockIdx.x),
        k0(static_cast<int64_t>(n_tile) * kBlockN),
        k_valid(static_cast<int>(min64(kBlockN, a.k_pos.length - k0))),
        group(a.num_heads / a.num_kv_heads),
        h(a.kv_head_begin * group + blockIdx.y),
        kv_head(h / group),
        b(blockIdx.z),
        q_stride(a.num_heads * kHeadDim),
        kv_stride(KvBufferHeads(a) * kHeadDim),
        kv_offset0(KvOffset(a, b, a.k_row + k0, kv_head)),
        q_offset0(((b * a.q_rows + a.q_row) * a.num_heads + h) * kHeadDim),
        stat0((b * a.num_heads + h) * a.q_rows + a.q_row) {}
};

// kernel<<<grid, threads, shared_bytes, stream>>>(args...), after allowing
// it shared_bytes of dynamic shared memory.
template <typename... Params, typename... Args>
cudaError_t LaunchKernel(void (*kernel)(Params...), dim3 grid, int threads, int shared_bytes,
                         cudaStream_t stream, const Args&... args) {
  if (const cudaError_t e =
          cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, shared_bytes);
      e != cudaSuccess) {
    return e;
  }
  kernel<<<grid, threads, shared_bytes, stream>>>(args...);
  return cudaGetLastError();
}

}  // namespace ringattn::cuda::flash

#endif  // RINGATTN_CUDA_FLASH_LAUNCH_CUH_
