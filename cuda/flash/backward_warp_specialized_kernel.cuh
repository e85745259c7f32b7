// The warp-specialized Hopper backward kernel (sm_90a), the
// FlashAttention-3 scheme: one CTA per (key tile of 128, query head, batch
// row) with
//  - a producer warpgroup: thread 0 issues the TMA copies (K and V once,
//    then Q and dO of each query tile into a kStages-deep mbarrier
//    pipeline), warp 1 loads the tile's LSE and D into the same pipeline
//    slot, and warp 2 adds each finished dQ tile (fp32, staged in shared
//    memory, double-buffered) to the global dQ with TMA reductions
//    (cp.reduce.async.bulk.tensor .add), so dQ never goes through atomics
//    from the consumers' registers;
//  - two consumer warpgroups of 64 keys each with the registers
//    (setmaxnreg): per query tile S^T = K_w Q^T and dP^T = V_w dO^T,
//    P^T and dS^T in registers (backward_hopper_common.cuh), dV += P^T dO
//    and dK += dS^T Q from registers, dS^T to shared memory, then dQ =
//    dS K, written to the staging buffer for warp 2. At d128 the two take
//    turns at the tensor cores (ping-pong: dS^T double-buffered, dQ a tile
//    late, the hand-offs by mbarriers); at d64 (one dS^T buffer) they run
//    in step, two named barriers per tile.
// Query tiles of 64 rows at d128, 128 at d64. dK and dV stay in registers
// until the CTA's last tile, then are added with reductions (d64 and short
// d128 blocks: staged in shared memory and added by the TMA like dQ, the
// d128 rows prefetched into L2 by the producer). CTAs in KeyTileOrder
// (launch.cuh). Included by
// backward_warp_specialized_d<D>.cu; an empty kernel outside sm_90a.
#ifndef RINGATTN_CUDA_FLASH_BACKWARD_WARP_SPECIALIZED_KERNEL_CUH_
#define RINGATTN_CUDA_FLASH_BACKWARD_WARP_SPECIALIZED_KERNEL_CUH_

#include <cuda.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "cuda/flash/backward_hopper_common.cuh"
#include "cuda/flash/block_mask.cuh"
#include "cuda/flash/hopper_pipeline.cuh"
#include "cuda/flash/hopper_primitives.cuh"
#include "cuda/flash/launch.cuh"
#include "cuda/flash/mma_primitives.cuh"
#include "cuda/flash/tensor_map.h"
#include "cuda/flash/traits.h"
#include "cuda/kernel_args.h"

