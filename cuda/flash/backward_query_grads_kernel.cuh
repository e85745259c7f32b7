// The dQ pass of the head_dim 256 Hopper backward (sm_90a, wgmma, TMA
// copies issued by thread 0): one CTA per (query tile of 128 rows, query
// head, batch row), two warpgroups of 64 rows, walking the key tiles (64
// keys) that hold an allowed pair, with dQ (64 x 256 fp32 per warpgroup) in
// registers:
//   S = Q K^T, dP = dO V^T                (SS wgmma)
//   P = 2^(S scale log2 e - LSE log2 e), dS = P (dP - D)   (LSE, D known)
//   dQ += dS K                            (RS wgmma: dS from registers)
// and dQ * scale added to the fp32 dQ once per row. The key-tile kernel
// (backward_column_split_kernel.cuh) makes dK and dV alone: adding dQ
// there, 64 KB of partial sums per (key tile, query tile) pair, was bound by
// the L2's fp32 reduction rate (docs/KERNEL_BENCH.md); this pass costs S and
// dP once more instead. The products are pipelined: S of key tile n + 1 is
// issued right behind tile n's dQ product, and P is made while dP is
// multiplied (d256 backward +1.7 %). K is double-buffered (tile n + 2
// loaded once both warpgroups' dQ of tile n is done); V is loaded for the
// next tile once both warpgroups' dP is done (Q, dO, 2 K, V: 225 KB).
// Included by backward_column_split_kernel.cuh; an empty kernel outside the
// sm_90a pass.
#ifndef RINGATTN_CUDA_FLASH_BACKWARD_QUERY_GRADS_KERNEL_CUH_
#define RINGATTN_CUDA_FLASH_BACKWARD_QUERY_GRADS_KERNEL_CUH_

#include <cuda.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "cuda/flash/backward_hopper_common.cuh"
#include "cuda/flash/forward_common.cuh"
#include "cuda/flash/hopper_pipeline.cuh"
#include "cuda/flash/hopper_primitives.cuh"
#include "cuda/flash/launch.cuh"
#include "cuda/flash/mma_primitives.cuh"
#include "cuda/flash/tensor_map.h"
#include "cuda/flash/traits.h"
#include "cuda/flash/wgmma_ops.cuh"
#include "cuda/kernel_args.h"

namespace ringattn::cuda::flash {

template <ElementType E, int kHeadDim>
__global__ void __launch_bounds__(QueryGradsTraits<kHeadDim>::kThreads, 1)
    FlashBackwardQueryGradsKernel(const BackwardBlockArgs args,
                                  const __grid_constant__ CUtensorMap q_map,
                                  const __grid_constant__ CUtensorMap do_map,
                                  const __grid_constant__ CUtensorMap k_map,
                                  const __grid_constant__ CUtensorMap v_map) {
#ifdef RINGATTN_WGMMA
  using Tr = QueryGradsTraits<kHeadDim>;
  using T = typename Element<E>::T;
  const ForwardBlockArgs& a = args.task;
  constexpr int kBlockM = Tr::kBlockM, kBlockN = Tr::kBlockN;
  constexpr int kNB = kBlockN / 8;
  extern __shared__ __align__(1024) unsigned char shared_raw[];
  const uint32_t s_q = (SharedAddress(shared_raw) + 1023) & ~1023u;
  const uint32_t s_do = s_q + Tr::kQBytes;
  const uint32_t s_k = s_do + Tr::kQBytes;  // [2 stages]
  const uint32_t s_v = s_k + 2 * Tr::kKvBytes;
  const auto k_tile = [&](int stage) { return s_k + stage * Tr::kKvBytes; };

  const int warpgroup = threadIdx.x / 128;
  const QueryTileTask<T, kHeadDim, kBlockM, kBlockN> task(a);
  const int64_t b = task.b;
  const KeyTileRange& tiles = task.tiles;
  const int n_begin = tiles.n_begin, n_end = tiles.n_end;
  if (n_begin >= n_end) return;  // no allowed pair: dQ gets nothing

  // Rows row0 and row0 + 8 of the tile: warp w of a warpgroup owns 16. LSE
  // in log2 units (+inf for rows that are not there or see no key: P = 0).
  const int row0 = warpgroup * 64 + AccumulatorRow();
  const int64_t stat0 = task.stat0 + task.q0;
  float lse[2], delta[2];
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int row = row0 + 8 * half;
    const bool ok = row < task.q_valid;
    const float x = ok ? args.lse[stat0 + row] : INFINITY;
    lse[half] = BackwardLse(x);
    delta[half] = ok ? args.delta[stat0 + row] : 0.f;
  }
  const float scale_log2 = a.softmax_scale * kLog2e;

  // The copies, by the TMA from thread 0: Q and dO once, K (two stages)
  // and V (one) of each key tile, each buffer with its mbarrier.
  const uint32_t q_full = s_v + Tr::kKvBytes, v_full = q_full + 8;
  const auto k_full = [&](int stage) { return v_full + 8 + 8 * stage; };
  const int head = static_cast<int>(task.h), batch = static_cast<int>(b);
  const int kv_head = static_cast<int>(task.kv_head - a.kv_head_offset);
  const auto load_keys = [&](uint32_t tile, const CUtensorMap* map, uint32_t full, int n) {
    MbarrierArriveExpectTx(full, Tr::kKvBytes);
    TmaLoadRows<kHeadDim, kBlockN>(tile, map, full, n * kBlockN, kv_head, batch);
  };
  if (threadIdx.x == 0) {
    for (const CUtensorMap* map : {&q_map, &do_map, &k_map, &v_map}) PrefetchTensorMap(map);
    MbarrierInit(q_full, 1);
    MbarrierInit(v_full, 1);
    MbarrierInit(k_full(0), 1);
    MbarrierInit(k_full(1), 1);
    FenceBarrierInit();
    MbarrierArriveExpectTx(q_full, 2 * Tr::kQBytes);
    TmaLoadRowPairs<kHeadDim, kBlockM>(s_q, &q_map, s_do, &do_map, q_full,
                                       static_cast<int>(task.q0), head, batch);
    load_keys(k_tile(0), &k_map, k_full(0), n_begin);
    if (n_begin + 1 < n_end) load_keys(k_tile(1), &k_map, k_full(1), n_begin + 1);
    load_keys(s_v, &v_map, v_full, n_begin);
  }
  __syncthreads();  // the mbarriers initialized
  MbarrierWait(q_full, 0);

