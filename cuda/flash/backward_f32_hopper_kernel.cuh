// The fp32 backward on Hopper (sm_90a), accurate to fp32: 3xTF32 on wgmma
// tf32 (f32_hopper_common.cuh), head_dim 64. One CTA -- one warpgroup --
// per (key tile of 64, query head, batch row) walks the query tiles (32
// rows) that hold an allowed pair. Per tile:
//   S^T = K Q^T and dP^T = V dO^T               (group 1, from shared memory)
//   P^T = exp(S^T scale - LSE), dS^T = P^T (dP^T - D)   (registers)
//   dS -> shared memory (rows of queries); then
//   dV += P^T dO, dK += dS^T Q                  (group 2: P^T, dS^T from
//                                                registers, dO^T and Q^T)
//   dQ^T = K^T dS^T, added to the fp32 dQ with atomics   (group 3)
// tf32 wgmma reads K-major operands only, so Q, dO and K are stored twice
// (as they are for S^T, dP^T; transposed for dK, dV, dQ^T), all split into
// hi and lo. Q^T and dO^T store each 8-query block in the order of the
// accumulator-fed A fragments (0, 2, 4, 6, 1, 3, 5, 7). The next query
// tile's loads are issued at the top of an iteration; Q and dO are stored
// while groups 2 and 3 run (group 1 is done with them), Q^T and dO^T after
// them.
// dK and dV stay in registers until the CTA's last tile. Included by
// backward_f32_hopper.cu; an empty kernel outside the sm_90a pass.
#ifndef RINGATTN_CUDA_FLASH_BACKWARD_F32_HOPPER_KERNEL_CUH_
#define RINGATTN_CUDA_FLASH_BACKWARD_F32_HOPPER_KERNEL_CUH_

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "cuda/flash/backward_hopper_common.cuh"
#include "cuda/flash/block_mask.cuh"
#include "cuda/flash/f32_hopper_common.cuh"
#include "cuda/flash/hopper_primitives.cuh"
#include "cuda/flash/launch.cuh"
#include "cuda/flash/traits.h"
#include "cuda/kernel_args.h"

