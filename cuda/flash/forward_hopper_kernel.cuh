// The Hopper forward kernel (sm_90a): wgmma from shared memory, the
// FlashAttention-3 scheme without a producer warp. A CTA of two warpgroups
// owns 128 query rows (64 per warpgroup) and walks the key tiles of the task
// that are not fully masked. K/V tiles are double-buffered by cp.async in
// the layout wgmma reads (128-byte swizzle); inside a warpgroup, S of the
// next tile (Q K^T) is issued before O += P V of the current one, so the
// softmax of tile n+1 runs while the tensor cores multiply tile n.
// The mask, softmax step and epilogue are those of the mma.sync kernel
// (forward_common.cuh): the wgmma accumulators have the same per-warp
// layout. Included by forward_hopper_d<D>.cu; compiled to an empty kernel
// outside the sm_90a pass.
#ifndef RINGATTN_CUDA_FLASH_FORWARD_HOPPER_KERNEL_CUH_
#define RINGATTN_CUDA_FLASH_FORWARD_HOPPER_KERNEL_CUH_

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/flash/forward_common.cuh"
#include "cuda/flash/hopper_primitives.cuh"
#include "cuda/flash/launch.cuh"
#include "cuda/flash/mma_primitives.cuh"
#include "cuda/flash/traits.h"
#include "cuda/flash/wgmma_ops.cuh"
#include "cuda/kernel_args.h"

namespace ringattn::cuda::flash {

template <ElementType E, int kHeadDim>
__global__ void __launch_bounds__(HopperForwardTraits<kHeadDim>::kThreads,
                                  HopperForwardTraits<kHeadDim>::kMinBlocksPerSm)
    FlashForwardHopperKernel(const ForwardBlockArgs a) {
#ifdef RINGATTN_WGMMA
  using Tr = HopperForwardTraits<kHeadDim>;
  using T = typename Element<E>::T;
  constexpr int kBlockM = Tr::kBlockM, kBlockN = Tr::kBlockN;
  constexpr int kNB = kBlockN / 8, kDB = kHeadDim / 8;
  extern __shared__ __align__(1024) unsigned char shared_raw[];
  const uint32_t s_q = (SharedAddress(shared_raw) + 1023) & ~1023u;
  const uint32_t s_kv = s_q + Tr::kQBytes;  // [2 stages][K, V]
  const auto k_tile = [&](int stage) { return s_kv + stage * 2 * Tr::kKvBytes; };
  const auto v_tile = [&](int stage) { return k_tile(stage) + Tr::kKvBytes; };

  const int warpgroup = threadIdx.x / 128;
  const QueryTileTask<T, kHeadDim, kBlockM, kBlockN> task(a);
  const int64_t b = task.b, h = task.h;
  const KeyTileRange& tiles = task.tiles;
  const int n_begin = tiles.n_begin, n_end = tiles.n_end;

  // Rows row0 and row0 + 8 of the tile: warp w of a warpgroup owns 16.
  const int row0 = warpgroup * 64 + AccumulatorRow();
  const float scale_log2 = a.softmax_scale * kLog2e;

  // Accumulators, flat as wgmma names them and viewed as [1][blocks][4].
  float o_flat[kHeadDim / 2], s_flat[kBlockN / 2];
  auto& o = *reinterpret_cast<float(*)[1][kDB][4]>(o_flat);
  auto& s = *reinterpret_cast<float(*)[1][kNB][4]>(s_flat);
  uint32_t p[kBlockN / 16][4];
  float row_max[1][2] = {{-INFINITY, -INFINITY}}, row_sum[1][2] = {{0.f, 0.f}};
#pragma unroll
  for (int i = 0; i < kHeadDim / 2; ++i) o_flat[i] = 0.f;

  const auto load_stage = [&](int n, int stage) {
    const int64_t k1 = static_cast<int64_t>(n) * kBlockN;
    const int valid = static_cast<int>(min64(kBlockN, task.k_len - k1));
    LoadSwizzledTile<kHeadDim, kBlockN, Tr::kThreads>(k_tile(stage), task.k + k1 * task.kv_stride,
                                                      task.kv_stride, valid);
    LoadSwizzledTile<kHeadDim, kBlockN, Tr::kThreads>(v_tile(stage), task.v + k1 * task.kv_stride,
                                                      task.kv_stride, valid);
    CpAsyncCommit();
  };
  // S = Q K^T for the warpgroup's 64 rows and the stage's kBlockN keys.
  const auto issue_s = [&](int stage) {
    WgmmaFence();
    IssueRowsTimesRowsT<E, kHeadDim, kBlockM, kBlockN>(s_flat, s_q, warpgroup * 64, k_tile(stage));
  };
  // O += P V for the stage's keys (V N-major: 64-column blocks kBlockN rows apart).
  const auto issue_pv = [&](int stage) {
    WgmmaFence();
    IssueRegistersTimesNMajor<E, kHeadDim>(o_flat, p, v_tile(stage), kBlockN);
    WgmmaCommit();
  };
  // Masks S of key tile n where needed and runs the softmax step on it.
  const auto softmax = [&](int n, float(&rescale)[1][2]) {
    FenceRegisters(s_flat);
    if (tiles.NeedsMask(n)) MaskScores(s, a, b, task.q0 + row0, static_cast<int64_t>(n) * kBlockN);
    SoftmaxStep(s, row_max, row_sum, scale_log2, rescale);
  };
  const auto pack_p = [&]() {
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) PackP<E>(s, 0, kk, p[kk]);
  };