namespace ringattn::cuda::flash {

// Shared memory of the kernel: tiles (1024-byte aligned), the dQ staging
// buffer, LSE and D per stage, then the mbarriers.
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
  // An m64nN accumulator's columns col_begin .. col_begin + kCols (rows row0
  // and row0 + 8 of this thread) times scale into a staged tile at `tile`,
  // (row, even column) at byte DqBox(row / 64, col / 32) + (row % 64) * 128
  // + ((((col % 32) / 4) ^ (row % 8)) << 4) + (col % 4) * 4. Rows r and r ^
  // 1 of the swizzle put a column block in the same banks, and a 64-bit
  // store's half-warp covers rows 4 q .. 4 q + 3: in step j odd rows store
  // column block j ^ 2 (bank-conflict free). The addresses are one base
  // (bits 5 and 6 clear) with the swizzled chunk's bits 5 and 6 -- block %
  // 4 XOR a per-thread value -- set in one of four registers, plus a
  // compile-time offset (the column box of block / 4, the half's 8 rows)
  // that the store takes as an immediate: the 16 or 32 addresses of a
  // call, kept across the query-tile loop, had spilled (d128 64-76 B).
  template <int kCols>
  static __device__ __forceinline__ void StageRows(uint32_t tile, const float (&acc)[kCols / 2],
                                                   int row0, int col_begin, float scale) {
    const int lane = threadIdx.x % 32;
    const int row8 = lane / 4;  // row0 % 8
    const bool odd_row = row8 % 2;
    const uint32_t base = tile + DqBox(row0 / 64, col_begin / 32) + (row0 % 64) * 128 +
                          (((lane % 4) / 2 ^ row8 % 2) << 4) + (lane % 2) * 8;
    const int swizzle = (odd_row ? 2 : 0) ^ row8 / 2;
    uint32_t chunk[4];
#pragma unroll
    for (int c = 0; c < 4; ++c) chunk[c] = base | ((c ^ swizzle) << 5);
#pragma unroll
    for (int half = 0; half < 2; ++half) {
#pragma unroll
      for (int j = 0; j < kCols / 8; ++j) {
        const float x = odd_row ? acc[4 * (j ^ 2) + 2 * half] : acc[4 * j + 2 * half];
        const float y = odd_row ? acc[4 * (j ^ 2) + 2 * half + 1] : acc[4 * j + 2 * half + 1];
        StoreShared2(chunk[j % 4] + (j / 4) * Tr::kDqBoxBytes + half * 8 * 128, x * scale,
                     y * scale);
      }
    }
  }
  // LSE (log2 units) and D of the stage's tile, kBlockM floats each.
  __device__ __forceinline__ uint32_t Lse(uint32_t stage) const {
    return stats + stage * 2 * Tr::kBlockM * 4;
  }
  __device__ __forceinline__ uint32_t Delta(uint32_t stage) const {
    return Lse(stage) + Tr::kBlockM * 4;
  }
  __device__ __forceinline__ uint32_t KvFull() const { return barriers; }
  __device__ __forceinline__ uint32_t Full(uint32_t s) const { return barriers + 8 + 8 * s; }
  __device__ __forceinline__ uint32_t Empty(uint32_t s) const { return Full(s) + 8 * Tr::kStages; }
  // With two dS^T buffers (the consumers' ping-pong): buffer b's dS^T
  // written by both warpgroups / read by both warpgroups' dQ products; dQ
  // staging buffer b written by both warpgroups / read by the dQ warp's
  // reductions.
  __device__ __forceinline__ uint32_t DsFull(uint32_t b) const {
    return Empty(Tr::kStages) + 8 * b;
  }
  __device__ __forceinline__ uint32_t DsEmpty(uint32_t b) const { return DsFull(2) + 8 * b; }
  __device__ __forceinline__ uint32_t DqFull(uint32_t b) const { return DsEmpty(2) + 8 * b; }
  __device__ __forceinline__ uint32_t DqEmpty(uint32_t b) const { return DqFull(2) + 8 * b; }
};

// Named barriers of the consumers in step (d64): the consumers' dS^T of a
// tile are both written (kDsReady, 256 threads; kDsFree below); a dQ tile
// is staged (kDqFull: consumers arrive, the dQ warp waits) or the staging
// buffer of the tile before the last is free again (kDqEmpty: the dQ warp
// arrives, consumers wait).
constexpr int kDsReadyBarrier = 1;
constexpr int kDqFullBarrier = 2;
constexpr int kDqEmptyBarrier = 3;
// With one dS^T buffer: both consumers' dQ products of the last tile have
// read it (256 threads).
constexpr int kDsFreeBarrier = 4;
// After the last tile: neither warpgroup reads K, V, Q or dO any more (256
// threads); then per warpgroup (+ 1 + warpgroup, 128 threads) its dK and dV
// rows are staged.
constexpr int kKeyGradsBarrier = 5;
constexpr int kDqBarrierThreads = 256 + 32;
// With two dS^T buffers the consumers take turns at the tensor cores
// (ping-pong, as in the forward): warpgroup w waits on kTurnBarrier + w and
// hands over by arriving on the other's; their hand-offs of dS^T and dQ go
// through mbarriers (DsFull ...), which keep their phases apart where the
// warpgroups are half a tile apart.
constexpr int kTurnBarrier = 8;

// Full barriers complete on the producer thread's arrival (with the TMA
// bytes) and the stats warp's 32 arrivals; Empty barriers on every consumer
// thread's (each has read the slot's LSE and D, which the stats warp then
// overwrites with generic stores: one arrival per warpgroup would order
// them only through the consumers' named barrier, which racecheck does not
// follow).
constexpr int kFullArrivals = 1 + 32;
constexpr int kEmptyArrivals = 256;

