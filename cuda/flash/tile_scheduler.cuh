// The persistent kernels' tile scheduler (and on it the backwards' CTA
// order, KeyTileOrder below): one CTA per SM takes the
// (query tile, head, batch) tiles of a task one after another, the first by
// its index and each next from a counter (TileCounter below). Tiles are
// numbered heaviest first: the last query tiles (which see the most keys
// under a causal mask) come first, every head and batch row of one query
// tile together, so the light tiles fill in at the end and short sequences
// with many heads or batch rows still fill every SM.
//
// Heads and batch rows are taken in sections: every tile of one section
// runs before the next section's, so the CTAs running at once read the same
// K and V and each key tile comes from HBM about once (FlashAttention-3
// swizzles its tiles the same way). Under a mask a section is one round:
// the fewest whole kv heads whose query tiles give every CTA one (and no
// more than fit in half the L2), so a CTA's next tile reads the keys the
// others are reading; the final section is longer, so that its heaviest
// tiles, taken first, end with the rest (without it, 3 pairs at s8192 lost
// 3 %). On one H200 (docs/KERNEL_BENCH.md, thirty-eighth session) against
// the half-L2 sections before it: b16 s1024 forward +1.0-1.1 % (17 pairs
// instead of 50; its fused ring-state line +1.9-2.1 %), s16384 d64
// +0.7-0.8 %, s32768 +0.2 %, s8192 and d256 unchanged. In a task without a
// mask every tile walks all of its head's keys, so the keys in flight are
// those of every pair being worked on: there a section is the fewest whole
// kv heads whose tiles give every CTA one (the s8192 full row: 3 pairs
// instead of 6, HBM reads 517 -> 243 MB, +1.1 % forward, +0.6 % fused).
// One section of all pairs is the plain heavy-first order.
#ifndef RINGATTN_CUDA_FLASH_TILE_SCHEDULER_CUH_
#define RINGATTN_CUDA_FLASH_TILE_SCHEDULER_CUH_

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "cuda/kernel_args.h"

namespace ringattn::cuda::flash {

struct QueryTile {
  int m;         // query tile within the task
  int64_t head;  // query head within the launch's head range
  int64_t batch;
};

struct HeavyFirstTileScheduler {
  int m_tiles;
  int64_t heads, batch;
  int64_t section;  // (head, batch) pairs per section, head fastest
  // The first pair of a final section that holds every pair from it on
  // (a multiple of `section`); -1: the last section is `section` pairs or
  // what is left.
  int64_t final_first = -1;

  // The tiles of `m_tiles` query tiles x `heads` x `batch`, in sections of
  // whole kv heads (`group` query heads each); l2_budget 0: one section.
  // Under a mask, a section is the kv heads whose tiles give the `ctas`
  // CTAs one tile each (one round: a CTA's next tile reads the K and V the
  // others are reading), at most as many as fit in `l2_budget` bytes at
  // `kv_head_bytes` of K and V each, and the final section is long enough
  // that its heaviest tiles, taken first, end with the rest (1.25 heaviest
  // tiles' key tiles per CTA in all). Where `every_pair_allowed` (no
  // mask), as many kv heads as fit in the budget (never fewer pairs than
  // keep every CTA busy twice over), but no more than give each CTA one
  // tile.
  static HeavyFirstTileScheduler Sections(int m_tiles, int64_t heads, int64_t batch, int64_t group,
                                          int64_t kv_head_bytes, int64_t l2_budget, int ctas,
                                          bool every_pair_allowed) {
    const int64_t pairs = heads * batch;
    const auto whole_kv_heads = [&](int64_t n) { return (n + group - 1) / group * group; };
    const int64_t cover = whole_kv_heads((ctas + m_tiles - 1) / m_tiles);
    int64_t section = pairs, final_first = -1;
    if (l2_budget > 0 && kv_head_bytes > 0 && m_tiles > 0) {
      const int64_t fit = std::max<int64_t>(1, l2_budget / kv_head_bytes) * group;
      if (every_pair_allowed) {
        section = std::min(std::max<int64_t>(fit, (2 * ctas + m_tiles - 1) / m_tiles), cover);
      } else {
        section = std::max<int64_t>(group, std::min(fit, cover));
      }
      section = std::min(section, pairs);
      if (!every_pair_allowed) {
        // Query tile m meets about m + 1 key tiles, a pair (m_tiles + 1)
        // m_tiles / 2: 2.5 ctas / (m_tiles + 1) pairs hold 1.25 x m_tiles
        // key tiles per CTA, a heaviest tile and a quarter.
        const int64_t final_pairs =
            whole_kv_heads((5 * int64_t{ctas} + 2 * (m_tiles + 1) - 1) / (2 * (m_tiles + 1)));
        final_first = std::max<int64_t>(0, (pairs - final_pairs) / section * section);
      }
    }
    return {m_tiles, heads, batch, std::max<int64_t>(section, 1), final_first};
  }

