// The Hopper backward for head_dim 256 (sm_90a, wgmma; K and V by
// cp.async, each query tile's Q and dO by the TMA from thread 0): one CTA
// per (key tile of 64, query head, batch row), two warpgroups, walking the
// query tiles (64 rows; Q, dO, LSE and D double-buffered) that hold an
// allowed pair. dK and dV of 64 keys x 256 columns would take all of one
// warpgroup's registers, so warpgroup w keeps columns [128 w, 128 w + 128)
// of them, and per tile:
//   S^T (warpgroup 0), dP^T (warpgroup 1) of the 64 keys x 64 queries
//   P^T (0, handed to 1 in fp32), dS^T (1) -> shared memory
//   dV_w += P^T dO_w, dK_w += dS^T Q_w   (A K-major, B N-major, from smem)
// dQ is the dQ pass's (backward_query_grads_kernel.cuh), launched after
// this kernel: added here, 64 KB of fp32 partial sums per (key tile, query
// tile) pair bound the kernel at the L2's reduction rate.
// The per-tile pieces are the other Hopper backward's
// (backward_hopper_common.cuh). Included by backward_column_split_d256.cu;
// empty kernels outside the sm_90a pass.
#ifndef RINGATTN_CUDA_FLASH_BACKWARD_COLUMN_SPLIT_KERNEL_CUH_
#define RINGATTN_CUDA_FLASH_BACKWARD_COLUMN_SPLIT_KERNEL_CUH_

#include <cuda.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <utility>

#include "cuda/flash/backward_hopper_common.cuh"
#include "cuda/flash/backward_query_grads_kernel.cuh"
#include "cuda/flash/block_mask.cuh"
#include "cuda/flash/hopper_pipeline.cuh"
#include "cuda/flash/hopper_primitives.cuh"
#include "cuda/flash/launch.cuh"
#include "cuda/flash/mma_primitives.cuh"
#include "cuda/flash/tensor_map.h"
#include "cuda/flash/traits.h"
#include "cuda/flash/wgmma_ops.cuh"
#include "cuda/kernel_args.h"

namespace ringattn::cuda::flash {

// The query tiles of CpAsyncQueryTiles with Q and dO copied by the TMA:
// thread 0 issues a tile's eight boxes (64 rows x 64 columns each) into the
// buffer, whose mbarrier (one per buffer) counts their bytes; LSE, D and the
// key tile's K and V as there. The 256 threads no longer spend issue slots
// and address registers on the 32 cp.async copies a tile took each.
template <ElementType E, int kHeadDim, int kBlockN, int kBlockM, int kThreads>
struct TmaQueryTiles : CpAsyncQueryTiles<E, kHeadDim, kBlockN, kBlockM, kThreads> {
  using Base = CpAsyncQueryTiles<E, kHeadDim, kBlockN, kBlockM, kThreads>;
  const CUtensorMap *q_map, *do_map;
  uint32_t full;  // [2] mbarriers

  __device__ __forceinline__
  TmaQueryTiles(const BackwardBlockArgs& args,
                const KeyTileTask<typename Base::T, kHeadDim, kBlockN, kBlockM>& task, uint32_t s_q,
                uint32_t s_do, float* s_lse, float* s_delta, const CUtensorMap* q_map,
                const CUtensorMap* do_map, uint32_t full)
      : Base(args, task, s_q, s_do, s_lse, s_delta), q_map(q_map), do_map(do_map), full(full) {}

