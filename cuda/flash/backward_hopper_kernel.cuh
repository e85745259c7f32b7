// The Hopper backward kernel (sm_90a, wgmma): one CTA per (key tile of 128,
// query head, batch row), two warpgroups of 64 keys each, walking the query
// tiles (64 rows; Q, dO, LSE and D double-buffered by cp.async) that hold an
// allowed pair. Per tile, warpgroup w:
//   S^T = K_w Q^T and dP^T = V_w dO^T   (wgmma from shared memory)
//   P^T = exp(S^T scale - LSE), dS^T = P^T (dP^T - D)   (registers)
//   dV_w += P^T dO, dK_w += dS^T Q      (P^T, dS^T from registers)
//   dS^T -> shared memory, then dQ += dS K (both warpgroups' dS^T) and the
//   fp32 dQ is updated with atomics.
// dK and dV stay in registers until the CTA's last tile and are added to
// the fp32 buffers that travel the ring. Included by backward_hopper_d<D>.cu.
#ifndef RINGATTN_CUDA_FLASH_BACKWARD_HOPPER_KERNEL_CUH_
#define RINGATTN_CUDA_FLASH_BACKWARD_HOPPER_KERNEL_CUH_

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "cuda/flash/backward_hopper_common.cuh"
#include "cuda/flash/block_mask.cuh"
#include "cuda/flash/hopper_primitives.cuh"
#include "cuda/flash/launch.cuh"
#include "cuda/flash/mma_primitives.cuh"
#include "cuda/flash/traits.h"
#include "cuda/flash/wgmma_ops.cuh"
#include "cuda/kernel_args.h"

