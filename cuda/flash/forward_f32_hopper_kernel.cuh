// The fp32 forward on Hopper (sm_90a), accurate to fp32: 3xTF32 (every
// product a_lo b_hi + a_hi b_lo + a_hi b_hi, as the mma.sync fp32 kernel in
// forward_f32_kernel.cuh) on wgmma tf32, head_dims 64 and 128.
//
// A CTA of two warpgroups owns 128 query rows (64 per warpgroup) and walks
// the task's key tiles (64 keys at d64, 32 at d128: traits.h) that are not
// fully masked. tf32 wgmma reads K-major operands only, so every operand is
// stored split and K-major in the 128-byte swizzle: Q hi/lo once; per stage
// K hi/lo and V^T hi/lo (V transposed, d rows of keys). Tiles go global ->
// registers -> split -> shared memory. d64 has two stages: the loads of
// tile n + 1 are issued before the S GEMM of tile n and split and stored
// into the other stage while O += P V of tile n runs on the tensor cores.
// d128 has one: K of tile n + 1 is stored while O += P V of tile n runs,
// its V while S of tile n + 1 runs, so no store waits outside a GEMM.
//
// P feeds O += P V from the S accumulators directly: a thread holds keys
// 2t and 2t+1 of each 8-key block, which the tf32 A fragment names columns
// t and t + 4; V^T stores each 8-key block in that order (keys 0, 2, 4, 6,
// 1, 3, 5, 7), so its 16-byte chunk p of the block holds keys 2i + p.
// Mask, softmax step and epilogue are forward_common's (the wgmma
// accumulators have the m16n8 layout per warp). Included by
// forward_f32_hopper.cu; an empty kernel outside the sm_90a pass.
#ifndef RINGATTN_CUDA_FLASH_FORWARD_F32_HOPPER_KERNEL_CUH_
#define RINGATTN_CUDA_FLASH_FORWARD_F32_HOPPER_KERNEL_CUH_

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/flash/f32_hopper_common.cuh"
#include "cuda/flash/forward_common.cuh"
#include "cuda/flash/hopper_primitives.cuh"
#include "cuda/flash/launch.cuh"
#include "cuda/flash/mma_primitives.cuh"
#include "cuda/flash/traits.h"
#include "cuda/flash/wgmma_ops.cuh"
#include "cuda/kernel_args.h"

namespace ringattn::cuda::flash {

template <int kHeadDim>
__global__ void __launch_bounds__(F32HopperForwardTraits<kHeadDim>::kThreads, 1)
    FlashForwardF32HopperKernel(const ForwardBlockArgs a) {
#ifdef RINGATTN_WGMMA
  using Tr = F32HopperForwardTraits<kHeadDim>;
  constexpr int kBlockM = Tr::kBlockM, kBlockN = Tr::kBlockN, kThreads = Tr::kThreads;
  constexpr int kNB = kBlockN / 8, kDB = kHeadDim / 8;
  constexpr int kChunks = kHeadDim / 4;         // 16-byte chunks of a row
  constexpr int kRowStep = kThreads / kChunks;  // rows between a thread's chunks
  constexpr int kKRows = kBlockN / kRowStep;    // K chunks per thread
  constexpr int kQRows = kBlockM / kRowStep;    // Q chunks per thread
  static_assert(kBlockN * kChunks / kThreads == 4, "a thread stages 4 chunks of K and 4 of V");
  extern __shared__ __align__(1024) unsigned char shared_raw[];
  const uint32_t s_q_hi = (SharedAddress(shared_raw) + 1023) & ~1023u;
  const uint32_t s_q_lo = s_q_hi + Tr::kQBytes;
  // Stage s: K hi, K lo, V^T hi, V^T lo.
  const auto part = [&](int stage, int i) {
    return s_q_lo + Tr::kQBytes + stage * Tr::kStageBytes + i * Tr::kKvBytes;
  };

  const int warpgroup = threadIdx.x / 128;
  const QueryTileTask<float, kHeadDim, kBlockM, kBlockN> task(a);
  const int64_t b = task.b, h = task.h;
  const KeyTileRange& tiles = task.tiles;
  const int n_begin = tiles.n_begin, n_end = tiles.n_end;

  const int row0 = warpgroup * 64 + AccumulatorRow();
  const float scale_log2 = a.softmax_scale * kLog2e;

  float o_flat[kHeadDim / 2], s_flat[kBlockN / 2];
  auto& o = *reinterpret_cast<float(*)[1][kDB][4]>(o_flat);
  auto& s = *reinterpret_cast<float(*)[1][kNB][4]>(s_flat);
  float row_max[1][2] = {{-INFINITY, -INFINITY}}, row_sum[1][2] = {{0.f, 0.f}};
#pragma unroll
  for (int i = 0; i < kHeadDim / 2; ++i) o_flat[i] = 0.f;

  // The thread's share of a key tile: K rows k_row + kRowStep i, chunk k_c;
  // V keys 8 v_block + 2 i + v_parity, chunk v_c (whose four d rows of V^T
  // get one chunk each: column 2 v_block + v_parity of the block order).
  const int k_row = threadIdx.x / kChunks, k_c = threadIdx.x % kChunks;
  const int v_parity = threadIdx.x & 1, v_block = (threadIdx.x >> 1) % kNB,
            v_c = threadIdx.x / (2 * kNB);
  static_assert(kThreads == 2 * kNB * kChunks, "one thread per (key parity, 8-key block, chunk)");
  float4 k_raw[kKRows], v_raw[4];
  const auto load_tile = [&](int n) {
    const int64_t k1 = static_cast<int64_t>(n) * kBlockN;
    const int valid = static_cast<int>(min64(kBlockN, task.k_len - k1));
    const float* k = task.k + k1 * task.kv_stride;
    const float* v = task.v + k1 * task.kv_stride;
#pragma unroll
    for (int i = 0; i < kKRows; ++i)
      k_raw[i] = LoadF32Chunk(k, task.kv_stride, k_row + kRowStep * i, k_c, valid);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      v_raw[i] = LoadF32Chunk(v, task.kv_stride, 8 * v_block + 2 * i + v_parity, v_c, valid);
    }
  };
  const auto store_k = [&](int stage) {
#pragma unroll
    for (int i = 0; i < kKRows; ++i) {
      StoreSplitChunk(part(stage, 0), part(stage, 1),
                      SwizzledChunk<kBlockN>(k_row + kRowStep * i, k_c), k_raw[i]);
    }
  };
  const auto store_v = [&](int stage) {
    StoreSplitTransposed<kHeadDim>(part(stage, 2), part(stage, 3), v_c, 2 * v_block + v_parity,
                                   v_raw);
  };
  // S = Q K^T for the warpgroup's 64 rows; O += P V (8-key step kk takes
  // P's n8 block kk as the A fragment).
  uint32_t p_hi[kNB][4], p_lo[kNB][4];
  const auto issue_s = [&](int stage) {
    const uint32_t rows = warpgroup * 64 * 128;
    WgmmaFence();
    Tf32x3SS<kBlockN, kBlockM, kHeadDim / 8>(s_flat, s_q_hi + rows, s_q_lo + rows, part(stage, 0),
                                             part(stage, 1), false);
    WgmmaCommit();
  };
  const auto issue_pv = [&](int stage) {
    WgmmaFence();
    Tf32x3RS<kHeadDim, kNB>(o_flat, p_hi, p_lo, part(stage, 2), part(stage, 3));
    WgmmaCommit();
  };