  __host__ __device__ int64_t Count() const { return m_tiles * heads * batch; }
  __host__ __device__ __forceinline__ QueryTile At(int64_t t) const {
    // The section holding tile t: its first pair, its pairs (the last may
    // hold fewer; the final one every pair from final_first on) and t's
    // place in it.
    int64_t first_pair, pairs, rest;
    if (final_first >= 0 && t >= final_first * m_tiles) {
      first_pair = final_first;
      pairs = heads * batch - final_first;
      rest = t - final_first * m_tiles;
    } else {
      const int64_t per_section = section * m_tiles;
      first_pair = t / per_section * section;
      rest = t % per_section;
      const int64_t left = heads * batch - first_pair;
      pairs = section < left ? section : left;
    }
    const int64_t pair = first_pair + rest % pairs;
    return {m_tiles - 1 - static_cast<int>(rest / pairs), pair % heads, pair / heads};
  }
};

// The order of a backward's CTAs (one per key tile x query head x batch
// row, a 1-D grid of Count(): OrderGrid): (head, batch) pairs in sections of
// two, key tile 0 first within a section (under a causal mask it meets the
// most queries). Key tiles counted from the last are the scheduler's query
// tiles. The warp-specialized backward on one H200 (docs/KERNEL_BENCH.md):
// s8192 d128 causal +4 % over one pair at a time (TaskGrid's order), the
// other rows flat; sections of 16 pairs or more lost up to 30 % at b16 s1024.
inline HeavyFirstTileScheduler KeyTileOrder(const ForwardBlockArgs& a, int tile) {
  const int64_t group = a.num_heads / a.num_kv_heads;
  const int64_t heads = (a.kv_head_end - a.kv_head_begin) * group;
  const int tiles = static_cast<int>((a.k_pos.length + tile - 1) / tile);
  return {tiles, heads, a.batch, std::clamp<int64_t>(heads * a.batch, 1, 2)};
}

inline dim3 OrderGrid(const HeavyFirstTileScheduler& order) {
  return dim3(static_cast<unsigned>(order.Count()));
}

// A backward CTA's key tile, query head (within the launch's) and batch row:
// item t of KeyTileOrder's `order`.
struct KeyTileItem {
  int n_tile;
  int64_t head, batch;
};
__host__ __device__ __forceinline__ KeyTileItem KeyTileAt(const HeavyFirstTileScheduler& order,
                                                          int64_t t) {
  const QueryTile tile = order.At(t);
  return {order.m_tiles - 1 - tile.m, tile.head, tile.batch};
}

// The dynamic order (FlashAttention-3's persistent scheduler does the
// same): each CTA takes its first tile by its index and every later one
// from a counter in global memory, so a CTA that starts late -- its SM
// held by a concurrent kernel, such as the NCCL transfer beside a ring
// step -- takes fewer tiles instead of finishing last with a static share
// (a static stride of the grid size lost 12-14 % of a ring step beside its
// hop on 2 x H200, and 1-15 % alone: docs/KERNEL_BENCH.md).
// A counter serves the launches of one stream, one at a time (a stream runs
// its kernels in order): the CTA that finishes last resets it for the
// stream's next launch. Streams take slots of a pool; launches on
// different streams, which may run at once, never share one.
struct TileCounter {
  unsigned long long next;  // tiles taken beyond the first gridDim.x
  unsigned long long done;  // CTAs finished
};
constexpr int kTileCounterSlots = 1024;  // streams per GPU, per kernel family

#ifdef __CUDACC__  // (the host-side test reads the order alone)
// This CTA's item of a KeyTileOrder grid.
__device__ __forceinline__ KeyTileItem KeyTileOfBlock(const HeavyFirstTileScheduler& order) {
  return KeyTileAt(order, blockIdx.x);
}
// The next tile of a CTA that has taken its tiles so far.
__device__ __forceinline__ int64_t NextTile(TileCounter* counter) {
  return static_cast<int64_t>(atomicAdd(&counter->next, 1ull)) + gridDim.x;
}
// After the CTA's last tile: the last CTA of the launch resets the slot.
// The fences order each CTA's last take of `next` before its count in
// `done`, and every count before the reset (relaxed atomics to two
// addresses are not ordered otherwise, and a late take after the reset
// would skip a tile of the stream's next launch).
__device__ __forceinline__ void FinishTiles(TileCounter* counter) {
  __threadfence();
  if (atomicAdd(&counter->done, 1ull) == gridDim.x - 1) {
    __threadfence();
    counter->next = 0;
    counter->done = 0;
  }
}
#endif  // __CUDACC__

// The L2 bytes one section's K and V may take: half the cache (the rest
// holds the queries, the outputs and the other half's ways).
inline int64_t L2SectionBudget(int l2_bytes) { return l2_bytes / 2; }

// RINGATTN_L2_SECTIONS, for benchmarks: "0" turns sections off (one
// section of every pair: the plain heavy-first order), N > 0 takes N
// (head, batch) pairs per section; unset: the L2 rule (anything else is
// ignored with a warning on stderr).
inline HeavyFirstTileScheduler WithSectionOverride(HeavyFirstTileScheduler order) {
  static const int64_t pairs = [] {
    const char* v = std::getenv("RINGATTN_L2_SECTIONS");
    if (v == nullptr || *v == '\0') return int64_t{-1};
    char* end = nullptr;
    const long long n = std::strtoll(v, &end, 10);
    if (*end == '\0' && n >= 0) return static_cast<int64_t>(n);
    std::fprintf(stderr,
                 "ringattn: RINGATTN_L2_SECTIONS='%s' ignored; expected 0 (sections off) or a "
                 "number of (head, batch) pairs per section\n",
                 v);
    return int64_t{-1};
  }();
  if (pairs < 0) return order;
  const int64_t all = order.heads * order.batch;
  order.section = std::max<int64_t>(1, pairs == 0 ? all : std::min(pairs, all));
  order.final_first = -1;
  return order;
}

}  // namespace ringattn::cuda::flash

#endif  // RINGATTN_CUDA_FLASH_TILE_SCHEDULER_CUH_