namespace ringattn::cuda::flash {

template <ElementType E, int kHeadDim>
__global__ void __launch_bounds__(HopperBackwardTraits<kHeadDim>::kThreads, 1)
    FlashBackwardHopperKernel(const BackwardBlockArgs args) {
#ifdef RINGATTN_WGMMA
  using Tr = HopperBackwardTraits<kHeadDim>;
  using T = typename Element<E>::T;
  const ForwardBlockArgs& a = args.task;
  constexpr int kBlockM = Tr::kBlockM, kBlockN = Tr::kBlockN;
  extern __shared__ __align__(1024) unsigned char shared_raw[];
  const uint32_t s_k = (SharedAddress(shared_raw) + 1023) & ~1023u;
  const uint32_t s_v = s_k + Tr::kKvBytes;
  const uint32_t s_q = s_v + Tr::kKvBytes;       // [2][kBlockM][kHeadDim]
  const uint32_t s_do = s_q + 2 * Tr::kQBytes;   // [2][kBlockM][kHeadDim]
  const uint32_t s_ds = s_do + 2 * Tr::kQBytes;  // dS^T [kBlockN][kBlockM]
  float* s_lse =
      reinterpret_cast<float*>(shared_raw + (s_ds + Tr::kDsBytes - SharedAddress(shared_raw)));
  float* s_delta = s_lse + 2 * kBlockM;  // both [2][kBlockM]

  const int warpgroup = threadIdx.x / 128;
  const KeyTileTask<T, kHeadDim, kBlockN, kBlockM> task(args);
  const int64_t b = task.b, h = task.h;
  const KeyTileQueries& tiles = task.tiles;
  const int m_begin = tiles.m_begin, m_end = tiles.m_end;
  if (m_begin >= m_end) return;  // no allowed pair: nothing to add

  CpAsyncQueryTiles<E, kHeadDim, kBlockN, kBlockM, Tr::kThreads> queries(args, task, s_q, s_do,
                                                                         s_lse, s_delta);
  queries.Start(s_k, s_v);

  const float scale_log2 = a.softmax_scale * kLog2e;
  // Accumulators, flat as wgmma names them: [n8 block][4] in the m16n8 layout.
  float dk[kHeadDim / 2], dv[kHeadDim / 2];
#pragma unroll
  for (int i = 0; i < kHeadDim / 2; ++i) dk[i] = dv[i] = 0.f;
  // The warpgroup's keys: rows key0 and key0 + 8 of this thread.
  const int key_base = warpgroup * 64;
  const int key0 = key_base + AccumulatorRow();

  for (int m = m_begin; m < m_end; ++m) {
    const int buffer = queries.Arrive(m);
    const int64_t q_first = static_cast<int64_t>(m) * kBlockM;
    const uint32_t q_tile = queries.QTile(buffer), do_tile = queries.DoTile(buffer);

    // S^T = K_w Q^T, then dP^T = V_w dO^T (two groups: P^T is computed
    // while dP^T is multiplied).
    float s[kBlockM / 2], dp[kBlockM / 2];
    IssueScoresT<E, kHeadDim, kBlockN, kBlockM>(s, dp, s_k, s_v, key_base, q_tile, do_tile);
    WgmmaWait<1>();
    FenceRegisters(s);

    // P^T = exp(S^T * scale - LSE), masked pairs 0 (the mask only on tiles
    // that need it).
    const FragmentBits<kBlockM> allowed =
        tiles.NeedsMask(m) ? AllowedBitsT<kBlockM>(a, b, key0, task.k_valid, task.k0, q_first)
                           : ~0u;
    ProbabilitiesT<kBlockM>(s, allowed, s_lse + buffer * kBlockM, scale_log2);

    // dS^T = P^T (dP^T - D).
    WgmmaWait<0>();
    FenceRegisters(dp);
    uint32_t p16[kBlockM / 16][4], ds16[kBlockM / 16][4];
    ScoreGradsT<E, kBlockM>(s, dp, s_delta + buffer * kBlockM, p16, ds16);

    IssueKeyGrads<E, kHeadDim, kBlockM>(dk, dv, p16, ds16, q_tile, do_tile);

    StoreScoreGradsT<kBlockN, kBlockM>(s_ds, key0, ds16);
    FenceProxyAsync();
    __syncthreads();  // dS^T of both warpgroups

    // dQ (kBlockM x kHeadDim) += dS K * scale: dS (M-major: dS^T's rows) and
    // K (N-major). Warpgroup w takes 64 columns over all keys (d128) or all
    // 64 columns over its own keys (d64).
    {
      constexpr bool kSplitKeys = kHeadDim == 64;
      constexpr int kKeys = kSplitKeys ? 64 : kBlockN;
      const int key_begin = kSplitKeys ? key_base : 0;
      const int col_begin = kSplitKeys ? 0 : warpgroup * 64;
      float dq[32];
      IssueQueryGrads<E, kBlockN, kKeys>(dq, s_ds, s_k, key_begin, col_begin);
      WgmmaWait<0>();  // dQ, and dV / dK above
      FenceRegisters(dq);
      FenceRegisters(dk);
      FenceRegisters(dv);
      AddQueryGrads(args, task, dq, q_first, AccumulatorRow(), col_begin);
    }
    queries.Release(buffer);  // tile m + 1's LSE and D
  }

  AddKeyGrads<kHeadDim>(args, dk, dv, task.kv_offset0, task.kv_stride, key0, task.k_valid);
#endif  // RINGATTN_WGMMA
}

template <ElementType E, int kHeadDim>
cudaError_t LaunchFlashBackwardHopperKernel(const BackwardBlockArgs& args, cudaStream_t stream) {
  using Tr = HopperBackwardTraits<kHeadDim>;
  const ForwardBlockArgs& a = args.task;
  return LaunchKernel(FlashBackwardHopperKernel<E, kHeadDim>,
                      TaskGrid(a, a.k_pos.length, Tr::kBlockN), Tr::kThreads, Tr::kSharedBytes,
                      stream, args);
}

}  // namespace ringattn::cuda::flash

#endif  // RINGATTN_CUDA_FLASH_BACKWARD_HOPPER_KERNEL_CUH_