// kStagedKeyGrads: dK and dV added by the TMA from shared memory, else
// from registers (StagedKeyGrads below chooses).
template <ElementType E, int kHeadDim, bool kStagedKeyGrads>
__global__ void __launch_bounds__(WarpSpecializedBackwardTraits<kHeadDim>::kThreads, 1)
    FlashBackwardWarpSpecializedKernel(
        const BackwardBlockArgs args, const __grid_constant__ CUtensorMap q_map,
        const __grid_constant__ CUtensorMap do_map, const __grid_constant__ CUtensorMap k_map,
        const __grid_constant__ CUtensorMap v_map, const __grid_constant__ CUtensorMap dq_map,
        const __grid_constant__ CUtensorMap dk_map, const __grid_constant__ CUtensorMap dv_map,
        const HeavyFirstTileScheduler order) {
#ifdef RINGATTN_WGMMA
  using Tr = WarpSpecializedBackwardTraits<kHeadDim>;
  using Slot = PipelineSlot<Tr::kStages>;
  constexpr int kBlockM = Tr::kBlockM, kBlockN = Tr::kBlockN;
  constexpr bool kPingPong = Tr::kDsBuffers == 2;
  static_assert(kEmptyArrivals == 128 * Tr::kConsumers, "every consumer thread releases");
  const ForwardBlockArgs& a = args.task;
  extern __shared__ __align__(1024) unsigned char shared_raw[];
  const WarpSpecializedBackwardShared<kHeadDim> sm(SharedAddress(shared_raw));

  const KeyTileItem item = KeyTileOfBlock(order);
  const int n_tile = item.n_tile;
  const int64_t b = item.batch;
  const int64_t group = a.num_heads / a.num_kv_heads;
  const int64_t h = a.kv_head_begin * group + item.head;
  const KeyTileQueries tiles(a, b, n_tile, kBlockM, kBlockN);
  if (tiles.m_begin >= tiles.m_end) {  // no allowed pair: nothing to add
    if (StoresKeyGrads(args)) {        // but rows to store: zeros
      const int64_t k0 = static_cast<int64_t>(n_tile) * kBlockN;
      ZeroKeyGradRows<kHeadDim>(args, KvOffset(a, b, a.k_row + k0, h / group),
                                KvBufferHeads(a) * kHeadDim,
                                static_cast<int>(min64(kBlockN, a.k_pos.length - k0)));
    }
    return;
  }
  const int64_t q_len = a.q_pos.length;

  if (threadIdx.x == 0) {
    MbarrierInit(sm.KvFull(), 1);
    for (int s = 0; s < Tr::kStages; ++s) {
      MbarrierInit(sm.Full(s), kFullArrivals);
      MbarrierInit(sm.Empty(s), kEmptyArrivals);
    }
    for (int buffer = 0; kPingPong && buffer < 2; ++buffer) {
      MbarrierInit(sm.DsFull(buffer), 256);
      MbarrierInit(sm.DsEmpty(buffer), 256);
      MbarrierInit(sm.DqFull(buffer), 256);
      MbarrierInit(sm.DqEmpty(buffer), 1);
    }
    FenceBarrierInit();
  }
  __syncthreads();

  if (threadIdx.x < 128) {
    SetMaxRegistersDecrease<Tr::kProducerRegisters>();
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (threadIdx.x == 0) {
      // The copies: K and V once, then each query tile's Q and dO.
      PrefetchTensorMap(&q_map);
      PrefetchTensorMap(&do_map);
      const int kv_head = static_cast<int>(h / group - a.kv_head_offset);
      MbarrierArriveExpectTx(sm.KvFull(), 2 * Tr::kKvBytes);
      TmaLoadRowPairs<kHeadDim, kBlockN>(sm.k, &k_map, sm.v, &v_map, sm.KvFull(), n_tile * kBlockN,
                                         kv_head, static_cast<int>(b));
      uint32_t i = 0;
      for (int m = tiles.m_begin; m < tiles.m_end; ++m, ++i) {
        const Slot slot(i);
        MbarrierWait(sm.Empty(slot.stage), slot.parity ^ 1);
        MbarrierArriveExpectTx(sm.Full(slot.stage), 2 * Tr::kQBytes);
        TmaLoadRowPairs<kHeadDim, kBlockM>(sm.Q(slot.stage), &q_map, sm.Dout(slot.stage), &do_map,
                                           sm.Full(slot.stage), m * kBlockM, static_cast<int>(h),
                                           static_cast<int>(b));
      }
      // The CTA's dK and dV rows into L2 behind its last copies (a tile or
      // two before the end): the closing reductions then add in L2
      // instead of waiting for their lines (stores need no lines). Staged
      // d128 blocks (short rows) only: b16 s1024 +1.5 %, while d64 lost
      // 1.6-1.9 % and the prefetch issued at the CTA's start lost 1.5 %
      // (one H200, docs/KERNEL_BENCH.md).
      if (kStagedKeyGrads && kHeadDim == 128 && !StoresKeyGrads(args)) {
        const int row = n_tile * kBlockN;
#pragma unroll
        for (int half = 0; half < kBlockN / 64; ++half) {
#pragma unroll
          for (int col_block = 0; col_block < kHeadDim / 32; ++col_block) {
            TmaPrefetch4d(&dk_map, col_block * 32, row + 64 * half, kv_head, static_cast<int>(b));
            TmaPrefetch4d(&dv_map, col_block * 32, row + 64 * half, kv_head, static_cast<int>(b));
          }
        }
      }
    } else if (warp == 1) {
      // LSE (log2 units; +inf where the row is not there or saw no key, so
      // P = 0) and D of each query tile, kRows rows per lane.
      constexpr int kRows = kBlockM / 32;
      const int64_t stat0 = (b * a.num_heads + h) * a.q_rows + a.q_row;
      uint32_t i = 0;
      for (int m = tiles.m_begin; m < tiles.m_end; ++m, ++i) {
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
    } else if (warp == 2) {
      // Each staged dQ tile added to the global dQ by one thread's TMA
      // reductions (rows past the end are skipped by the copy engine). The
      // buffer of tile i - 1 is free once its reductions have read it.
      uint32_t i = 0;
      for (int m = tiles.m_begin; m < tiles.m_end; ++m, ++i) {
        if constexpr (kPingPong) {
          MbarrierWait(sm.DqFull(i % 2), (i / 2) & 1);
        } else {
          NamedBarrierSync(kDqFullBarrier, kDqBarrierThreads);
        }
        if (lane == 0) {
#pragma unroll
          for (int row_block = 0; row_block < kBlockM / 64; ++row_block) {
#pragma unroll
            for (int col_block = 0; col_block < kHeadDim / 32; ++col_block) {
              TmaReduceAdd4d(&dq_map, sm.Dq(i % 2) + sm.DqBox(row_block, col_block), col_block * 32,
                             m * kBlockM + row_block * 64, static_cast<int>(h),
                             static_cast<int>(b));
            }
          }
          BulkCommit();
          BulkWaitRead<1>();
        }
        __syncwarp();
        if constexpr (kPingPong) {
          if (i >= 1 && lane == 0) MbarrierArrive(sm.DqEmpty((i - 1) % 2));
        } else if (i >= 1 && m + 1 < tiles.m_end) {
          NamedBarrierArrive(kDqEmptyBarrier, kDqBarrierThreads);
        }
      }
      if (lane == 0) BulkWait();
    }
    return;
  }

  SetMaxRegistersIncrease<Tr::kConsumerRegisters>();
  const int warpgroup = threadIdx.x / 128 - 1;
  const int64_t k_len = a.k_pos.length;
  const int64_t k0 = static_cast<int64_t>(n_tile) * kBlockN;
  const int k_valid = static_cast<int>(min64(kBlockN, k_len - k0));
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

  // A generic pointer to shared-memory address `address`.
  const auto shared_floats = [&](uint32_t address) {
    return reinterpret_cast<const float*>(shared_raw + (address - SharedAddress(shared_raw)));
  };

  float dk[kHeadDim / 2], dv[kHeadDim / 2];
#pragma unroll
  for (int i = 0; i < kHeadDim / 2; ++i) dk[i] = dv[i] = 0.f;
  MbarrierWait(sm.KvFull(), 0);

  // S^T and dP^T of query tile m (pipeline slot `slot`) to P^T and dS^T,
  // packed as the A operands of dV += P^T dO and dK += dS^T Q; `turn` runs
  // the wgmma issue (at the warpgroup's turn where the two take turns).
  // Written whole in two forms, with the mask (`masked` true) and without
  // (no per-element selects between the S^T wait and the exponentials);
  // each form waits for its own products, so no wgmma is in flight where
  // the two join.
  using Packed = uint32_t[kBlockM / 16][4];
  const auto scores_in_form = [&](int m, const Slot& slot, const auto& turn, Packed& p16,
                                  Packed& ds16, auto masked) {
    constexpr bool kMasked = decltype(masked)::value;
    const int64_t q_first = static_cast<int64_t>(m) * kBlockM;
    const uint32_t q_tile = sm.Q(slot.stage), do_tile = sm.Dout(slot.stage);
    // The mask's bits while the slot's copies land, before S^T and dP^T
    // take their registers (computed beside them, they spilled).
    const FragmentBits<kBlockM> allowed =
        kMasked ? AllowedBitsT<kBlockM>(a, b, key0, k_valid, k0, q_first)
                : static_cast<FragmentBits<kBlockM>>(~0ull);
    float s[kBlockM / 2], dp[kBlockM / 2];
    turn([&] {
      MbarrierWait(sm.Full(slot.stage), slot.parity);
      IssueScoresT<E, kHeadDim, kBlockN, kBlockM>(s, dp, sm.k, sm.v, key_base, q_tile, do_tile);
    });
    // LSE read while S^T and dP^T are computed.
    float2 lse[kBlockM / 8];
    LoadQueryPairs<kBlockM>(shared_floats(sm.Lse(slot.stage)), lse);
    WgmmaWait<1>();
    FenceRegisters(s);
    ProbabilitiesT<kBlockM, kMasked>(s, allowed, lse, scale_log2);
    WgmmaWait<0>();
    FenceRegisters(dp);
    ScoreGradsT<E, kBlockM>(s, dp, shared_floats(sm.Delta(slot.stage)), p16, ds16);
  };
  const auto scores = [&](int m, const Slot& slot, const auto& turn, Packed& p16, Packed& ds16) {
    if (tiles.NeedsMask(m)) {
      scores_in_form(m, slot, turn, p16, ds16, std::true_type{});
    } else {
      scores_in_form(m, slot, turn, p16, ds16, std::false_type{});
    }
  };
  float dq[32];

  if constexpr (kPingPong) {
    // The two warpgroups take turns at the tensor cores, so that one's
    // P^T / dS^T arithmetic runs beside the other's products: per tile a
    // turn for S^T and dP^T, and one for dV, dK and the dQ of the tile
    // before (dQ needs both warpgroups' dS^T; issued a tile late, it does
    // not hold the two in step).
    const int my_turn = kTurnBarrier + warpgroup;
    const int other_turn = kTurnBarrier + (warpgroup ^ 1);
    if (warpgroup == 1) NamedBarrierArrive(other_turn, 256);  // warpgroup 0 goes first
    const auto turn = [&](const auto& issue) {
      NamedBarrierSync(my_turn, 256);
      issue();
      NamedBarrierArrive(other_turn, 256);
    };
    // dQ of tile j from dS^T buffer j % 2, once both warpgroups wrote it.
    const auto issue_dq = [&](uint32_t j) {
      MbarrierWait(sm.DsFull(j % 2), (j / 2) & 1);
      IssueQueryGrads<E, kBlockN, kBlockN>(dq, sm.Ds(j % 2) + dq_row_block * kBlockN * 128, sm.k, 0,
                                           dq_col_begin);
    };
    // dS^T of tile j into buffer j % 2, once both warpgroups' dQ of tile
    // j - 2 has read it.
    const auto store_ds = [&](uint32_t j, const Packed& ds16) {
      MbarrierWait(sm.DsEmpty(j % 2), ((j / 2) & 1) ^ 1);
      StoreScoreGradsT<kBlockN, kBlockM>(sm.Ds(j % 2), key0, ds16);
      FenceProxyAsync();
      MbarrierArrive(sm.DsFull(j % 2));
    };
    // dQ of tile j done: its dS^T buffer is free, and dQ * scale goes into
    // staging buffer j % 2 once the dQ warp's reductions of tile j - 2 have
    // read it.
    const auto stage_dq = [&](uint32_t j) {
      FenceRegisters(dq);
      MbarrierArrive(sm.DsEmpty(j % 2));
      MbarrierWait(sm.DqEmpty(j % 2), ((j / 2) & 1) ^ 1);
      sm.template StageRows<64>(sm.Dq(j % 2), dq, dq_row0, dq_col_begin, a.softmax_scale);
      FenceProxyAsync();
      MbarrierArrive(sm.DqFull(j % 2));
    };
    const auto key_grads_done = [&](const Slot& slot) {
      FenceRegisters(dk);
      FenceRegisters(dv);
      MbarrierArrive(sm.Empty(slot.stage));  // Q, dO, LSE and D of the slot are read
    };
    // The first tile is peeled (no dQ of a tile before it), so that every
    // iteration issues the same wgmma groups.
    {
      const Slot slot(0);
      Packed p16, ds16;
      scores(tiles.m_begin, slot, turn, p16, ds16);
      turn([&] {
        IssueKeyGrads<E, kHeadDim, kBlockM>(dk, dv, p16, ds16, sm.Q(slot.stage),
                                            sm.Dout(slot.stage));
      });
      store_ds(0, ds16);
      WgmmaWait<0>();
      key_grads_done(slot);
    }
    uint32_t i = 1;
    for (int m = tiles.m_begin + 1; m < tiles.m_end; ++m, ++i) {
      const Slot slot(i);
      Packed p16, ds16;
      scores(m, slot, turn, p16, ds16);
      turn([&] {
        IssueKeyGrads<E, kHeadDim, kBlockM>(dk, dv, p16, ds16, sm.Q(slot.stage),
                                            sm.Dout(slot.stage));
        issue_dq(i - 1);
      });
      store_ds(i, ds16);
      WgmmaWait<1>();  // dV and dK
      key_grads_done(slot);
      WgmmaWait<0>();  // dQ of the tile before
      stage_dq(i - 1);
    }
    turn([&] { issue_dq(i - 1); });  // the last tile's dQ
    WgmmaWait<0>();
    stage_dq(i - 1);
    if (warpgroup == 0) NamedBarrierSync(my_turn, 256);  // warpgroup 1's last hand-over
  } else {
    // One dS^T buffer (d64): one warpgroup's dQ needs both ones' dS^T, and
    // the buffer is written again only after both dQ products read it, so
    // the two run in step. (The loop's first half is `scores` written out:
    // through the lambda, ptxas schedules the d64 kernel differently and
    // its local-memory accesses go 26 -> 53.)
    static_assert(Tr::kDsBuffers == 1, "one dS^T buffer without the ping-pong");
    uint32_t i = 0;
    for (int m = tiles.m_begin; m < tiles.m_end; ++m, ++i) {
      const Slot slot(i);
      const int64_t q_first = static_cast<int64_t>(m) * kBlockM;
      const uint32_t q_tile = sm.Q(slot.stage), do_tile = sm.Dout(slot.stage);
      const FragmentBits<kBlockM> allowed =
          tiles.NeedsMask(m) ? AllowedBitsT<kBlockM>(a, b, key0, k_valid, k0, q_first)
                             : static_cast<FragmentBits<kBlockM>>(~0ull);
      MbarrierWait(sm.Full(slot.stage), slot.parity);
      float s[kBlockM / 2], dp[kBlockM / 2];
      IssueScoresT<E, kHeadDim, kBlockN, kBlockM>(s, dp, sm.k, sm.v, key_base, q_tile, do_tile);
      float2 lse[kBlockM / 8];
      LoadQueryPairs<kBlockM>(shared_floats(sm.Lse(slot.stage)), lse);
      WgmmaWait<1>();
      FenceRegisters(s);
      ProbabilitiesT<kBlockM>(s, allowed, lse, scale_log2);
      WgmmaWait<0>();
      FenceRegisters(dp);
      uint32_t p16[kBlockM / 16][4], ds16[kBlockM / 16][4];
      ScoreGradsT<E, kBlockM>(s, dp, shared_floats(sm.Delta(slot.stage)), p16, ds16);
      IssueKeyGrads<E, kHeadDim, kBlockM>(dk, dv, p16, ds16, q_tile, do_tile);

      const uint32_t ds_tile = sm.Ds(0);
      if (i > 0) NamedBarrierSync(kDsFreeBarrier, 256);
      StoreScoreGradsT<kBlockN, kBlockM>(ds_tile, key0, ds16);
      FenceProxyAsync();
      NamedBarrierSync(kDsReadyBarrier, 256);  // dS^T of both warpgroups

      IssueQueryGrads<E, kBlockN, kBlockN>(dq, ds_tile + dq_row_block * kBlockN * 128, sm.k, 0,
                                           dq_col_begin);
      WgmmaWait<1>();  // dV and dK: Q, dO, LSE and D of the slot are read
      FenceRegisters(dk);
      FenceRegisters(dv);
      MbarrierArrive(sm.Empty(slot.stage));
      WgmmaWait<0>();
      FenceRegisters(dq);

      // dQ * scale into staging buffer i % 2, once the dQ warp's reductions
      // of tile i - 2 have read it.
      if (i >= 2) NamedBarrierSync(kDqEmptyBarrier, kDqBarrierThreads);
      sm.template StageRows<64>(sm.Dq(i % 2), dq, dq_row0, dq_col_begin, a.softmax_scale);
      FenceProxyAsync();
      NamedBarrierArrive(kDqFullBarrier, kDqBarrierThreads);
    }
  }

  // dK * scale and dV added to the fp32 accumulators: staged like dQ (64
  // keys per warpgroup) once both warpgroups' last products are done, K's
  // and V's space holding dK, Q's and dO's dV, and added by the TMA's
  // reductions; or from registers.
  if constexpr (kStagedKeyGrads) {
    NamedBarrierSync(kKeyGradsBarrier, 256);
    constexpr int kGradBytes = 64 * kHeadDim * 4;
    static_assert(
        2 * kGradBytes <= 2 * Tr::kKvBytes && 2 * kGradBytes <= 2 * Tr::kStages * Tr::kQBytes,
        "dK and dV staged in K/V's and Q/dO's space");
    const uint32_t dk_tile = sm.k + warpgroup * kGradBytes;
    const uint32_t dv_tile = sm.q + warpgroup * kGradBytes;
    sm.template StageRows<kHeadDim>(dk_tile, dk, AccumulatorRow(), 0, a.softmax_scale);
    sm.template StageRows<kHeadDim>(dv_tile, dv, AccumulatorRow(), 0, 1.f);
    FenceProxyAsync();
    NamedBarrierSync(kKeyGradsBarrier + 1 + warpgroup, 128);
    if (threadIdx.x % 128 == 0) {
      const int kv_head = static_cast<int>(h / group - a.kv_head_offset);
      const int row = n_tile * kBlockN + key_base;
      const bool store = StoresKeyGrads(args);  // rows known to hold zeros
      const auto copy_out = [&](const CUtensorMap* map, uint32_t box, int col_block) {
        if (store) {
          TmaStore4d(map, box, col_block * 32, row, kv_head, static_cast<int>(b));
        } else {
          TmaReduceAdd4d(map, box, col_block * 32, row, kv_head, static_cast<int>(b));
        }
      };
#pragma unroll
      for (int col_block = 0; col_block < kHeadDim / 32; ++col_block) {
        copy_out(&dk_map, dk_tile + sm.DqBox(0, col_block), col_block);
        copy_out(&dv_map, dv_tile + sm.DqBox(0, col_block), col_block);
      }
      BulkCommit();
      BulkWaitRead<0>();  // the CTA's shared memory stays until the copies have read it
    }
  } else {
    AddKeyGrads<kHeadDim, true, true>(args, dk, dv, KvOffset(a, b, a.k_row + k0, h / group),
                                      KvBufferHeads(a) * kHeadDim, key0, k_valid);
  }
#endif  // RINGATTN_WGMMA
}

// Whether dK and dV are staged for the TMA's reductions. Reductions from
// registers fill the SM's load/store queue at the end of each CTA
// (lg_throttle stalls), which weighs most where CTAs are short. Staged in
// every CTA, d64 gained 2.2 % at s16384, d128 1.7 % at b16 s1024 but lost
// up to 1.7 % on the long rows; so d128 stages per launch, for blocks of
// at most 16 query tiles of 64 rows (b16 s1024 +1.8 %, the long rows
// unchanged). The reductions need 16-byte aligned dK and dV (d64:
// LaunchFlashBackward checks). One H200, docs/KERNEL_BENCH.md.
template <int kHeadDim>
bool StagedKeyGrads(const BackwardBlockArgs& args) {
  if constexpr (kHeadDim == 64) {
    return true;
  } else {
    return args.task.q_pos.length <= 16 * 64 && Aligned16(args.dk) && Aligned16(args.dv);
  }
}

template <ElementType E, int kHeadDim>
cudaError_t LaunchFlashBackwardWarpSpecializedKernel(const BackwardBlockArgs& args,
                                                     cudaStream_t stream) {
  using Tr = WarpSpecializedBackwardTraits<kHeadDim>;
  const ForwardBlockArgs& a = args.task;
  CUtensorMap q_map, do_map, k_map, v_map, dq_map, dk_map{}, dv_map{};
  if (const cudaError_t e =
          EncodeTileMaps({{QueryRowsView(a, a.q, E, Tr::kBlockM), &q_map},
                          {QueryRowsView(a, args.dout, E, Tr::kBlockM), &do_map},
                          {KeyRowsView(a, a.k, E, Tr::kBlockN), &k_map},
                          {KeyRowsView(a, a.v, E, Tr::kBlockN), &v_map},
                          {QueryRowsView(a, args.dq, ElementType::kFloat32, 64), &dq_map}});
      e != cudaSuccess) {
    return e;
  }
  const bool staged = StagedKeyGrads<kHeadDim>(args);
  if (staged) {
    if (const cudaError_t e =
            EncodeTileMaps({{KeyRowsView(a, args.dk, ElementType::kFloat32, 64), &dk_map},
                            {KeyRowsView(a, args.dv, ElementType::kFloat32, 64), &dv_map}});
        e != cudaSuccess) {
      return e;
    }
  }
  const HeavyFirstTileScheduler order = KeyTileOrder(a, Tr::kBlockN);
  const auto launch = [&](auto kernel) {
    return LaunchKernel(kernel, OrderGrid(order), Tr::kThreads, Tr::kSharedBytes, stream, args,
                        q_map, do_map, k_map, v_map, dq_map, dk_map, dv_map, order);
  };
  if constexpr (kHeadDim == 64) {
    return launch(FlashBackwardWarpSpecializedKernel<E, kHeadDim, true>);
  } else {
    return staged ? launch(FlashBackwardWarpSpecializedKernel<E, kHeadDim, true>)
                  : launch(FlashBackwardWarpSpecializedKernel<E, kHeadDim, false>);
  }
}

}  // namespace ringattn::cuda::flash

#endif  // RINGATTN_CUDA_FLASH_BACKWARD_WARP_SPECIALIZED_KERNEL_CUH_
