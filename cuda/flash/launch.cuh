// The launch tail the tensor-core kernels share: the grid of a block task
// (one CTA per tile of a run x query head x batch row), a forward or
// backward CTA's task decoded from its block index, and a launch that first raises the
// kernel's dynamic shared-memory limit.
#ifndef RINGATTN_CUDA_FLASH_LAUNCH_CUH_
#define RINGATTN_CUDA_FLASH_LAUNCH_CUH_

#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <utility>

#include "cuda/flash/block_mask.cuh"
#include "cuda/flash/tile_scheduler.cuh"
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

// What a CTA of TaskGrid (or a KeyTileItem) serves besides its tile: query
// head h of the launch's (blockIdx.y over kv heads kv_head_begin.., group
// query heads each), its kv head, batch row b = blockIdx.z, the row strides (in
// elements) of q-like and k-like tensors, and the index of the task's first
// query row's LSE and D (stat0).
template <int kHeadDim>
struct HeadTask {
  int64_t group, h, kv_head, b;
  int64_t q_stride, kv_stride;
  int64_t stat0;
  __device__ __forceinline__ explicit HeadTask(const ForwardBlockArgs& a)
      : HeadTask(a, blockIdx.y, blockIdx.z) {}
  // Query head `head` of the launch's, batch row `batch`.
  __device__ __forceinline__ HeadTask(const ForwardBlockArgs& a, int64_t head, int64_t batch)
      : group(a.num_heads / a.num_kv_heads),
        h(a.kv_head_begin * group + head),
        kv_head(h / group),
        b(batch),
        q_stride(a.num_heads * kHeadDim),
        kv_stride(KvBufferHeads(a) * kHeadDim),
        stat0((b * a.num_heads + h) * a.q_rows + a.q_row) {}
};

// A (non-persistent) forward CTA's task from its block index (TaskGrid over
// query rows): query tile m_tile of kBlockM rows (q_valid of them in the
// task, from task row q0; blockIdx.x counts from the last tile, so heavy
// causal tiles start first), the key tiles of kBlockN it meets (tiles), the
// tile's first Q row (q, q_offset0 elements on) and the task's first K and
// V rows (k, v, kv_offset0 elements on), elements of type T.
template <typename T, int kHeadDim, int kBlockM, int kBlockN>
struct QueryTileTask : HeadTask<kHeadDim> {
  int64_t k_len;
  int m_tile;
  int64_t q0;
  int q_valid;
  int64_t q_offset0, kv_offset0;
  const T *q, *k, *v;
  KeyTileRange tiles;
  __device__ __forceinline__ explicit QueryTileTask(const ForwardBlockArgs& a)
      : HeadTask<kHeadDim>(a),
        k_len(a.k_pos.length),
        m_tile(gridDim.x - 1 - blockIdx.x),
        q0(static_cast<int64_t>(m_tile) * kBlockM),
        q_valid(static_cast<int>(min64(kBlockM, a.q_pos.length - q0))),
        q_offset0(((this->b * a.q_rows + a.q_row + q0) * a.num_heads + this->h) * kHeadDim),
        kv_offset0(KvOffset(a, this->b, a.k_row, this->kv_head)),
        q(static_cast<const T*>(a.q) + q_offset0),
        k(static_cast<const T*>(a.k) + kv_offset0),
        v(static_cast<const T*>(a.v) + kv_offset0),
        tiles(a, this->b, m_tile, kBlockM, kBlockN) {}
};

// A backward CTA's task from its block index (TaskGrid over key rows): key
// tile n_tile = blockIdx.x of kBlockN keys (k_valid of them in the task,
// from task key k0), the query tiles of kBlockM it meets (tiles); element
// offsets of its first key row in K, V, dK, dV (kv_offset0) and of the
// task's first query row in Q, dO, dQ (q_offset0; q and dout point there,
// elements of type T).
template <typename T, int kHeadDim, int kBlockN, int kBlockM>
struct KeyTileTask : HeadTask<kHeadDim> {
  int64_t q_len;
  int n_tile;
  int64_t k0;
  int k_valid;
  int64_t kv_offset0, q_offset0;
  const T *q, *dout;
  KeyTileQueries tiles;
  __device__ __forceinline__ explicit KeyTileTask(const BackwardBlockArgs& args)
      : KeyTileTask(args, {static_cast<int>(blockIdx.x), blockIdx.y, blockIdx.z}) {}
  // The CTA of `item` (KeyTileOrder's grid).
  __device__ __forceinline__ KeyTileTask(const BackwardBlockArgs& args, const KeyTileItem& item)
      : HeadTask<kHeadDim>(args.task, item.head, item.batch),
        q_len(args.task.q_pos.length),
        n_tile(item.n_tile),
        k0(static_cast<int64_t>(n_tile) * kBlockN),
        k_valid(static_cast<int>(min64(kBlockN, args.task.k_pos.length - k0))),
        kv_offset0(KvOffset(args.task, this->b, args.task.k_row + k0, this->kv_head)),
        q_offset0(((this->b * args.task.q_rows + args.task.q_row) * args.task.num_heads + this->h) *
                  kHeadDim),
        q(static_cast<const T*>(args.task.q) + q_offset0),
        dout(static_cast<const T*>(args.dout) + q_offset0),
        tiles(args.task, this->b, n_tile, kBlockM, kBlockN) {}
};

// Allows `kernel` shared_bytes of dynamic shared memory on the current
// device: cudaFuncSetAttribute once per (kernel, device, bytes), not per
// launch (a driver call of a few microseconds of host time, on every
// launch of a pass of small blocks). The attribute lives as long as the
// device's context: nothing in ringattn resets a device (cudaDeviceReset
// would drop it and make the next launch fail for its shared memory).
// The driver call is made outside the lock: one that waits (a kernel's lazy
// load waits for the device's running kernels) must not hold the other
// devices' threads at their next launch (cuda/kernel_preload.h).
inline cudaError_t AllowDynamicShared(const void* kernel, int shared_bytes) {
  int device = 0;
  if (const cudaError_t e = cudaGetDevice(&device); e != cudaSuccess) return e;
  static std::mutex mu;
  static auto* allowed = new std::map<std::pair<const void*, int>, int>();
  {
    std::lock_guard<std::mutex> lock(mu);
    if ((*allowed)[{kernel, device}] == shared_bytes) return cudaSuccess;  // 0: not yet
  }
  const cudaError_t e =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, shared_bytes);
  if (e == cudaSuccess) {
    std::lock_guard<std::mutex> lock(mu);
    (*allowed)[{kernel, device}] = shared_bytes;
  }
  return e;
}

// kernel<<<grid, threads, shared_bytes, stream>>>(args...), after allowing
// it shared_bytes of dynamic shared memory.
template <typename... Params, typename... Args>
cudaError_t LaunchKernel(void (*kernel)(Params...), dim3 grid, int threads, int shared_bytes,
                         cudaStream_t stream, const Args&... args) {
  if (const cudaError_t e = AllowDynamicShared(reinterpret_cast<const void*>(kernel), shared_bytes);
      e != cudaSuccess) {
    return e;
  }
  kernel<<<grid, threads, shared_bytes, stream>>>(args...);
  return cudaGetLastError();
}

}  // namespace ringattn::cuda::flash

#endif  // RINGATTN_CUDA_FLASH_LAUNCH_CUH_
