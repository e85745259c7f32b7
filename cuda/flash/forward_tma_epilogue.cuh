// The warp-specialized forward's epilogue through shared memory and the
// TMA (sm_90a), where its tile fits beside the pipeline: each consumer
// warpgroup writes its 64 rows into its slab of the output tile (the
// 128-byte swizzle) and its first thread copies the slab out with TMA
// stores, so the warpgroup moves on to its next tile while the copy runs.
//  - StoreOutputTile: the written O (in the input dtype, by stmatrix) and
//    the LSE;
//  - MergeStateTile: the fp32 ring state's O, copied into the slab by the
//    producer, merged there.
// Stores from registers issue 8-row pieces of 16 or 32 bytes, one
// load/store-unit wavefront per row (docs/KERNEL_BENCH.md, twenty-second
// session). Included by forward_warp_specialized_kernel.cuh.
#ifndef RINGATTN_CUDA_FLASH_FORWARD_TMA_EPILOGUE_CUH_
#define RINGATTN_CUDA_FLASH_FORWARD_TMA_EPILOGUE_CUH_

#include <cuda.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "core/lse_math.h"
#include "cuda/flash/forward_common.cuh"
#include "cuda/flash/hopper_pipeline.cuh"
#include "cuda/flash/hopper_primitives.cuh"
#include "cuda/flash/mma_primitives.cuh"
#include "cuda/kernel_args.h"

namespace ringattn::cuda::flash {

// Named barriers 4 to 6: warpgroup w's threads have written its slab
// (1 to 3 are the kernel's turns at the tensor cores).
constexpr int kOutputBarrier = 4;

// The warpgroup's slab of the output tile, once all its threads have
// written it, copied out by its first thread with the TMA: kBoxes boxes of
// 64 rows by kColumns columns (128 bytes), in one bulk group; kEvictFirst:
// under the L2's evict-first policy (the ring state, touched once).
template <int kBoxes, int kColumns, bool kEvictFirst>
__device__ __forceinline__ void CopySlabOut(const CUtensorMap* map, uint32_t slab, int64_t q0,
                                            int warpgroup, int64_t h, int64_t b) {
  FenceProxyAsync();
  NamedBarrierSync(kOutputBarrier + warpgroup, 128);
  if (threadIdx.x % 128 == 0) {
    const int row = static_cast<int>(q0) + warpgroup * 64;
    [[maybe_unused]] const uint64_t evict_first = kEvictFirst ? EvictFirstPolicy() : 0;
#pragma unroll
    for (int c = 0; c < kBoxes; ++c) {
      if constexpr (kEvictFirst) {
        TmaStore4d(map, slab + c * 64 * 128, c * kColumns, row, static_cast<int>(h),
                   static_cast<int>(b), evict_first);
      } else {
        TmaStore4d(map, slab + c * 64 * 128, c * kColumns, row, static_cast<int>(h),
                   static_cast<int>(b));
      }
    }
    BulkCommit();
  }
}

// The written forward's epilogue where the O tile fits in shared memory:
// the warpgroup's 64 rows of O, normalized and in E, go into its slab (64
// rows, the 128-byte swizzle) by stmatrix, and one thread copies the slab
// out with the TMA, a 64-column box at a time (rows past the task are
// dropped by the map), so that the warpgroup moves on to its next tile
// while the copy runs; the row's first lane writes its LSE. The slab is
// written again once the last copy has read it (its bulk group, waited
// for by the same thread).
template <ElementType E, int kHeadDim>
__device__ __forceinline__ void StoreOutputTile(const float (&o)[1][kHeadDim / 8][4],
                                                const float (&row_max)[1][2],
                                                const float (&row_sum)[1][2],
                                                const ForwardBlockArgs& a, int64_t b, int64_t h,
                                                int64_t q0, int q_valid, int warpgroup,
                                                uint32_t slab, const CUtensorMap* o_map) {
  constexpr int kDB = kHeadDim / 8;
  const int lane = threadIdx.x % 32;
  const bool leader = threadIdx.x % 128 == 0;
  const int row0 = warpgroup * 64 + AccumulatorRow();
  float inv[2];
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const RowTotal total = FinishRow(row_max[0][half], WarpQuadSum(row_sum[0][half]));
    inv[half] = total.inv;
    const int row = row0 + 8 * half;
    if (row < q_valid && lane % 4 == 0) {
      *StateLse(a, b, h, q0 + row) = total.lse;
    }
  }
  if (leader) BulkWaitRead<0>();
  NamedBarrierSync(kOutputBarrier + warpgroup, 128);
  // Matrices (rows, 16-byte column chunk): (r, c), (r + 8, c), (r, c + 1),
  // (r + 8, c + 1) for the warp's 16 rows r.
  const int matrix = lane / 8;
  const int slab_row = (threadIdx.x / 32 % 4) * 16 + (matrix % 2) * 8 + lane % 8;
#pragma unroll
  for (int i = 0; i < kDB; i += 2) {
    uint32_t r[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const float* x = o[0][i + j / 2] + 2 * (j % 2);
      r[j] = Element<E>::Pack(x[0] * inv[j % 2], x[1] * inv[j % 2]);
    }
    StoreMatrices(slab + SwizzledChunk<64>(slab_row, i + matrix / 2), r);
  }
  CopySlabOut<kHeadDim / 64, 64, false>(o_map, slab, q0, warpgroup, h, b);
}

