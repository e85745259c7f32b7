// Per-thread pieces shared by the forward kernels (mma.sync and wgmma):
// both hold S and O in the m16n8 accumulator layout (a warp owns 16 rows of
// each of its kMT row tiles; lane holds rows lane / 4 and lane / 4 + 8,
// columns 8 j + 2 (lane % 4) + {0, 1} of each n8 block j), so the element
// mask, the online-softmax step and the epilogue are written once.
#ifndef RINGATTN_CUDA_FLASH_FORWARD_COMMON_CUH_
#define RINGATTN_CUDA_FLASH_FORWARD_COMMON_CUH_

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "core/lse_math.h"
#include "cuda/flash/block_mask.cuh"
#include "cuda/flash/mma_primitives.cuh"
#include "cuda/kernel_args.h"

namespace ringattn::cuda::flash {

// The keys of a kCols-key tile (task key indices k_first + [0, kCols)) that
// a query at position `qp` may see, as one range [*begin, *end) of tile
// columns (empty: begin == end).
template <int kCols>
__device__ __forceinline__ void AllowedKeyColumns(const TaskMask& mask, const DeviceRun& k_pos,
                                                  int64_t k_first, int64_t qp, int* begin,
                                                  int* end) {
  const int valid = static_cast<int>(min64(kCols, k_pos.length - k_first));
  IndicesWithin(k_pos, k_first, valid, mask.KeyLow(qp), mask.KeyHigh(qp), begin, end);
}

// The rows and keys of a thread's scores: task query index of its first
// row (q_first; rows q_first + 16 m + 8 half) and task key index of its
// first n8 block (k_first; keys k_first + 8 j + 2 (lane % 4) + e). The
// columns each row may see, as one range [begin, end) per row, relative
// to the lane's first column (2 (lane % 4)), so that MaskOutside compares
// with compile-time offsets. Apart from the scores, so that a kernel may
// find them before its S is computed (no branch of theirs after its GEMMs
// are issued).
template <int kMT, int kNB>
__device__ __forceinline__ void AllowedColumns(const ForwardBlockArgs& a, int64_t b,
                                               int64_t q_first, int64_t k_first,
                                               int (&begin)[kMT][2], int (&end)[kMT][2]) {
  const TaskMask mask = TaskMask::Of(a, b);
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int m = 0; m < kMT; ++m) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int64_t qp = PositionAt(a.q_pos, q_first + 16 * m + 8 * half);
      AllowedKeyColumns<kNB * 8>(mask, a.k_pos, k_first, qp, &begin[m][half], &end[m][half]);
      begin[m][half] -= (lane % 4) * 2;
      end[m][half] -= (lane % 4) * 2;
    }
  }
}

// Scores outside their row's AllowedColumns become -inf (no branch).
// kLower = false tests only the upper bound (one compare an element instead
// of two): for a key tile every row's lower bound lies at or before
// (KeyTileRange::LowerBoundFree), where begin <= 0 for every row.
template <int kMT, int kNB, bool kLower = true>
__device__ __forceinline__ void MaskOutside(float (&s)[kMT][kNB][4], const int (&begin)[kMT][2],
                                            const int (&end)[kMT][2]) {
#pragma unroll
  for (int j = 0; j < kNB; ++j) {
#pragma unroll
    for (int e = 0; e < 2; ++e) {
#pragma unroll
      for (int m = 0; m < kMT; ++m) {
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const int column = j * 8 + e;
          if ((kLower && column < begin[m][half]) || column >= end[m][half]) {
            s[m][j][2 * half + e] = -INFINITY;
          }
        }
      }
    }
  }
}

// The bounds a forward step's mask tests: none (a full tile), the upper
// ones only (MaskOutside's kLower = false), or both.
enum class MaskBounds { kNone, kUpper, kBoth };
template <MaskBounds kBounds>
using MaskForm = std::integral_constant<MaskBounds, kBounds>;

// Disallowed pairs and keys past the task become -inf (AllowedColumns,
// then MaskOutside).
template <int kMT, int kNB>
__device__ __forceinline__ void MaskScores(float (&s)[kMT][kNB][4], const ForwardBlockArgs& a,
                                           int64_t b, int64_t q_first, int64_t k_first) {
  int begin[kMT][2], end[kMT][2];
  AllowedColumns<kMT, kNB>(a, b, q_first, k_first, begin, end);
  MaskOutside(s, begin, end);
}

// The largest of v's first kWidth elements, in v[0] (v is overwritten),
// combined pairwise in ceil(log2(kWidth)) levels (one level a call: each
// level's width a constant, so that v stays in registers).
template <int kWidth, int kN>
__device__ __forceinline__ float TreeMax(float (&v)[kN]) {
  if constexpr (kWidth > 1) {
    constexpr int kHalf = (kWidth + 1) / 2;
#pragma unroll
    for (int j = 0; j + kHalf < kWidth; ++j) v[j] = fmaxf(v[j], v[j + kHalf]);
    return TreeMax<kHalf>(v);
  } else {
    return v[0];
  }
}

