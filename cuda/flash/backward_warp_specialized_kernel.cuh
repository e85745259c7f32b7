// The warp-specialized Hopper backward kernel (sm_90a), the
// FlashAttention-3 scheme, persistent: one CTA per SM takes (key tile of
// 128, query head, batch row) items heaviest first (the forward's tile
// scheduler, key tiles counted from the last: under a causal mask key tile 0
// meets the most queries) and has
//  - a producer warpgroup: one thread of warp 3 takes the items and
//    publishes each in one of two slots (PublishedTile), thread 0 issues the
//    TMA copies (each item's first Q and dO tile, then its K and V once the
//    consumers have released the last item's, then the other Q and dO tiles
//    into a kStages-deep mbarrier pipeline), warp 1 loads each tile's LSE
//    and D into the same pipeline slot, and warp 2 adds each finished dQ tile (fp32, staged in
//    shared memory, double-buffered) to the global dQ with TMA reductions
//    (cp.reduce.async.bulk.tensor .add), so dQ never goes through atomics
//    from the consumers' registers;
//  - two consumer warpgroups of 64 keys each with the registers
//    (setmaxnreg): per query tile S^T = K_w Q^T and dP^T = V_w dO^T,
//    P^T and dS^T in registers (backward_hopper_common.cuh), dV += P^T dO
//    and dK += dS^T Q from registers, dS^T to shared memory (double
//    buffered at d128: one barrier per tile between the consumers; single
//    at d64 with a second barrier), then dQ = dS K, written to the staging
//    buffer for warp 2.
// Query tiles of 64 rows at d128, 128 at d64. dK and dV stay in registers
// until the item's last tile and are added with reductions while the next
// item's K and V land. Included by backward_warp_specialized_d<D>.cu; an
// empty kernel outside sm_90a.
#ifndef RINGATTN_CUDA_FLASH_BACKWARD_WARP_SPECIALIZED_KERNEL_CUH_
#define RINGATTN_CUDA_FLASH_BACKWARD_WARP_SPECIALIZED_KERNEL_CUH_

#include <cuda.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "cuda/flash/backward_hopper_common.cuh"
#include "cuda/flash/block_mask.cuh"
#include "cuda/flash/forward.h"
#include "cuda/flash/hopper_pipeline.cuh"
#include "cuda/flash/hopper_primitives.cuh"
#include "cuda/flash/launch.cuh"
#include "cuda/flash/mma_primitives.cuh"
#include "cuda/flash/tensor_map.h"
#include "cuda/flash/tile_scheduler.cuh"
#include "cuda/flash/traits.h"
#include "cuda/kernel_args.h"