  __device__ __forceinline__ void Load(int m, int buffer) {
    if (threadIdx.x == 0) {
      const uint32_t bar = full + 8 * buffer;
      MbarrierArriveExpectTx(bar, 2 * Base::kQBytes);
      TmaLoadRowPairs<kHeadDim, kBlockM>(
          this->s_q + buffer * Base::kQBytes, q_map, this->s_do + buffer * Base::kQBytes, do_map,
          bar, m * kBlockM, static_cast<int>(this->task.h), static_cast<int>(this->task.b));
    }
    this->LoadStats(m);
  }
  __device__ __forceinline__ void Start(uint32_t s_k, uint32_t s_v) {
    if (threadIdx.x == 0) {
      PrefetchTensorMap(q_map);
      PrefetchTensorMap(do_map);
      MbarrierInit(full, 1);
      MbarrierInit(full + 8, 1);
      FenceBarrierInit();
    }
    this->LoadKeys(s_k, s_v);
    CpAsyncCommit();
    Load(this->task.tiles.m_begin, 0);
    this->StoreStats(0);
  }
  // Tile m's buffer once K and V (cp.async) and its Q and dO (the TMA) are
  // there and every thread is done with tile m - 1; then tile m + 1's copies
  // go into the buffer tile m - 1 used.
  __device__ __forceinline__ int Arrive(int m) {
    const int i = m - this->task.tiles.m_begin, buffer = i & 1;
    CpAsyncWait<0>();
    FenceProxyAsync();
    __syncthreads();
    MbarrierWait(full + 8 * buffer, (i >> 1) & 1);
    if (m + 1 < this->task.tiles.m_end) Load(m + 1, buffer ^ 1);
    return buffer;
  }
};

template <ElementType E, int kHeadDim>
__global__ void __launch_bounds__(ColumnSplitBackwardTraits<kHeadDim>::kThreads, 1)
    FlashBackwardColumnSplitKernel(const BackwardBlockArgs args,
                                   const __grid_constant__ CUtensorMap q_map,
                                   const __grid_constant__ CUtensorMap do_map,
                                   const HeavyFirstTileScheduler order) {
#ifdef RINGATTN_WGMMA
  using Tr = ColumnSplitBackwardTraits<kHeadDim>;
  using T = typename Element<E>::T;
  using Mma = Wgmma<E>;
  const ForwardBlockArgs& a = args.task;
  constexpr int kBlockM = Tr::kBlockM, kBlockN = Tr::kBlockN;
  constexpr int kCols = kHeadDim / 2;  // columns of dK, dV, dQ per warpgroup
  extern __shared__ __align__(1024) unsigned char shared_raw[];
  const uint32_t s_k = (SharedAddress(shared_raw) + 1023) & ~1023u;
  const uint32_t s_v = s_k + Tr::kKvBytes;
  const uint32_t s_q = s_v + Tr::kKvBytes;      // [2][kBlockM][kHeadDim]
  const uint32_t s_do = s_q + 2 * Tr::kQBytes;  // [2][kBlockM][kHeadDim]
  const uint32_t s_p = s_do + 2 * Tr::kQBytes;  // P^T [kBlockN][kBlockM]
  const uint32_t s_ds = s_p + Tr::kScoreBytes;  // dS^T [kBlockN][kBlockM]
  float* s_lse =
      reinterpret_cast<float*>(shared_raw + (s_ds + Tr::kScoreBytes - SharedAddress(shared_raw)));
  float* s_delta = s_lse + 2 * kBlockM;                            // both [2][kBlockM]
  const uint32_t s_pf = s_ds + Tr::kScoreBytes + Tr::kStatsBytes;  // P^T in fp32, handed over
  const uint32_t query_full = s_pf + Tr::kHandoverBytes;           // [2] mbarriers

  const int warpgroup = WarpgroupIndex();
  const KeyTileTask<T, kHeadDim, kBlockN, kBlockM> task(args, KeyTileOfBlock(order));
  const int64_t b = task.b, h = task.h;
  const KeyTileQueries& tiles = task.tiles;
  const int m_begin = tiles.m_begin, m_end = tiles.m_end;
  if (m_begin >= m_end) return;  // no allowed pair: nothing to add

  TmaQueryTiles<E, kHeadDim, kBlockN, kBlockM, Tr::kThreads> queries(
      args, task, s_q, s_do, s_lse, s_delta, &q_map, &do_map, query_full);
  queries.Start(s_k, s_v);

  const float scale_log2 = a.softmax_scale * kLog2e;
  float dk[kCols / 2], dv[kCols / 2];
#pragma unroll
  for (int i = 0; i < kCols / 2; ++i) dk[i] = dv[i] = 0.f;
  // Both warpgroups hold keys key0 and key0 + 8 (of all 64); warpgroup w
  // the columns from col_base.
  const int key0 = AccumulatorRow();
  const int col_base = warpgroup * kCols;

  for (int m = m_begin; m < m_end; ++m) {
    const int buffer = queries.Arrive(m);
    const int64_t q_first = static_cast<int64_t>(m) * kBlockM;
    const uint32_t q_tile = queries.QTile(buffer), do_tile = queries.DoTile(buffer);

    // S^T (warpgroup 0) and dP^T (warpgroup 1) of the 64 keys x the tile's
    // 64 queries, one m64n64 product each (halves of 32 queries would read
    // shared memory faster than it delivers). Warpgroup 0 makes P^T and
    // hands it over in fp32 (thread t's pairs in slots 1 KB apart: the same
    // fragment positions as thread t of warpgroup 1); warpgroup 1 makes
    // dS^T = P^T (dP^T - D).
    float x[kBlockM / 2];
    const bool scores = warpgroup == 0;
    WgmmaFence();
    IssueRowsTimesRowsT<E, kHeadDim, kBlockN, kBlockM>(x, scores ? s_k : s_v, 0,
                                                       scores ? q_tile : do_tile);
    const bool masked = scores && tiles.NeedsMask(m);
    const FragmentBits<kBlockM> allowed =
        masked ? AllowedBitsT<kBlockM>(a, b, key0, task.k_valid, task.k0, q_first) : ~0u;
    WgmmaWait<0>();
    FenceRegisters(x);
    const uint32_t p_slot = s_pf + (threadIdx.x % 128) * 8;
    uint32_t p16[kBlockM / 16][4], ds16[kBlockM / 16][4];
    if (scores) {
      // Unmasked query tiles without the per-element selects (no product
      // is in flight here, so the two forms join freely).
      if (masked) {
        ProbabilitiesT<kBlockM, true>(x, allowed, s_lse + buffer * kBlockM, scale_log2);
      } else {
        ProbabilitiesT<kBlockM, false>(x, allowed, s_lse + buffer * kBlockM, scale_log2);
      }
#pragma unroll
      for (int i = 0; i < kBlockM / 4; ++i) {
        StoreShared2(p_slot + i * 1024, x[2 * i], x[2 * i + 1]);
      }
      const auto& p3 = *reinterpret_cast<const float(*)[1][kBlockM / 8][4]>(x);
#pragma unroll
      for (int kk = 0; kk < kBlockM / 16; ++kk) PackP<E>(p3, 0, kk, p16[kk]);
      StoreScoreGradsT<kBlockN, kBlockM>(s_p, key0, p16);
      FenceProxyAsync();
    }
    NamedBarrierSync(1, 256);  // P^T in shared memory, both forms

    // dV_w += P^T dO_w, issued before warpgroup 1 makes dS^T so that the
    // tensor cores run while it does, then dK_w += dS^T Q_w (A K-major, B
    // the warpgroup's two 64-column blocks of dO and Q, N-major).
    const auto issue_key_grad = [&](float(&acc)[kCols / 2], uint32_t a_tile, uint32_t b_tile) {
      const uint64_t a = SwizzledDescriptor(a_tile, 16);
      const uint64_t b =
          SwizzledDescriptor(b_tile + (col_base / 64) * kBlockM * 128, kBlockM * 128);
      WgmmaFence();
#pragma unroll
      for (int kk = 0; kk < kBlockM / 16; ++kk) {
        Mma::SS128TB(acc, DescriptorPlus(a, kk * 32), DescriptorPlus(b, kk * 16 * 128), 1);
      }
      WgmmaCommit();
    };
    issue_key_grad(dv, s_p, do_tile);
    if (!scores) {
      float p[kBlockM / 2];
#pragma unroll
      for (int i = 0; i < kBlockM / 4; ++i) {
        const float2 v = LoadShared2(p_slot + i * 1024);
        p[2 * i] = v.x;
        p[2 * i + 1] = v.y;
      }
      ScoreGradsT<E, kBlockM>(p, x, s_delta + buffer * kBlockM, p16, ds16);
      StoreScoreGradsT<kBlockN, kBlockM>(s_ds, key0, ds16);
      FenceProxyAsync();
    }
    NamedBarrierSync(2, 256);  // dS^T
    issue_key_grad(dk, s_ds, q_tile);
    WgmmaWait<0>();
    FenceRegisters(dk);
    FenceRegisters(dv);
    queries.Release(buffer);  // tile m + 1's LSE and D
  }

  AddKeyGrads<kCols>(args, dk, dv, task.kv_offset0 + col_base, task.kv_stride, key0, task.k_valid);
#endif  // RINGATTN_WGMMA
}

template <ElementType E, int kHeadDim>
cudaError_t LaunchFlashBackwardColumnSplitKernel(const BackwardBlockArgs& args,
                                                 cudaStream_t stream) {
  using Tr = ColumnSplitBackwardTraits<kHeadDim>;
  const ForwardBlockArgs& a = args.task;
  CUtensorMap q_map, do_map;
  if (const cudaError_t e =
          EncodeTileMaps({{QueryRowsView(a, a.q, E, Tr::kBlockM), &q_map},
                          {QueryRowsView(a, args.dout, E, Tr::kBlockM), &do_map}});
      e != cudaSuccess) {
    return e;
  }
  const HeavyFirstTileScheduler order = KeyTileOrder(a, Tr::kBlockN);
  if (const cudaError_t e =
          LaunchKernel(FlashBackwardColumnSplitKernel<E, kHeadDim>, OrderGrid(order), Tr::kThreads,
                       Tr::kSharedBytes, stream, args, q_map, do_map, order);
      e != cudaSuccess) {
    return e;
  }
  return LaunchFlashBackwardQueryGradsKernel<E, kHeadDim>(args, stream);
}

}  // namespace ringattn::cuda::flash

#endif  // RINGATTN_CUDA_FLASH_BACKWARD_COLUMN_SPLIT_KERNEL_CUH_