// One online-softmax step (FlashAttention-2: row sums stay per thread until
// the epilogue): updates the running max (scaled log2 units) and sums,
// turns the scores into P = 2^(S * scale_log2 - max) in place, and returns
// the factors by which O's rows must be rescaled.
template <int kMT, int kNB>
__device__ __forceinline__ void SoftmaxStep(float (&s)[kMT][kNB][4], float (&row_max)[kMT][2],
                                            float (&row_sum)[kMT][2], float scale_log2,
                                            float (&rescale)[kMT][2]) {
#pragma unroll
  for (int m = 0; m < kMT; ++m) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      // The row's max over the tile as a tree (depth log2(2 kNB), not a
      // chain of kNB maxima: the exponentials wait for it).
      float pair_max[kNB];
#pragma unroll
      for (int j = 0; j < kNB; ++j) pair_max[j] = fmaxf(s[m][j][2 * half], s[m][j][2 * half + 1]);
      const float tile_max = TreeMax<kNB>(pair_max);
      const float new_max = fmaxf(row_max[m][half], WarpQuadMax(tile_max) * scale_log2);
      // A row with no allowed key yet keeps max -inf: subtract 0 instead.
      const float ref = new_max == -INFINITY ? 0.f : new_max;
      rescale[m][half] = FastExp2(row_max[m][half] - ref);
      row_max[m][half] = new_max;
      float sum = row_sum[m][half] * rescale[m][half];
#pragma unroll
      for (int j = 0; j < kNB; ++j) {
        s[m][j][2 * half] = FastExp2(fmaf(s[m][j][2 * half], scale_log2, -ref));
        s[m][j][2 * half + 1] = FastExp2(fmaf(s[m][j][2 * half + 1], scale_log2, -ref));
        sum += s[m][j][2 * half] + s[m][j][2 * half + 1];
      }
      row_sum[m][half] = sum;
    }
  }
}

// O's rows *= rescale. Once the running max settles most tiles leave it
// alone: skipped when no row of the warp moved (a warp-uniform branch).
template <int kMT, int kDB>
__device__ __forceinline__ void RescaleRows(float (&acc)[kMT][kDB][4],
                                            const float (&rescale)[kMT][2]) {
#pragma unroll
  for (int m = 0; m < kMT; ++m) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      if (__any_sync(0xffffffffu, rescale[m][half] != 1.f)) {
#pragma unroll
        for (int i = 0; i < kDB; ++i) {
          acc[m][i][2 * half] *= rescale[m][half];
          acc[m][i][2 * half + 1] *= rescale[m][half];
        }
      }
    }
  }
}

// A finished row: its LSE (natural log; -inf without an allowed key) and
// the factor that normalizes its O (0 without an allowed key), from its
// running max (log2 units) and its quad-summed exponentials.
struct RowTotal {
  float lse, inv;
};
__device__ __forceinline__ RowTotal FinishRow(float row_max, float sum) {
  constexpr float kLn2 = 0.6931471805599453f;
  return sum > 0.f ? RowTotal{(row_max + log2f(sum)) * kLn2, 1.f / sum} : RowTotal{-INFINITY, 0.f};
}

// A finished row merged into the fp32 ring state: the merged LSE and the
// weights of the state's old O and of the row's unnormalized O (its
// normalization folded in). A state without an allowed key yet may hold
// anything: its values are dropped (!KeepsOld: the caller passes zeros),
// not scaled by 0.
struct StateRowMerge {
  float lse, old_scale, new_scale;
  __device__ __forceinline__ StateRowMerge(float old_lse, const RowTotal& total) {
    const LseMerge<float> merge = MergeLse(old_lse, total.lse);
    lse = merge.lse;
    old_scale = merge.old_scale;
    new_scale = merge.new_scale * total.inv;
  }
  __device__ __forceinline__ bool KeepsOld() const { return old_scale != 0.f; }
  // Two adjacent columns: the kept old values, the row's accumulator values.
  __device__ __forceinline__ float2 Combine(float2 kept, float x, float y) const {
    return make_float2(kept.x * old_scale + x * new_scale, kept.y * old_scale + y * new_scale);
  }
};

// The LSE (written, or the fp32 ring state's) of task query row `row` of
// batch row b, head h.
__device__ __forceinline__ float* StateLse(const ForwardBlockArgs& a, int64_t b, int64_t h,
                                           int64_t row) {
  return a.state_lse + (b * a.num_heads + h) * a.q_rows + a.q_row + row;
}