namespace ringattn::cuda::flash {

// Shared memory of the kernel: tiles (1024-byte aligned), the dQ staging
// buffer, LSE and D per stage, the mbarriers, then the item slots.
template <int kHeadDim>
struct WarpSpecializedBackwardShared {
  using Tr = WarpSpecializedBackwardTraits<kHeadDim>;
  uint32_t k, v, q, dout, ds, dq, stats, barriers;
  __device__ __forceinline__ explicit WarpSpecializedBackwardShared(uint32_t raw)
      : k((raw + 1023) & ~1023u),
        v(k + Tr::kKvBytes),
        q(v + Tr::kKvBytes),
        dout(q + Tr::kStages * Tr::kQBytes),
        ds(dout + Tr::kStages * Tr::kQBytes),
        dq(ds + Tr::kDsBuffers * Tr::kDsBytes),
        stats(dq + 2 * Tr::kDqTileBytes),
        barriers(stats + Tr::kStatsBytes) {}
  __device__ __forceinline__ uint32_t Q(uint32_t stage) const { return q + stage * Tr::kQBytes; }
  __device__ __forceinline__ uint32_t Dout(uint32_t stage) const {
    return dout + stage * Tr::kQBytes;
  }
  __device__ __forceinline__ uint32_t Ds(uint32_t buffer) const {
    return ds + buffer * Tr::kDsBytes;
  }
  // dQ staging buffer `buffer` (tile i: buffer i % 2): boxes of 64 rows x
  // 32 fp32 columns in the 128-byte swizzle, box (row block, column block)
  // at (row block * kHeadDim / 32 + column block) * kDqBoxBytes.
  __device__ __forceinline__ uint32_t Dq(int buffer) const {
    return dq + buffer * Tr::kDqTileBytes;
  }
  static __device__ __forceinline__ uint32_t DqBox(int row_block, int col_block) {
    return (row_block * (kHeadDim / 32) + col_block) * Tr::kDqBoxBytes;
  }
  // Byte offset of (row, even column) in a buffer.
  static __device__ __forceinline__ uint32_t DqOffset(int row, int col) {
    return DqBox(row / 64, col / 32) + (row % 64) * 128 + ((((col % 32) / 4) ^ (row % 8)) << 4) +
           (col % 4) * 4;
  }
  // LSE (log2 units) and D of the stage's tile, kBlockM floats each.
  __device__ __forceinline__ uint32_t Lse(uint32_t stage) const {
    return stats + stage * 2 * Tr::kBlockM * 4;
  }
  __device__ __forceinline__ uint32_t Delta(uint32_t stage) const {
    return Lse(stage) + Tr::kBlockM * 4;
  }
  __device__ __forceinline__ uint32_t KvFull() const { return barriers; }
  __device__ __forceinline__ uint32_t KvEmpty() const { return barriers + 8; }
  __device__ __forceinline__ uint32_t Full(uint32_t s) const { return barriers + 16 + 8 * s; }
  __device__ __forceinline__ uint32_t Empty(uint32_t s) const { return Full(s) + 8 * Tr::kStages; }
  __device__ __forceinline__ uint32_t ItemFull(uint32_t s) const {
    return Empty(0) + 8 * Tr::kStages + 8 * s;
  }
  __device__ __forceinline__ uint32_t ItemEmpty(uint32_t s) const {
    return ItemFull(s) + 8 * Tr::kItemSlots;
  }
  // The copying thread's request for the next item (once per item).
  __device__ __forceinline__ uint32_t NextWanted() const {
    return ItemEmpty(0) + 8 * Tr::kItemSlots;
  }
  // Item slot s (PublishedKeyTile), written before ItemFull(s)'s arrival
  // and read after its wait.
  __device__ __forceinline__ uint32_t Item(uint32_t s) const {
    return barriers + Tr::kBarrierBytes + 32 * s;
  }
};

// A key tile as the producer publishes it: its index, head, batch row and
// the query tiles it meets. tile < 0: no more items.
using PublishedKeyTile = PublishedTile<KeyTileQueries>;

// The pool of this kernel's tile counters (one per translation unit, as
// each head dim's kernels are).
namespace {
__device__ TileCounter backward_tile_counters[kTileCounterSlots];
}  // namespace

// Named barriers: the consumers' dS^T of a tile are both written
// (kDsReady, 256 threads; kDsFree below); a dQ tile is staged (kDqFull: consumers arrive,
// the dQ warp waits) or the staging buffer of the tile before the last is
// free again (kDqEmpty: the dQ warp arrives, consumers wait).
constexpr int kDsReadyBarrier = 1;
constexpr int kDqFullBarrier = 2;
constexpr int kDqEmptyBarrier = 3;
// With one dS^T buffer: both consumers' dQ products of the last tile have
// read it (256 threads).
constexpr int kDsFreeBarrier = 4;
constexpr int kDqBarrierThreads = 256 + 32;

// Full barriers complete on the producer thread's arrival (with the TMA
// bytes) and the stats warp's 32 arrivals; Empty barriers on every consumer
// thread's (each has read the slot's LSE and D, which the stats warp then
// overwrites with generic stores: one arrival per warpgroup would order
// them only through the consumers' named barrier, which racecheck does not
// follow). An item slot is read by every consumer thread, the stats warp,
// the dQ warp and the copying thread; K and V are released by every
// consumer thread.
constexpr int kFullArrivals = 1 + 32;
constexpr int kEmptyArrivals = 256;
constexpr int kItemReaders = 256 + 32 + 32 + 1;

__device__ __forceinline__ void StoreShared(uint32_t address, float x) {
  asm volatile("st.shared.f32 [%0], %1;\n" ::"r"(address), "f"(x) : "memory");
}
__device__ __forceinline__ void StoreShared2(uint32_t address, float x, float y) {
  asm volatile("st.shared.v2.f32 [%0], {%1, %2};\n" ::"r"(address), "f"(x), "f"(y) : "memory");
}
// The scheduler thread: takes the CTA's items (the dynamic order of
// tile_scheduler.cuh, key tiles counted from the last), the first at once
// and each next when the copying thread asks for it (as it copies the
// item's last Q and dO tile), skips those that meet no query, and publishes
// each in the next item slot. Taken this late, an item starts about when
// the hardware would have started a CTA of its own; taken two ahead, items
// of one (head, batch) pair started at scattered times and the causal rows
// ran 3-6 % slower than the per-key-tile kernel (docs/KERNEL_BENCH.md).
// Decoding here (the counter's round trip, 64-bit divisions) keeps it off
// the copying thread's path. Publishes tile -1 at the end.
template <int kHeadDim>
__device__ __forceinline__ void ScheduleKeyTiles(const ForwardBlockArgs& a,
                                                 const WarpSpecializedBackwardShared<kHeadDim>& sm,
                                                 const HeavyFirstTileScheduler& scheduler,
                                                 TileCounter* counter) {
  using Tr = WarpSpecializedBackwardTraits<kHeadDim>;
  using ItemSlot = PipelineSlot<Tr::kItemSlots>;
  int64_t t = blockIdx.x;
  for (uint32_t item = 0;; ++item) {
    PublishedKeyTile published{-1, 0, 0, 0, {}};
    for (; t < scheduler.Count(); t = NextTile(counter)) {
      const QueryTile tile = scheduler.At(t);
      const int n_tile = scheduler.m_tiles - 1 - tile.m;
      const KeyTileQueries queries(a, tile.batch, n_tile, Tr::kBlockM, Tr::kBlockN);
      if (queries.m_begin < queries.m_end) {  // else no allowed pair: nothing to add
        published = {n_tile, static_cast<int>(tile.head), static_cast<int>(tile.batch), 0,
                     queries};
        break;
      }
    }
    const ItemSlot slot(item);
    MbarrierWait(sm.ItemEmpty(slot.stage), slot.parity ^ 1);
    StorePublishedTile(sm.Item(slot.stage), published);
    MbarrierArrive(sm.ItemFull(slot.stage));
    if (published.tile < 0) break;
    MbarrierWait(sm.NextWanted(), item & 1);  // asked for during this item
    t = NextTile(counter);
  }
  FinishTiles(counter);
}

// The item in slot `item` % kItemSlots for a warp that reads it (after the
// producer's publication; the slot is released at once).
template <int kHeadDim>
__device__ __forceinline__ PublishedKeyTile TakeItem(
    const WarpSpecializedBackwardShared<kHeadDim>& sm, uint32_t item) {
  const PipelineSlot<WarpSpecializedBackwardTraits<kHeadDim>::kItemSlots> slot(item);
  MbarrierWait(sm.ItemFull(slot.stage), slot.parity);
  const PublishedKeyTile tile = LoadPublishedTile<KeyTileQueries>(sm.Item(slot.stage));
  MbarrierArrive(sm.ItemEmpty(slot.stage));
  return tile;
}

template <ElementType E, int kHeadDim>
__global__ void __launch_bounds__(WarpSpecializedBackwardTraits<kHeadDim>::kThreads, 1)
    FlashBackwardWarpSpecializedKernel(const BackwardBlockArgs args,
                                       const HeavyFirstTileScheduler scheduler,
                                       TileCounter* const counter,
                                       const __grid_constant__ CUtensorMap q_map,
                                       const __grid_constant__ CUtensorMap do_map,
                                       const __grid_constant__ CUtensorMap k_map,
                                       const __grid_constant__ CUtensorMap v_map,
                                       const __grid_constant__ CUtensorMap dq_map) {
#ifdef RINGATTN_WGMMA
  using Tr = WarpSpecializedBackwardTraits<kHeadDim>;
  using Slot = PipelineSlot<Tr::kStages>;
  constexpr int kBlockM = Tr::kBlockM, kBlockN = Tr::kBlockN, kColumnBlocks = kHeadDim / 64;
  static_assert(kEmptyArrivals == 128 * Tr::kConsumers, "every consumer thread releases");
  const ForwardBlockArgs& a = args.task;
  extern __shared__ __align__(1024) unsigned char shared_raw[];
  const WarpSpecializedBackwardShared<kHeadDim> sm(SharedAddress(shared_raw));
  const int64_t group = a.num_heads / a.num_kv_heads;
  const int64_t q_len = a.q_pos.length;

  if (threadIdx.x == 0) {
    MbarrierInit(sm.KvFull(), 1);
    MbarrierInit(sm.KvEmpty(), kEmptyArrivals);
    for (int s = 0; s < Tr::kStages; ++s) {
      MbarrierInit(sm.Full(s), kFullArrivals);
      MbarrierInit(sm.Empty(s), kEmptyArrivals);
    }
    for (int s = 0; s < Tr::kItemSlots; ++s) {
      MbarrierInit(sm.ItemFull(s), 1);
      MbarrierInit(sm.ItemEmpty(s), kItemReaders);
    }
    MbarrierInit(sm.NextWanted(), 1);
    FenceBarrierInit();
  }
  __syncthreads();

  if (threadIdx.x < 128) {
    SetMaxRegistersDecrease<Tr::kProducerRegisters>();
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (threadIdx.x == 0) {
      // The copies of each item: its first Q and dO tile, its K and V once
      // the consumers have released the last item's, its other Q and dO
      // tiles.
      PrefetchTensorMap(&q_map);
      PrefetchTensorMap(&do_map);
      PrefetchTensorMap(&k_map);
      PrefetchTensorMap(&v_map);
      uint32_t i = 0;
      for (uint32_t item = 0;; ++item) {
        const PublishedKeyTile tile = TakeItem(sm, item);
        if (tile.tile < 0) break;
        const int head = static_cast<int>(a.kv_head_begin * group + tile.head);
        const int kv_head = static_cast<int>(head / group - a.kv_head_offset);
        const auto load_q = [&](int m) {
          const Slot slot(i++);
          MbarrierWait(sm.Empty(slot.stage), slot.parity ^ 1);
          MbarrierArriveExpectTx(sm.Full(slot.stage), 2 * Tr::kQBytes);
#pragma unroll
          for (int c = 0; c < kColumnBlocks; ++c) {
            TmaLoad4d(sm.Q(slot.stage) + c * kBlockM * 128, &q_map, sm.Full(slot.stage), c * 64,
                      m * kBlockM, head, tile.batch);
            TmaLoad4d(sm.Dout(slot.stage) + c * kBlockM * 128, &do_map, sm.Full(slot.stage),
                      c * 64, m * kBlockM, head, tile.batch);
          }
        };
        load_q(tile.range.m_begin);
        MbarrierWait(sm.KvEmpty(), (item & 1) ^ 1);
        MbarrierArriveExpectTx(sm.KvFull(), 2 * Tr::kKvBytes);
#pragma unroll
        for (int c = 0; c < kColumnBlocks; ++c) {
          TmaLoad4d(sm.k + c * kBlockN * 128, &k_map, sm.KvFull(), c * 64, tile.tile * kBlockN,
                    kv_head, tile.batch);
          TmaLoad4d(sm.v + c * kBlockN * 128, &v_map, sm.KvFull(), c * 64, tile.tile * kBlockN,
                    kv_head, tile.batch);
        }
        for (int m = tile.range.m_begin + 1; m < tile.range.m_end; ++m) load_q(m);
        MbarrierArrive(sm.NextWanted());
      }
    } else if (threadIdx.x == 96) {
      ScheduleKeyTiles<kHeadDim>(a, sm, scheduler, counter);
    } else if (warp == 1) {
      // LSE (log2 units; +inf where the row is not there or saw no key, so
      // P = 0) and D of each query tile, kRows rows per lane.
      constexpr int kRows = kBlockM / 32;
      uint32_t i = 0;
      for (uint32_t item = 0;; ++item) {
        const PublishedKeyTile tile = TakeItem(sm, item);
        if (tile.tile < 0) break;
        const int64_t h = a.kv_head_begin * group + tile.head;
        const int64_t stat0 = (tile.batch * a.num_heads + h) * a.q_rows + a.q_row;
        for (int m = tile.range.m_begin; m < tile.range.m_end; ++m, ++i) {
          const Slot slot(i);
          float lse[kRows], delta[kRows];
#pragma unroll
          for (int r = 0; r < kRows; ++r) {
            const int64_t row = static_cast<int64_t>(m) * kBlockM + lane + 32 * r;
            const float x = row < q_len ? args.lse[stat0 + row] : -INFINITY;
            lse[r] = BackwardLse(x);
            delta[r] = row < q_len ? args.delta[stat0 + row] : 0.f;
          }
          MbarrierWait(sm.Empty(slot.stage), slot.parity ^ 1);
#pragma unroll
          for (int r = 0; r < kRows; ++r) {
            StoreShared(sm.Lse(slot.stage) + (lane + 32 * r) * 4, lse[r]);
            StoreShared(sm.Delta(slot.stage) + (lane + 32 * r) * 4, delta[r]);
          }
          MbarrierArrive(sm.Full(slot.stage));
        }
      }
    } else if (warp == 2) {
      // Each staged dQ tile added to the global dQ by one thread's TMA
      // reductions (rows past the end are skipped by the copy engine). The
      // buffer of tile i - 1 is free once its reductions have read it
      // (arrived for every tile from the second: the consumers wait from
      // their third and once more at the end).
      uint32_t i = 0;
      for (uint32_t item = 0;; ++item) {
        const PublishedKeyTile tile = TakeItem(sm, item);
        if (tile.tile < 0) break;
        const int h = static_cast<int>(a.kv_head_begin * group + tile.head);
        for (int m = tile.range.m_begin; m < tile.range.m_end; ++m, ++i) {
          NamedBarrierSync(kDqFullBarrier, kDqBarrierThreads);
          if (lane == 0) {
#pragma unroll
            for (int row_block = 0; row_block < kBlockM / 64; ++row_block) {
#pragma unroll
              for (int col_block = 0; col_block < kHeadDim / 32; ++col_block) {
                TmaReduceAdd4d(&dq_map, sm.Dq(i % 2) + sm.DqBox(row_block, col_block),
                               col_block * 32, m * kBlockM + row_block * 64, h, tile.batch);
              }
            }
            BulkCommit();
            BulkWaitRead<1>();
          }
          __syncwarp();
          if (i >= 1) NamedBarrierArrive(kDqEmptyBarrier, kDqBarrierThreads);
        }
      }
      if (lane == 0) BulkWait();
    }
    return;
  }

  SetMaxRegistersIncrease<Tr::kConsumerRegisters>();
  const int warpgroup = threadIdx.x / 128 - 1;
  const int lane = threadIdx.x % 32;
  const int64_t k_len = a.k_pos.length;
  const float scale_log2 = a.softmax_scale * kLog2e;
  // The warpgroup's keys: rows key0 and key0 + 8 of this thread.
  const int key_base = warpgroup * 64;
  const int key0 = key_base + AccumulatorRow();
  // dQ over all kBlockN keys: warpgroup w takes the tile's 64 columns
  // from 64 w (64-row tiles) or its 64 rows from 64 w (128-row tiles).
  constexpr bool kSplitRows = kBlockM == 128;
  const int dq_row_block = kSplitRows ? warpgroup : 0;
  const int dq_col_begin = kSplitRows ? 0 : warpgroup * 64;
  const int dq_row0 = dq_row_block * 64 + AccumulatorRow();
  const int64_t kv_stride = KvBufferHeads(a) * kHeadDim;

  // A generic pointer to shared-memory address `address`.
  const auto shared_floats = [&](uint32_t address) {
    return reinterpret_cast<const float*>(shared_raw + (address - SharedAddress(shared_raw)));
  };

  uint32_t i = 0;  // query tiles over all items
  for (uint32_t item = 0;; ++item) {
    const PublishedKeyTile tile = TakeItem(sm, item);
    if (tile.tile < 0) break;
    const KeyTileQueries& tiles = tile.range;
    const int k0 = tile.tile * kBlockN;
    const int k_valid = static_cast<int>(min64(kBlockN, k_len - k0));

    float dk[kHeadDim / 2], dv[kHeadDim / 2];
#pragma unroll
    for (int j = 0; j < kHeadDim / 2; ++j) dk[j] = dv[j] = 0.f;
    MbarrierWait(sm.KvFull(), item & 1);

    for (int m = tiles.m_begin; m < tiles.m_end; ++m, ++i) {
      const Slot slot(i);
      const int64_t q_first = static_cast<int64_t>(m) * kBlockM;
      const uint32_t q_tile = sm.Q(slot.stage), do_tile = sm.Dout(slot.stage);
      // The mask's bits while the slot's copies land, before S^T and dP^T
      // take their registers (computed beside them, they spilled).
      const FragmentBits<kBlockM> allowed =
          tiles.NeedsMask(m) ? AllowedBitsT<kBlockM>(a, tile.batch, key0, k_valid, k0, q_first)
                             : static_cast<FragmentBits<kBlockM>>(~0ull);
      MbarrierWait(sm.Full(slot.stage), slot.parity);
      float s[kBlockM / 2], dp[kBlockM / 2];
      IssueScoresT<E, kHeadDim, kBlockN, kBlockM>(s, dp, sm.k, sm.v, key_base, q_tile, do_tile);
      WgmmaWait<1>();
      FenceRegisters(s);
      ProbabilitiesT<kBlockM>(s, allowed, shared_floats(sm.Lse(slot.stage)), scale_log2);
      WgmmaWait<0>();
      FenceRegisters(dp);
      uint32_t p16[kBlockM / 16][4], ds16[kBlockM / 16][4];
      ScoreGradsT<E, kBlockM>(s, dp, shared_floats(sm.Delta(slot.stage)), p16, ds16);
      IssueKeyGrads<E, kHeadDim, kBlockM>(dk, dv, p16, ds16, q_tile, do_tile);

      const uint32_t ds_tile = sm.Ds(i % Tr::kDsBuffers);
      if (Tr::kDsBuffers == 1 && i > 0) NamedBarrierSync(kDsFreeBarrier, 256);
      StoreScoreGradsT<kBlockN, kBlockM>(ds_tile, key0, ds16);
      FenceProxyAsync();
      NamedBarrierSync(kDsReadyBarrier, 256);  // dS^T of both warpgroups

      float dq[32];
      IssueQueryGrads<E, kBlockN, kBlockN>(dq, ds_tile + dq_row_block * kBlockN * 128, sm.k, 0,
                                           dq_col_begin);
      WgmmaWait<1>();  // dV and dK: Q, dO, LSE and D of the slot are read
      FenceRegisters(dk);
      FenceRegisters(dv);
      MbarrierArrive(sm.Empty(slot.stage));
      WgmmaWait<0>();
      FenceRegisters(dq);
      // K and V are read for the item: the next item's may land.
      if (m + 1 == tiles.m_end) MbarrierArrive(sm.KvEmpty());

      // dQ * scale into staging buffer i % 2, once the dQ warp's reductions
      // of tile i - 2 have read it.
      if (i >= 2) NamedBarrierSync(kDqEmptyBarrier, kDqBarrierThreads);
      // Rows r and r ^ 1 of the swizzle put a column block in the same banks,
      // and a 64-bit store's half-warp covers rows 4 q .. 4 q + 3: in step j
      // odd rows store column block j ^ 2 (bank-conflict free).
      const uint32_t dq_tile = sm.Dq(i % 2);
      const bool odd_row = (lane / 4) % 2;
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int row = dq_row0 + 8 * half;
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          const int block = odd_row ? j ^ 2 : j;
          const float x = odd_row ? dq[4 * (j ^ 2) + 2 * half] : dq[4 * j + 2 * half];
          const float y = odd_row ? dq[4 * (j ^ 2) + 2 * half + 1] : dq[4 * j + 2 * half + 1];
          StoreShared2(dq_tile + sm.DqOffset(row, dq_col_begin + block * 8 + (lane % 4) * 2),
                       x * a.softmax_scale, y * a.softmax_scale);
        }
      }
      FenceProxyAsync();
      NamedBarrierArrive(kDqFullBarrier, kDqBarrierThreads);
    }