// The ring state's epilogue where its O tile fits in shared memory: the
// producer has copied the warpgroup's 64 rows of the fp32 state into its
// slab (the 128-byte swizzle, 32 columns a box; StateFull), or, for a
// fresh state (ForwardBlockArgs::state_fresh), only handed the slab over:
// the old LSE is -inf, rows without keys are written as zeros. Each row with
// an allowed key is merged there with the tile's (MergeLse against the old
// LSE, read before the tile's last P V; a state without keys yet may hold
// anything: its values are dropped, not scaled by 0), rows without keep
// their values, and one thread copies the slab back out with the TMA. The
// slab is released (StateEmpty) once that copy has read it, after the
// warpgroup's next first S (ConsumeTiles).
template <int kHeadDim>
__device__ __forceinline__ void MergeStateTile(const float (&o)[1][kHeadDim / 8][4],
                                               const float (&row_max)[1][2],
                                               const float (&row_sum)[1][2],
                                               const float (&old_lse)[2], const ForwardBlockArgs& a,
                                               int64_t b, int64_t h, int64_t q0, int q_valid,
                                               int warpgroup, uint32_t slab, uint32_t full,
                                               uint32_t full_parity, const CUtensorMap* state_map) {
  constexpr int kDB = kHeadDim / 8;
  const int lane = threadIdx.x % 32;
  MbarrierWait(full, full_parity);
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int slab_row = (threadIdx.x / 32 % 4) * 16 + lane / 4 + 8 * half;
    const int row = warpgroup * 64 + slab_row;
    const RowTotal total = FinishRow(row_max[0][half], WarpQuadSum(row_sum[0][half]));
    if (row >= q_valid) continue;
    if (total.inv == 0.f) {  // no allowed key: unchanged (a fresh state: its reset O)
      if (a.state_fresh) {
#pragma unroll
        for (int i = 0; i < kDB; ++i) {
          StoreShared2(slab + SwizzledChunk<64>(slab_row, 2 * i + lane % 4 / 2) + lane % 2 * 8, 0.f,
                       0.f);
        }
      }
      continue;
    }
    const StateRowMerge merge(old_lse[half], total);
    const bool keep_old = merge.KeepsOld();
#pragma unroll
    for (int i = 0; i < kDB; ++i) {
      // Columns 8 i + 2 (lane % 4) + {0, 1}: 16-byte chunk 2 i + (lane % 4) / 2.
      const uint32_t address =
          slab + SwizzledChunk<64>(slab_row, 2 * i + lane % 4 / 2) + lane % 2 * 8;
      const float2 x = keep_old ? LoadShared2(address) : make_float2(0.f, 0.f);
      const float2 y = merge.Combine(x, o[0][i][2 * half], o[0][i][2 * half + 1]);
      StoreShared2(address, y.x, y.y);
    }
    if (lane % 4 == 0) {
      *StateLse(a, b, h, q0 + row) = merge.lse;
    }
  }
  CopySlabOut<kHeadDim / 32, 32, true>(state_map, slab, q0, warpgroup, h, b);
}

}  // namespace ringattn::cuda::flash

#endif  // RINGATTN_CUDA_FLASH_FORWARD_TMA_EPILOGUE_CUH_
