// The launch tail the tensor-core kernels share: the grid of a block task
// (one CTA per tile of a run x query head x batch row) and a launch that
// first raises the kernel's dynamic shared-memory limit.
#ifndef RINGATTN_CUDA_FLASH_LAUNCH_CUH_
#define RINGATTN_CUDA_FLASH_LAUNCH_CUH_

#include <cuda_runtime.h>

#include <cstdint>

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