  if (n_begin < n_end) {
    LoadSwizzledTile<kHeadDim, kBlockM, Tr::kThreads>(s_q, task.q, task.q_stride, task.q_valid);
    load_stage(n_begin, 0);
    if (n_begin + 1 < n_end) {
      load_stage(n_begin + 1, 1);
      CpAsyncWait<1>();
    } else {
      CpAsyncWait<0>();
    }
    FenceProxyAsync();
    __syncthreads();
    issue_s(0);
    WgmmaWait<0>();
    float rescale[1][2];
    softmax(n_begin, rescale);
    pack_p();
  }

  // The last tile is peeled off so that every iteration issues the same
  // wgmma groups (ptxas serializes them when it cannot tell which ones a
  // wait covers).
  int n = n_begin;
  for (; n + 1 < n_end; ++n) {
    const int stage = (n - n_begin) & 1;
    CpAsyncWait<0>();  // stage ^ 1 (tile n + 1) has landed
    FenceProxyAsync();
    __syncthreads();
    issue_s(stage ^ 1);
    issue_pv(stage);
    float rescale[1][2];
    WgmmaWait<1>();  // S of tile n + 1, while P V of tile n runs
    softmax(n + 1, rescale);
    WgmmaWait<0>();
    FenceRegisters(o_flat);
    __syncthreads();  // both warpgroups are done with `stage`
    if (n + 2 < n_end) load_stage(n + 2, stage);
    RescaleRows(o, rescale);
    pack_p();
  }
  if (n < n_end) {
    issue_pv((n - n_begin) & 1);
    WgmmaWait<0>();
    FenceRegisters(o_flat);
  }

  StoreBlockResult<E, kHeadDim>(o, row_max, row_sum, a, b, h, task.q0, task.q_valid, row0);
#endif  // RINGATTN_WGMMA
}

template <ElementType E, int kHeadDim>
cudaError_t LaunchFlashForwardHopperKernel(const ForwardBlockArgs& a, cudaStream_t stream) {
  using Tr = HopperForwardTraits<kHeadDim>;
  return LaunchKernel(FlashForwardHopperKernel<E, kHeadDim>,
                      TaskGrid(a, a.q_pos.length, Tr::kBlockM), Tr::kThreads, Tr::kSharedBytes,
                      stream, a);
}

}  // namespace ringattn::cuda::flash

#endif  // RINGATTN_CUDA_FLASH_FORWARD_HOPPER_KERNEL_CUH_