  float dq[kHeadDim / 2];
#pragma unroll
  for (int i = 0; i < kHeadDim / 2; ++i) dq[i] = 0.f;

  // S of key tile n + 1 is issued right behind tile n's dQ product, so
  // that the tensor cores go on while dQ finishes; P is made while dP is
  // multiplied.
  float s_flat[kBlockN / 2];
  auto& s = *reinterpret_cast<float(*)[1][kNB][4]>(s_flat);
  const auto wait_keys = [&](int n) {
    const int i = n - n_begin;
    MbarrierWait(k_full(i & 1), (i >> 1) & 1);
  };
  const auto issue_scores = [&](int n) {
    WgmmaFence();
    IssueRowsTimesRowsT<E, kHeadDim, kBlockM, kBlockN>(s_flat, s_q, warpgroup * 64,
                                                       k_tile((n - n_begin) & 1));
  };
  wait_keys(n_begin);
  issue_scores(n_begin);
  for (int n = n_begin; n < n_end; ++n) {
    const int i = n - n_begin, stage = i & 1;
    float dp_flat[kBlockN / 2];
    auto& dp = *reinterpret_cast<float(*)[1][kNB][4]>(dp_flat);
    MbarrierWait(v_full, i & 1);
    WgmmaFence();
    IssueRowsTimesRowsT<E, kHeadDim, kBlockM, kBlockN>(dp_flat, s_do, warpgroup * 64, s_v);
    WgmmaWait<1>();  // S
    FenceRegisters(s_flat);
    if (tiles.NeedsMask(n)) MaskScores(s, a, b, task.q0 + row0, static_cast<int64_t>(n) * kBlockN);
#pragma unroll
    for (int j = 0; j < kNB; ++j) {
#pragma unroll
      for (int r = 0; r < 4; ++r) s[0][j][r] = FastExp2(fmaf(s[0][j][r], scale_log2, -lse[r / 2]));
    }
    WgmmaWait<0>();  // dP
    FenceRegisters(dp_flat);
    __syncthreads();  // both warpgroups are done with V of tile n
    if (threadIdx.x == 0 && n + 1 < n_end) load_keys(s_v, &v_map, v_full, n + 1);

    // dS = P (dP - D), packed as the A operand of dQ += dS K.
    uint32_t ds[kBlockN / 16][4];
#pragma unroll
    for (int j = 0; j < kNB; ++j) {
#pragma unroll
      for (int r = 0; r < 4; ++r) dp[0][j][r] = s[0][j][r] * (dp[0][j][r] - delta[r / 2]);
    }
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) PackP<E>(dp, 0, kk, ds[kk]);
    WgmmaFence();
    IssueRegistersTimesNMajor<E, kHeadDim>(dq, ds, k_tile(stage), kBlockN);
    WgmmaCommit();
    // S of tile n + 1 (after the last tile, tile n's once more, unused: a
    // wgmma issued in a branch is serialized).
    if (n + 1 < n_end) wait_keys(n + 1);
    issue_scores(n + 1 < n_end ? n + 1 : n);
    WgmmaWait<1>();  // dQ
    FenceRegisters(dq);
    __syncthreads();  // both warpgroups are done with K of tile n
    if (threadIdx.x == 0 && n + 2 < n_end) load_keys(k_tile(stage), &k_map, k_full(stage), n + 2);
  }
  WgmmaWait<0>();  // the unused last S

  // dQ * scale into the fp32 dQ: each row is this CTA's alone.
  AddAccumulatorRows<kHeadDim>(args.dq + task.q_offset0, task.q_stride, dq, row0, task.q_valid,
                               a.softmax_scale, RowUpdate::kReadModifyWrite);
#endif  // RINGATTN_WGMMA
}

template <ElementType E, int kHeadDim>
cudaError_t LaunchFlashBackwardQueryGradsKernel(const BackwardBlockArgs& args,
                                                cudaStream_t stream) {
  using Tr = QueryGradsTraits<kHeadDim>;
  const ForwardBlockArgs& a = args.task;
  CUtensorMap q_map, do_map, k_map, v_map;
  if (const cudaError_t e = EncodeTileMaps({{QueryRowsView(a, a.q, E, Tr::kBlockM), &q_map},
                                            {QueryRowsView(a, args.dout, E, Tr::kBlockM), &do_map},
                                            {KeyRowsView(a, a.k, E, Tr::kBlockN), &k_map},
                                            {KeyRowsView(a, a.v, E, Tr::kBlockN), &v_map}});
      e != cudaSuccess) {
    return e;
  }
  return LaunchKernel(FlashBackwardQueryGradsKernel<E, kHeadDim>,
                      TaskGrid(a, a.q_pos.length, Tr::kBlockM), Tr::kThreads, Tr::kSharedBytes,
                      stream, args, q_map, do_map, k_map, v_map);
}

}  // namespace ringattn::cuda::flash

#endif  // RINGATTN_CUDA_FLASH_BACKWARD_QUERY_GRADS_KERNEL_CUH_