namespace ringattn::cuda::flash {

template <int kHeadDim>
__global__ void __launch_bounds__(F32HopperBackwardTraits<kHeadDim>::kThreads, 1)
    FlashBackwardF32HopperKernel(const BackwardBlockArgs args,
                                 const HeavyFirstTileScheduler order) {
#ifdef RINGATTN_WGMMA
  using Tr = F32HopperBackwardTraits<kHeadDim>;
  const ForwardBlockArgs& a = args.task;
  constexpr int kBlockM = Tr::kBlockM, kBlockN = Tr::kBlockN, kThreads = Tr::kThreads;
  constexpr int kMB = kBlockM / 8;       // n8 blocks (k8 steps) of queries
  constexpr int kChunks = kHeadDim / 4;  // 16-byte chunks of a row
  extern __shared__ __align__(1024) unsigned char shared_raw[];
  const uint32_t s_base = (SharedAddress(shared_raw) + 1023) & ~1023u;
  // K, V, K^T (hi, lo each), then Q, dO, Q^T, dO^T (hi, lo each), dS (hi, lo).
  const auto kv = [&](int i) { return s_base + i * Tr::kKvBytes; };
  const auto qt = [&](int i) { return kv(6) + i * Tr::kQBytes; };
  const uint32_t s_ds_hi = qt(8), s_ds_lo = s_ds_hi + Tr::kDsBytes;
  float* s_lse =
      reinterpret_cast<float*>(shared_raw + (s_ds_lo + Tr::kDsBytes - SharedAddress(shared_raw)));
  float* s_delta = s_lse + kBlockM;

  const int lane = threadIdx.x % 32;
  const KeyTileTask<float, kHeadDim, kBlockN, kBlockM> task(args, KeyTileOfBlock(order));
  const int64_t b = task.b, h = task.h;
  const KeyTileQueries& tiles = task.tiles;
  const int m_begin = tiles.m_begin, m_end = tiles.m_end;
  if (m_begin >= m_end) return;  // no allowed pair: nothing to add

  // K, V and K^T of the CTA's keys: a thread takes chunk c of keys
  // 4 kq .. 4 kq + 3 (twice), which are also 4 consecutive keys of K^T's
  // rows 4c .. 4c + 3.
  {
    const float* g_k = static_cast<const float*>(a.k) + task.kv_offset0;
    const float* g_v = static_cast<const float*>(a.v) + task.kv_offset0;
    static_assert(kBlockN / 4 * kChunks == 2 * kThreads, "two key quads per thread");
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int index = threadIdx.x + r * kThreads;
      const int kq = index % (kBlockN / 4), c = index / (kBlockN / 4);
      float4 k[4], v[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        k[i] = LoadF32Chunk(g_k, task.kv_stride, 4 * kq + i, c, task.k_valid);
        v[i] = LoadF32Chunk(g_v, task.kv_stride, 4 * kq + i, c, task.k_valid);
      }
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        StoreSplitChunk(kv(0), kv(1), SwizzledChunk<kBlockN>(4 * kq + i, c), k[i]);
        StoreSplitChunk(kv(2), kv(3), SwizzledChunk<kBlockN>(4 * kq + i, c), v[i]);
      }
      StoreSplitTransposed<kHeadDim>(kv(4), kv(5), c, kq, k);
    }
  }

  // A query tile: the thread takes chunk q_c of queries
  // 8 q_block + 2 i + q_parity (i < 4) of Q and dO, which make chunk
  // 2 q_block + q_parity of the transposed tiles' rows 4 q_c .. 4 q_c + 3.
  const int q_parity = threadIdx.x & 1, q_block = (threadIdx.x >> 1) % (kBlockM / 8);
  const int q_c = threadIdx.x / (kBlockM / 4);
  static_assert(kThreads == (kBlockM / 4) * kChunks, "one thread per (query quad, chunk)");
  float4 q_raw[4], do_raw[4];
  float next_lse = INFINITY, next_delta = 0.f;
  const auto load_query_tile = [&](int m) {
    const int64_t row = static_cast<int64_t>(m) * kBlockM;
    const int valid = static_cast<int>(min64(kBlockM, task.q_len - row));
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int query = 8 * q_block + 2 * i + q_parity;
      q_raw[i] = LoadF32Chunk(task.q + row * task.q_stride, task.q_stride, query, q_c, valid);
      do_raw[i] = LoadF32Chunk(task.dout + row * task.q_stride, task.q_stride, query, q_c, valid);
    }
    // LSE (log2 units; +inf for rows that are not there, so P = 0) and D.
    const bool stat = threadIdx.x < valid;
    next_lse = stat ? args.lse[task.stat0 + row + threadIdx.x] : INFINITY;
    next_delta = stat ? args.delta[task.stat0 + row + threadIdx.x] : 0.f;
  };
  const auto store_query_rows = [&] {  // Q and dO
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int query = 8 * q_block + 2 * i + q_parity;
      StoreSplitChunk(qt(0), qt(1), SwizzledChunk<kBlockM>(query, q_c), q_raw[i]);
      StoreSplitChunk(qt(2), qt(3), SwizzledChunk<kBlockM>(query, q_c), do_raw[i]);
    }
  };
  const auto store_query_columns = [&] {  // Q^T, dO^T, LSE and D
    StoreSplitTransposed<kHeadDim>(qt(4), qt(5), q_c, 2 * q_block + q_parity, q_raw);
    StoreSplitTransposed<kHeadDim>(qt(6), qt(7), q_c, 2 * q_block + q_parity, do_raw);
    if (threadIdx.x < kBlockM) {
      s_lse[threadIdx.x] = BackwardLse(next_lse);
      s_delta[threadIdx.x] = next_delta;
    }
  };
  load_query_tile(m_begin);
  store_query_rows();
  store_query_columns();
  FenceProxyAsync();
  __syncthreads();

  const float scale_log2 = a.softmax_scale * kLog2e;
  float dk[kHeadDim / 2], dv[kHeadDim / 2];
  const int key0 = AccumulatorRow();  // the thread's keys key0, key0 + 8

  // Chunks of kFlushTiles query tiles (see kFlushTiles), dK and dV added
  // after each.
  for (int m0 = m_begin; m0 < m_end; m0 += kFlushTiles) {
#pragma unroll
    for (int i = 0; i < kHeadDim / 2; ++i) dk[i] = dv[i] = 0.f;
    for (int m = m0; m < min(m0 + kFlushTiles, m_end); ++m) {
      const int64_t q_first = static_cast<int64_t>(m) * kBlockM;
      const bool next = m + 1 < m_end;
      if (next) load_query_tile(m + 1);  // in flight through the tile's work

      // Group 1: S^T = K Q^T, dP^T = V dO^T.
      float s[kBlockM / 2], dp[kBlockM / 2];
      WgmmaFence();
      Tf32x3SS<kBlockM, kBlockN, kHeadDim / 8>(s, kv(0), kv(1), qt(0), qt(1), false);
      Tf32x3SS<kBlockM, kBlockN, kHeadDim / 8>(dp, kv(2), kv(3), qt(2), qt(3), false);
      WgmmaCommit();
      const FragmentBits<kBlockM> allowed =
          tiles.NeedsMask(m) ? AllowedBitsT<kBlockM>(a, b, key0, task.k_valid, task.k0, q_first)
                             : ~0u;
      WgmmaWait<0>();
      FenceRegisters(s);
      FenceRegisters(dp);

      // P^T, then dS^T = P^T (dP^T - D) in place in dp; both as split A
      // fragments, and dS (hi, lo) into shared memory: element (key, query)
      // at row `query`, column `key`.
      ProbabilitiesT<kBlockM>(s, allowed, s_lse, scale_log2);
      uint32_t p_hi[kMB][4], p_lo[kMB][4], ds_hi[kMB][4], ds_lo[kMB][4];
#pragma unroll
      for (int j = 0; j < kMB; ++j) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const float delta = s_delta[j * 8 + (lane % 4) * 2 + e];
          dp[4 * j + e] = s[4 * j + e] * (dp[4 * j + e] - delta);
          dp[4 * j + 2 + e] = s[4 * j + 2 + e] * (dp[4 * j + 2 + e] - delta);
        }
        const float(&p4)[4] = *reinterpret_cast<const float(*)[4]>(s + 4 * j);
        const float(&ds4)[4] = *reinterpret_cast<const float(*)[4]>(dp + 4 * j);
        SplitAccumulatorFragment(p4, p_hi[j], p_lo[j]);
        SplitAccumulatorFragment(ds4, ds_hi[j], ds_lo[j]);
        // ds_hi/lo[j] = {(key0, 2t), (key0 + 8, 2t), (key0, 2t + 1), (key0 + 8, 2t + 1)}.
#pragma unroll
        for (int r = 0; r < 4; ++r) {
          const int query = j * 8 + (lane % 4) * 2 + r / 2, key = key0 + 8 * (r % 2);
          const uint32_t offset = SwizzledChunk<kBlockM>(query, key / 4) + (key % 4) * 4;
          asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(s_ds_hi + offset), "r"(ds_hi[j][r])
                       : "memory");
          asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(s_ds_lo + offset), "r"(ds_lo[j][r])
                       : "memory");
        }
      }
      FenceProxyAsync();
      __syncthreads();  // dS complete; group 1 is done with Q and dO

      // Group 2: dV += P^T dO, dK += dS^T Q; group 3: dQ^T = K^T dS^T.
      float dq_t[kBlockM / 2];
      WgmmaFence();
      Tf32x3RS<kHeadDim, kMB>(dv, p_hi, p_lo, qt(6), qt(7));
      Tf32x3RS<kHeadDim, kMB>(dk, ds_hi, ds_lo, qt(4), qt(5));
      Tf32x3SS<kBlockM, kHeadDim, kBlockN / 8>(dq_t, kv(4), kv(5), s_ds_hi, s_ds_lo, false);
      WgmmaCommit();
      if (next) store_query_rows();
      WgmmaWait<0>();
      FenceRegisters(dq_t);
      FenceRegisters(dk);
      FenceRegisters(dv);
      // dQ^T: the thread holds rows d0 and d0 + 8 (dQ's columns) for queries
      // j * 8 + 2t + e.
      const int d0 = key0;