// Epilogue: the block's rows as (O_b, LSE_b), written (args.out: O in the
// input dtype and LSE) or merged into the fp32 ring state. `row0` is the
// thread's first row within the CTA's query tile starting at task row q0.
template <ElementType E, int kHeadDim, int kMT>
__device__ __forceinline__ void StoreBlockResult(const float (&acc)[kMT][kHeadDim / 8][4],
                                                 const float (&row_max)[kMT][2],
                                                 float (&row_sum)[kMT][2],
                                                 const ForwardBlockArgs& a, int64_t b, int64_t h,
                                                 int64_t q0, int q_valid, int row0) {
  using T = typename Element<E>::T;
  constexpr int kDB = kHeadDim / 8;
  const int lane = threadIdx.x % 32;
  const int col = (lane % 4) * 2;
  const auto o_offset = [&](int row) {
    return ((b * a.q_rows + a.q_row + q0 + row) * a.num_heads + h) * kHeadDim + col;
  };
  // Merging, the old state of the thread's rows is read before the merge
  // factors are known. Where it fits in registers beside O (kMT * kDB <=
  // 16: d64 and d128 with one row tile per warp, d64 with two), the LSE and
  // O of every row are in flight at once, one memory round trip per tile
  // instead of one for the LSE and one per row (short tiles waited on
  // them); otherwise the O of a row at a time, after the LSE. The state of a
  // row without keys yet may hold anything: its values are dropped below,
  // not scaled by 0. Every lane reads the LSE of its rows before any lane
  // writes it. The state's O goes through the cache-streaming loads and
  // stores (evict first): touched once a call, it would push out of the L2
  // the K and V tiles that other CTAs read again.
  constexpr bool kLoadAll = kMT * kDB <= 16;
  float old_lse[kMT][2];
  float2 old_all[kLoadAll ? kMT : 1][2][kDB];
  // Row `row`'s old O, or zeros when !merge (written on every path, so that
  // an array of them stays in registers: a conditionally written one went
  // to the stack).
  const auto load_old = [&](int row, bool merge, float2(&old)[kDB]) {
    const float2* o = reinterpret_cast<const float2*>(a.state_o + o_offset(row));
#pragma unroll
    for (int i = 0; i < kDB; ++i) old[i] = merge ? __ldcs(o + i * 4) : make_float2(0.f, 0.f);
  };
#pragma unroll
  for (int m = 0; m < kMT; ++m) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int row = row0 + 16 * m + 8 * half;
      const bool merge = a.out == nullptr && row < q_valid;
      old_lse[m][half] = merge ? __ldcs(StateLse(a, b, h, q0 + row)) : -INFINITY;
      if constexpr (kLoadAll) load_old(row, merge, old_all[m][half]);
      row_sum[m][half] = WarpQuadSum(row_sum[m][half]);
    }
  }
  __syncwarp();
#pragma unroll
  for (int m = 0; m < kMT; ++m) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int row = row0 + 16 * m + 8 * half;
      if (row >= q_valid) continue;
      const float sum = row_sum[m][half];
      const RowTotal total = FinishRow(row_max[m][half], sum);
      const float inv = total.inv;
      float* lse = StateLse(a, b, h, q0 + row);
      if (a.out != nullptr) {
        T* out = static_cast<T*>(a.out) + o_offset(row);
#pragma unroll
        for (int i = 0; i < kDB; ++i) {
          if constexpr (E == ElementType::kFloat32) {
            *reinterpret_cast<float2*>(out + i * 8) =
                make_float2(acc[m][i][2 * half] * inv, acc[m][i][2 * half + 1] * inv);
          } else {
            *reinterpret_cast<uint32_t*>(out + i * 8) =
                Element<E>::Pack(acc[m][i][2 * half] * inv, acc[m][i][2 * half + 1] * inv);
          }
        }
        if (lane % 4 == 0) *lse = total.lse;
        continue;
      }
      if (sum == 0.f) continue;  // no allowed key: the state is unchanged
      float2 old[kDB];
      if constexpr (kLoadAll) {
#pragma unroll
        for (int i = 0; i < kDB; ++i) old[i] = old_all[m][half][i];
      } else {
        load_old(row, true, old);
      }
      const StateRowMerge merge(old_lse[m][half], total);
      const bool keep_old = merge.KeepsOld();
      float2* o = reinterpret_cast<float2*>(a.state_o + o_offset(row));
#pragma unroll
      for (int i = 0; i < kDB; ++i) {
        const float2 kept = keep_old ? old[i] : make_float2(0.f, 0.f);
        __stcs(o + i * 4, merge.Combine(kept, acc[m][i][2 * half], acc[m][i][2 * half + 1]));
      }
      if (lane % 4 == 0) *lse = merge.lse;
    }
  }
}

}  // namespace ringattn::cuda::flash

#endif  // RINGATTN_CUDA_FLASH_FORWARD_COMMON_CUH_