    // Reductions: a read-modify-write would keep the SM waiting for the
    // reads, exposed on short key tiles.
    const int64_t h = a.kv_head_begin * group + tile.head;
    AddKeyGrads<kHeadDim, true>(args, dk, dv, KvOffset(a, tile.batch, a.k_row + k0, h / group),
                                kv_stride, key0, k_valid);
  }
  // The dQ warp's arrival for the last tile.
  if (i >= 2) NamedBarrierSync(kDqEmptyBarrier, kDqBarrierThreads);
#endif  // RINGATTN_WGMMA
}

template <ElementType E, int kHeadDim>
cudaError_t LaunchFlashBackwardWarpSpecializedKernel(const BackwardBlockArgs& args,
                                                     cudaStream_t stream) {
  using Tr = WarpSpecializedBackwardTraits<kHeadDim>;
  const ForwardBlockArgs& a = args.task;
  const TileView q_view = QueryRowsView(a, a.q, E, Tr::kBlockM);
  const TileView do_view = QueryRowsView(a, args.dout, E, Tr::kBlockM);
  const TileView k_view = KeyRowsView(a, a.k, Tr::kBlockN);
  const TileView v_view = KeyRowsView(a, a.v, Tr::kBlockN);
  const TileView dq_view = QueryRowsView(a, args.dq, ElementType::kFloat32, 64);
  CUtensorMap q_map, do_map, k_map, v_map, dq_map;
  for (auto [view, map] :
       {std::pair{&q_view, &q_map}, std::pair{&do_view, &do_map}, std::pair{&k_view, &k_map},
        std::pair{&v_view, &v_map}, std::pair{&dq_view, &dq_map}}) {
    if (const cudaError_t e = EncodeTileMap(*view, map); e != cudaSuccess) return e;
  }
  DeviceFacts device;
  if (const cudaError_t e = CurrentDeviceFacts(&device); e != cudaSuccess) return e;
  // Items of one (head, batch) pair share Q, dO and dQ: sections of pairs
  // whose Q, dO and dQ fit in the L2 budget together.
  const int64_t group = a.num_heads / a.num_kv_heads;
  const int64_t pair_bytes = a.q_pos.length * kHeadDim * (2 * ElementBytes(E) + 4);
  const HeavyFirstTileScheduler scheduler = HeavyFirstTileScheduler::Sections(
      static_cast<int>((a.k_pos.length + Tr::kBlockN - 1) / Tr::kBlockN),
      (a.kv_head_end - a.kv_head_begin) * group, a.batch, 1, pair_bytes,
      L2SectionBudget(device.l2_bytes), device.sms);
  const int64_t grid = std::min<int64_t>(scheduler.Count(), device.sms);
  TileCounter* counter = nullptr;
  if (const cudaError_t e = StreamTileCounter(backward_tile_counters, stream, &counter);
      e != cudaSuccess) {
    return e;
  }
  return LaunchKernel(FlashBackwardWarpSpecializedKernel<E, kHeadDim>,
                      dim3(static_cast<unsigned>(grid)), Tr::kThreads, Tr::kSharedBytes, stream,
                      args, scheduler, counter, q_map, do_map, k_map, v_map, dq_map);
}

}  // namespace ringattn::cuda::flash

#endif  // RINGATTN_CUDA_FLASH_BACKWARD_WARP_SPECIALIZED_KERNEL_CUH_