  if (n_begin < n_end) {
    float4 q_raw[kQRows];
#pragma unroll
    for (int i = 0; i < kQRows; ++i) {
      q_raw[i] = LoadF32Chunk(task.q, task.q_stride, k_row + kRowStep * i, k_c, task.q_valid);
    }
    load_tile(n_begin);
#pragma unroll
    for (int i = 0; i < kQRows; ++i) {
      StoreSplitChunk(s_q_hi, s_q_lo, SwizzledChunk<kBlockM>(k_row + kRowStep * i, k_c), q_raw[i]);
    }
    store_k(0);
    if constexpr (Tr::kStages == 2) store_v(0);  // else the loop stores it
    FenceProxyAsync();
    __syncthreads();
  }

  // Waits for S of tile n and turns it into P (p_hi, p_lo), rescaling O.
  const auto softmax = [&](int n) {
    WgmmaWait<0>();
    FenceRegisters(s_flat);
    if (tiles.NeedsMask(n)) MaskScores(s, a, b, task.q0 + row0, static_cast<int64_t>(n) * kBlockN);
    float rescale[1][2];
    SoftmaxStep(s, row_max, row_sum, scale_log2, rescale);
    RescaleRows(o, rescale);
#pragma unroll
    for (int kk = 0; kk < kNB; ++kk) {
      SplitAccumulatorFragment(s[0][kk], p_hi[kk], p_lo[kk]);
    }
  };

  if constexpr (Tr::kStages == 2) {
    for (int n = n_begin; n < n_end; ++n) {
      const int stage = (n - n_begin) & 1;
      const bool next = n + 1 < n_end;
      if (next) load_tile(n + 1);  // in flight through S and the softmax
      issue_s(stage);
      softmax(n);
      issue_pv(stage);
      if (next) {
        store_k(stage ^ 1);  // read last by tile n - 1, whose GEMMs all threads waited for
        store_v(stage ^ 1);
        FenceProxyAsync();
      }
      WgmmaWait<0>();
      FenceRegisters(o_flat);
      __syncthreads();  // tile n + 1 is stored; both warpgroups are done with `stage`
    }
  } else {
    // One stage, its K and V refilled half a tile apart: V of tile n is
    // stored while S of tile n runs, K of tile n + 1 while O += P V of tile
    // n runs.
    for (int n = n_begin; n < n_end; ++n) {
      const bool next = n + 1 < n_end;
      issue_s(0);
      store_v(0);
      FenceProxyAsync();
      if (next) load_tile(n + 1);  // in flight through S and the softmax
      softmax(n);
      __syncthreads();  // both warpgroups' S has read K; V is stored
      issue_pv(0);
      if (next) {
        store_k(0);
        FenceProxyAsync();
      }
      WgmmaWait<0>();
      FenceRegisters(o_flat);
      __syncthreads();  // K of tile n + 1 is stored; both warpgroups' O += P V has read V
    }
  }

  StoreBlockResult<ElementType::kFloat32, kHeadDim>(o, row_max, row_sum, a, b, h, task.q0,
                                                    task.q_valid, row0);
#endif  // RINGATTN_WGMMA
}

template <int kHeadDim>
cudaError_t LaunchFlashForwardF32HopperKernel(const ForwardBlockArgs& a, cudaStream_t stream) {
  using Tr = F32HopperForwardTraits<kHeadDim>;
  return LaunchKernel(FlashForwardF32HopperKernel<kHeadDim>,
                      TaskGrid(a, a.q_pos.length, Tr::kBlockM), Tr::kThreads, Tr::kSharedBytes,
                      stream, a);
}

}  // namespace ringattn::cuda::flash

#endif  // RINGATTN_CUDA_FLASH_FORWARD_F32_HOPPER_KERNEL_CUH_
