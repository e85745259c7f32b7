// The fp32 backward on mma.sync (sm_80 and later), accurate to fp32:
// 3xTF32 (tf32_mma.cuh). One CTA of four or eight warps per (key tile of
// 64 or 128, query head, batch row) walks the query tiles (32 rows,
// double-buffered by cp.async) that hold an allowed pair; warp w owns keys
// 16 w .. 16 w + 15.
// Per tile:
//   S^T = K_w Q^T, dP^T = V_w dO^T        (16 keys x 32 queries per warp)
//   P^T = exp(S^T scale - LSE), dS^T = P^T (dP^T - D)
//   dV_w += P^T dO, dK_w += dS^T Q        (P^T, dS^T from registers)
//   dS^T -> shared memory; dQ (32 x kHeadDim, split over the warps) += dS K,
//   added to the fp32 dQ with atomics.
// Operands are split into tf32 hi and lo as their fragments are loaded. An
// accumulator fragment feeds the next product as its A operand with its
// columns 2t and 2t + 1 as fragment columns t and t + 4, so the B operand
// reads rows 2t and 2t + 1 for them (the same order on both sides of a
// reduction). Included by backward_f32.cu.
#ifndef RINGATTN_CUDA_FLASH_BACKWARD_F32_KERNEL_CUH_
#define RINGATTN_CUDA_FLASH_BACKWARD_F32_KERNEL_CUH_

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "cuda/flash/backward_hopper_common.cuh"
#include "cuda/flash/block_mask.cuh"
#include "cuda/flash/launch.cuh"
#include "cuda/flash/mma_primitives.cuh"
#include "cuda/flash/tf32_mma.cuh"
#include "cuda/flash/traits.h"
#include "cuda/kernel_args.h"

