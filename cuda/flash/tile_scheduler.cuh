// The persistent kernels' tile scheduler: one CTA per SM walks the
// (query tile, head, batch) tiles of a task with a stride of the grid size.
// Tiles are numbered heaviest first: the last query tiles (which see the
// most keys under a causal mask) come first, every head and batch row of
// one query tile together, so the static round robin hands each CTA about
// the same mix of heavy and light tiles and short sequences with many heads
// or batch rows still fill every SM.
#ifndef RINGATTN_CUDA_FLASH_TILE_SCHEDULER_CUH_
#define RINGATTN_CUDA_FLASH_TILE_SCHEDULER_CUH_

#include <cstdint>

namespace ringattn::cuda::flash {

struct QueryTile {
  int m;         // query tile within the task
  int64_t head;  // query head within the launch's head range
  int64_t batch;
};

struct HeavyFirstTileScheduler {
  int m_tiles;
  int64_t heads, batch;

  __host__ __device__ int64_t Count() const { return m_tiles * heads * batch; }
  __device__ __forceinline__ QueryTile At(int64_t t) const {
    const int64_t per_m = heads * batch;
    const int64_t rest = t % per_m;
    return {m_tiles - 1 - static_cast<int>(t / per_m), rest % heads, rest / heads};
  }
};

}  // namespace ringattn::cuda::flash

#endif  // RINGATTN_CUDA_FLASH_TILE_SCHEDULER_CUH_