#pragma unroll
      for (int j = 0; j < kMB; ++j) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int64_t query = q_first + j * 8 + (lane % 4) * 2 + e;
          if (query >= task.q_len) continue;
          float* out = args.dq + task.q_offset0 + query * task.q_stride + d0;
          atomicAdd(out, dq_t[4 * j + e] * a.softmax_scale);
          atomicAdd(out + 8, dq_t[4 * j + 2 + e] * a.softmax_scale);
        }
      }
      __syncthreads();  // every warp's part of group 2 is done with Q^T and dO^T
      if (next) store_query_columns();
      FenceProxyAsync();
      __syncthreads();  // the next tile is stored; dS and this tile's are free
    }
    // Reductions: the SM does not wait for a read of the buffers per chunk.
    AddKeyGrads<kHeadDim, true>(args, dk, dv, task.kv_offset0, task.kv_stride, key0, task.k_valid);
  }
#endif  // RINGATTN_WGMMA
}

template <int kHeadDim>
cudaError_t LaunchFlashBackwardF32HopperKernel(const BackwardBlockArgs& args, cudaStream_t stream) {
  using Tr = F32HopperBackwardTraits<kHeadDim>;
  const ForwardBlockArgs& a = args.task;
  const HeavyFirstTileScheduler order = KeyTileOrder(a, Tr::kBlockN);
  return LaunchKernel(FlashBackwardF32HopperKernel<kHeadDim>, OrderGrid(order), Tr::kThreads,
                      Tr::kSharedBytes, stream, args, order);
}

}  // namespace ringattn::cuda::flash

#endif  // RINGATTN_CUDA_FLASH_BACKWARD_F32_HOPPER_KERNEL_CUH_