namespace ringattn::cuda::flash {

template <int kHeadDim>
__global__ void __launch_bounds__(F32BackwardTraits<kHeadDim>::kThreads)
    FlashBackwardF32Kernel(const BackwardBlockArgs args) {
  using Tr = F32BackwardTraits<kHeadDim>;
  const ForwardBlockArgs& a = args.task;
  constexpr int kBlockM = Tr::kBlockM, kBlockN = Tr::kBlockN;
  constexpr int kStride = Tr::kStride, kDsStride = Tr::kDsStride;
  constexpr int kMB = kBlockM / 8;   // n8 blocks (k8 steps) of queries
  constexpr int kDB = kHeadDim / 8;  // n8 blocks of dK, dV
  constexpr int kGroup = 4;          // n8 blocks per Mma3xTf32 of dK, dV, dQ
  extern __shared__ __align__(16) float shared_f32[];
  float* s_k = shared_f32;
  float* s_v = s_k + Tr::kKvFloats;
  float* s_q = s_v + Tr::kKvFloats;       // [2][kBlockM][kStride]
  float* s_do = s_q + 2 * Tr::kQFloats;   // [2][kBlockM][kStride]
  float* s_ds = s_do + 2 * Tr::kQFloats;  // dS^T [kBlockN][kDsStride]
  float* s_lse = s_ds + kBlockN * kDsStride;
  float* s_delta = s_lse + 2 * kBlockM;  // both [2][kBlockM]

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  const KeyTileTask<float, kHeadDim, kBlockN, kBlockM> task(args);
  const int64_t b = task.b, h = task.h;
  const KeyTileQueries& tiles = task.tiles;
  const int m_begin = tiles.m_begin, m_end = tiles.m_end;
  if (m_begin >= m_end) return;  // no allowed pair: nothing to add

  const auto load_q_tile = [&](int m, int buffer) {
    const int64_t row = static_cast<int64_t>(m) * kBlockM;
    const int valid = static_cast<int>(min64(kBlockM, task.q_len - row));
    LoadF32Tile<Tr, kBlockM>(s_q + buffer * Tr::kQFloats, task.q + row * task.q_stride,
                             task.q_stride, valid);
    LoadF32Tile<Tr, kBlockM>(s_do + buffer * Tr::kQFloats, task.dout + row * task.q_stride,
                             task.q_stride, valid);
  };
  LoadF32Tile<Tr, kBlockN>(s_k, static_cast<const float*>(a.k) + task.kv_offset0, task.kv_stride,
                           task.k_valid);
  LoadF32Tile<Tr, kBlockN>(s_v, static_cast<const float*>(a.v) + task.kv_offset0, task.kv_stride,
                           task.k_valid);
  load_q_tile(m_begin, 0);
  CpAsyncCommit();

  const float scale_log2 = a.softmax_scale * kLog2e;
  // dK and dV of keys key0, key0 + 8, flat [n8 block][4] in the m16n8 layout,
  // added to the fp32 buffers every kFlushTiles query tiles (see
  // kFlushTiles).
  float dk[kHeadDim / 2], dv[kHeadDim / 2];
  const int key0 = warp * 16 + g;
  auto& dk3 = *reinterpret_cast<float(*)[kDB / kGroup][kGroup][4]>(dk);
  auto& dv3 = *reinterpret_cast<float(*)[kDB / kGroup][kGroup][4]>(dv);
  static_assert(kDB % kGroup == 0, "whole groups of n8 blocks");

  // Chunks of kFlushTiles query tiles, dK and dV added after each.
  for (int m0 = m_begin; m0 < m_end; m0 += kFlushTiles) {
#pragma unroll
    for (int i = 0; i < kHeadDim / 2; ++i) dk[i] = dv[i] = 0.f;
    for (int m = m0; m < min(m0 + kFlushTiles, m_end); ++m) {
      const int buffer = (m - m_begin) & 1;
      if (m + 1 < m_end) load_q_tile(m + 1, buffer ^ 1);
      CpAsyncCommit();
      const int64_t q_first = static_cast<int64_t>(m) * kBlockM;
      for (int r = threadIdx.x; r < kBlockM; r += Tr::kThreads) {
        // Rows past the end get LSE +inf: P = 0 there.
        const bool ok = q_first + r < task.q_len;
        const float lse = ok ? args.lse[task.stat0 + q_first + r] : INFINITY;
        s_lse[buffer * kBlockM + r] = BackwardLse(lse);
        s_delta[buffer * kBlockM + r] = ok ? args.delta[task.stat0 + q_first + r] : 0.f;
      }
      CpAsyncWait<1>();
      __syncthreads();
      const float* q = s_q + buffer * Tr::kQFloats;
      const float* dout = s_do + buffer * Tr::kQFloats;

      // S^T = K_w Q^T and dP^T = V_w dO^T (the k8 loop rolled: one copy).
      float s[kBlockM / 2], dp[kBlockM / 2];
      auto& s3 = *reinterpret_cast<float(*)[kMB][4]>(s);
      auto& dp3 = *reinterpret_cast<float(*)[kMB][4]>(dp);
#pragma unroll
      for (int i = 0; i < kBlockM / 2; ++i) s[i] = dp[i] = 0.f;
#pragma unroll 1
      for (int kk = 0; kk < kHeadDim / 8; ++kk) {
        const int c = 8 * kk + t;
        uint32_t a_hi[4], a_lo[4], frag[kMB][4];
        SplitRowFragment(s_k + key0 * kStride + c, kStride, a_hi, a_lo);
#pragma unroll
        for (int j = 0; j < kMB; ++j)
          SplitPair(q[(8 * j + g) * kStride + c], q[(8 * j + g) * kStride + c + 4], frag[j]);
        Mma3xTf32(s3, a_hi, a_lo, frag);
        SplitRowFragment(s_v + key0 * kStride + c, kStride, a_hi, a_lo);
#pragma unroll
        for (int j = 0; j < kMB; ++j) {
          SplitPair(dout[(8 * j + g) * kStride + c], dout[(8 * j + g) * kStride + c + 4], frag[j]);
        }
        Mma3xTf32(dp3, a_hi, a_lo, frag);
      }

      // P^T (masked pairs 0), dS^T = P^T (dP^T - D), and dS^T to shared memory.
      const FragmentBits<kBlockM> allowed =
          tiles.NeedsMask(m) ? AllowedBitsT<kBlockM>(a, b, key0, task.k_valid, task.k0, q_first)
                             : ~0u;
      ProbabilitiesT<kBlockM>(s, allowed, s_lse + buffer * kBlockM, scale_log2);
#pragma unroll
      for (int j = 0; j < kMB; ++j) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const float delta = s_delta[buffer * kBlockM + 8 * j + 2 * t + e];
          dp3[j][e] = s3[j][e] * (dp3[j][e] - delta);
          dp3[j][2 + e] = s3[j][2 + e] * (dp3[j][2 + e] - delta);
        }
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          *reinterpret_cast<float2*>(s_ds + (key0 + 8 * half) * kDsStride + 8 * j + 2 * t) =
              make_float2(dp3[j][2 * half], dp3[j][2 * half + 1]);
        }
      }

      // dV += P^T dO, dK += dS^T Q: query step j takes keys' columns 2t and
      // 2t + 1 (fragment columns t, t + 4), so B reads query rows 2t, 2t + 1.
#pragma unroll
      for (int j = 0; j < kMB; ++j) {
        uint32_t p_hi[4], p_lo[4], ds_hi[4], ds_lo[4];
        SplitAccumulatorFragment(s3[j], p_hi, p_lo);
        SplitAccumulatorFragment(dp3[j], ds_hi, ds_lo);
        const int r = (8 * j + 2 * t) * kStride + g;
#pragma unroll
        for (int ig = 0; ig < kDB / kGroup; ++ig) {
          uint32_t frag[kGroup][4];
          SplitRowPairs(dout + r, kStride, ig * kGroup, frag);
          Mma3xTf32(dv3[ig], p_hi, p_lo, frag);
          SplitRowPairs(q + r, kStride, ig * kGroup, frag);
          Mma3xTf32(dk3[ig], ds_hi, ds_lo, frag);
        }
      }
      __syncthreads();  // dS^T complete

      // dQ (kBlockM x kHeadDim) += dS K * scale: warp w takes 16 query rows
      // and kCols columns. Key step kk takes keys 8 kk + 2t, 2t + 1 as
      // fragment columns t, t + 4 on both sides.
      {
        constexpr int kCols = kHeadDim / (Tr::kWarps / 2);
        constexpr int kCB = kCols / 8;
        static_assert(kBlockM == 32 && kCB % kGroup == 0, "16 rows x kCols columns per warp");
        const int row_base = (warp % 2) * 16, col_base = (warp / 2) * kCols;
        float dq[kCB / kGroup][kGroup][4];
#pragma unroll
        for (int ig = 0; ig < kCB / kGroup; ++ig) {
#pragma unroll
          for (int i = 0; i < kGroup; ++i)
            dq[ig][i][0] = dq[ig][i][1] = dq[ig][i][2] = dq[ig][i][3] = 0.f;
        }
#pragma unroll 1
        for (int kk = 0; kk < kBlockN / 8; ++kk) {
          const float* ds0 = s_ds + (8 * kk + 2 * t) * kDsStride + row_base + g;
          uint32_t a_hi[4], a_lo[4];
          SplitFragment({ds0[0], ds0[8], ds0[kDsStride], ds0[kDsStride + 8]}, a_hi, a_lo);
          const float* k_rows = s_k + (8 * kk + 2 * t) * kStride + col_base + g;
#pragma unroll
          for (int ig = 0; ig < kCB / kGroup; ++ig) {
            uint32_t frag[kGroup][4];
            SplitRowPairs(k_rows, kStride, ig * kGroup, frag);
            Mma3xTf32(dq[ig], a_hi, a_lo, frag);
          }
        }
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const int64_t row = q_first + row_base + g + 8 * half;
          if (row >= task.q_len) continue;
          float* out = args.dq + task.q_offset0 + row * task.q_stride + col_base + 2 * t;
#pragma unroll
          for (int ig = 0; ig < kCB / kGroup; ++ig) {
#pragma unroll
            for (int i = 0; i < kGroup; ++i) {
              AtomicAdd2(out + (ig * kGroup + i) * 8, dq[ig][i][2 * half] * a.softmax_scale,
                         dq[ig][i][2 * half + 1] * a.softmax_scale);
            }
          }
        }
      }
      __syncthreads();  // s_ds and this buffer are free for the next tile
    }
    // Reductions: the SM does not wait for a read of the buffers per chunk.
    AddKeyGrads<kHeadDim, true>(args, dk, dv, task.kv_offset0, task.kv_stride, key0, task.k_valid);
  }
}

template <int kHeadDim>
cudaError_t LaunchFlashBackwardF32Kernel(const BackwardBlockArgs& args, cudaStream_t stream) {
  using Tr = F32BackwardTraits<kHeadDim>;
  const ForwardBlockArgs& a = args.task;
  return LaunchKernel(FlashBackwardF32Kernel<kHeadDim>, TaskGrid(a, a.k_pos.length, Tr::kBlockN),
                      Tr::kThreads, Tr::kSharedBytes, stream, args);
}

}  // namespace ringattn::cuda::flash

#endif  // RINGATTN_CUDA_FLASH_BACKWARD_F32_KERNEL_CUH_
