// The per-tile steps both Hopper backward kernels share (the cp.async one,
// backward_hopper_kernel.cuh, and the warp-specialized one,
// backward_warp_specialized_kernel.cuh). A consumer warpgroup holds S^T and
// dP^T of its 64 keys x kBlockM queries as wgmma accumulators (the m64nN
// layout: thread keys key0 and key0 + 8, query columns
// j * 8 + (lane % 4) * 2 + e), and dK, dV of its keys.
#ifndef RINGATTN_CUDA_FLASH_BACKWARD_HOPPER_COMMON_CUH_
#define RINGATTN_CUDA_FLASH_BACKWARD_HOPPER_COMMON_CUH_

#include <cstdint>
#include <type_traits>

#include "cuda/flash/block_mask.cuh"
#include "cuda/flash/hopper_primitives.cuh"
#include "cuda/flash/launch.cuh"
#include "cuda/flash/mma_primitives.cuh"
#include "cuda/flash/wgmma_ops.cuh"
#include "cuda/kernel_args.h"

namespace ringattn::cuda::flash {

// What the cp.async wgmma backward (backward_hopper_kernel.cuh) loads, and
// the column-split one (backward_column_split_kernel.cuh: TmaQueryTiles, Q
// and dO by the TMA) builds on: the key tile's K and V once, and per query
// tile Q and dO (two buffers each, the 128-byte swizzle) by cp.async, with
// the tile's LSE (log2 units; +inf for rows that are not there, so P = 0)
// and D: thread r < kBlockM loads row r's into registers with the tile (at
// the top of an iteration) and stores them into the buffer's slot of s_lse /
// s_delta later (at its end), so the global latency hides behind the tile's
// work.
template <ElementType E, int kHeadDim, int kBlockN, int kBlockM, int kThreads>
struct CpAsyncQueryTiles {
  using T = typename Element<E>::T;
  static constexpr int kQBytes = kBlockM * kHeadDim * 2;
  static_assert(kBlockM <= kThreads, "a thread per query row");
  const BackwardBlockArgs& args;
  const KeyTileTask<T, kHeadDim, kBlockN, kBlockM>& task;
  uint32_t s_q, s_do;      // [2][kBlockM][kHeadDim] each
  float *s_lse, *s_delta;  // [2][kBlockM] each
  float next_lse = INFINITY, next_delta = 0.f;

  __device__ __forceinline__ CpAsyncQueryTiles(
      const BackwardBlockArgs& args, const KeyTileTask<T, kHeadDim, kBlockN, kBlockM>& task,
      uint32_t s_q, uint32_t s_do, float* s_lse, float* s_delta)
      : args(args), task(task), s_q(s_q), s_do(s_do), s_lse(s_lse), s_delta(s_delta) {}

  __device__ __forceinline__ void LoadKeys(uint32_t s_k, uint32_t s_v) const {
    const ForwardBlockArgs& a = args.task;
    LoadSwizzledTile<kHeadDim, kBlockN, kThreads>(s_k, static_cast<const T*>(a.k) + task.kv_offset0,
                                                  task.kv_stride, task.k_valid);
    LoadSwizzledTile<kHeadDim, kBlockN, kThreads>(s_v, static_cast<const T*>(a.v) + task.kv_offset0,
                                                  task.kv_stride, task.k_valid);
  }
  // Query tile m's Q and dO into `buffer` (cp.async, not committed), its
  // LSE and D into this thread's registers.
  __device__ __forceinline__ void Load(int m, int buffer) {
    const int64_t row = static_cast<int64_t>(m) * kBlockM;
    const int valid = static_cast<int>(min64(kBlockM, task.q_len - row));
    LoadSwizzledTile<kHeadDim, kBlockM, kThreads>(
        s_q + buffer * kQBytes, task.q + row * task.q_stride, task.q_stride, valid);
    LoadSwizzledTile<kHeadDim, kBlockM, kThreads>(
        s_do + buffer * kQBytes, task.dout + row * task.q_stride, task.q_stride, valid);
    LoadStats(m);
  }
  __device__ __forceinline__ void LoadStats(int m) {
    const int64_t r = static_cast<int64_t>(m) * kBlockM + threadIdx.x;
    if (threadIdx.x < kBlockM && r < task.q_len) {
      next_lse = args.lse[task.stat0 + r];
      next_delta = args.delta[task.stat0 + r];
    } else {
      next_lse = INFINITY;
      next_delta = 0.f;
    }
  }
  __device__ __forceinline__ void StoreStats(int buffer) const {
    if (threadIdx.x < kBlockM) {
      s_lse[buffer * kBlockM + threadIdx.x] = BackwardLse(next_lse);
      s_delta[buffer * kBlockM + threadIdx.x] = next_delta;
    }
  }
  // The walk over the key tile's query tiles [m_begin, m_end) shared by
  // both kernels: Start loads K, V and the first tile; Arrive(m) returns
  // tile m's buffer once its copies are visible to every thread and to
  // wgmma and every thread is done with tile m - 1 (one barrier), then
  // sends tile m + 1 on its way into the buffer tile m - 1 used;
  // Release(buffer), after the tile's work, stores tile m + 1's LSE and D.
  __device__ __forceinline__ void Start(uint32_t s_k, uint32_t s_v) {
    LoadKeys(s_k, s_v);
    Load(task.tiles.m_begin, 0);
    CpAsyncCommit();
    StoreStats(0);
  }
  __device__ __forceinline__ int Arrive(int m) {
    const int buffer = (m - task.tiles.m_begin) & 1;
    CpAsyncWait<0>();
    FenceProxyAsync();
    __syncthreads();
    if (m + 1 < task.tiles.m_end) Load(m + 1, buffer ^ 1);
    CpAsyncCommit();
    return buffer;
  }
  __device__ __forceinline__ void Release(int buffer) const { StoreStats(buffer ^ 1); }
  __device__ __forceinline__ uint32_t QTile(int buffer) const { return s_q + buffer * kQBytes; }
  __device__ __forceinline__ uint32_t DoTile(int buffer) const { return s_do + buffer * kQBytes; }
};

// S^T = K_w Q^T, then dP^T = V_w dO^T, as two wgmma groups (the caller
// waits for S^T first and computes P^T while dP^T is multiplied). K and V
// tiles hold kBlockN keys (the warpgroup's 64 start at key_base); Q and dO
// tiles kBlockM queries.
template <ElementType E, int kHeadDim, int kBlockN, int kBlockM>
__device__ __forceinline__ void IssueScoresT(float (&s)[kBlockM / 2], float (&dp)[kBlockM / 2],
                                             uint32_t s_k, uint32_t s_v, int key_base,
                                             uint32_t q_tile, uint32_t do_tile) {
  WgmmaFence();
  IssueRowsTimesRowsT<E, kHeadDim, kBlockN, kBlockM>(s, s_k, key_base, q_tile);
  IssueRowsTimesRowsT<E, kHeadDim, kBlockN, kBlockM>(dp, s_v, key_base, do_tile);
}

// dV += P^T dO and dK += dS^T Q, one wgmma group (dO and Q N-major:
// 64-column blocks kBlockM rows apart). p16 and ds16 must stay unchanged
// until the group completes.
template <ElementType E, int kHeadDim, int kBlockM>
__device__ __forceinline__ void IssueKeyGrads(float (&dk)[kHeadDim / 2], float (&dv)[kHeadDim / 2],
                                              const uint32_t (&p16)[kBlockM / 16][4],
                                              const uint32_t (&ds16)[kBlockM / 16][4],
                                              uint32_t q_tile, uint32_t do_tile) {
  WgmmaFence();
  IssueRegistersTimesNMajor<E, kHeadDim>(dv, p16, do_tile, kBlockM);
  IssueRegistersTimesNMajor<E, kHeadDim>(dk, ds16, q_tile, kBlockM);
  WgmmaCommit();
}

// dQ (64 queries x 64 columns from col_begin) = dS K over kKeys keys from
// key_begin, one wgmma group: dS M-major (s_ds: the 64-query column block
// of dS^T, rows of keys), K N-major.
template <ElementType E, int kBlockN, int kKeys>
__device__ __forceinline__ void IssueQueryGrads(float (&dq)[32], uint32_t s_ds, uint32_t s_k,
                                                int key_begin, int col_begin) {
  const uint64_t ds = SwizzledDescriptor(s_ds + key_begin * 128, kBlockN * 128);
  const uint64_t k =
      SwizzledDescriptor(s_k + (col_begin / 64) * kBlockN * 128 + key_begin * 128, kBlockN * 128);
  WgmmaFence();
#pragma unroll
  for (int kk = 0; kk < kKeys / 16; ++kk) {
    Wgmma<E>::SS64T(dq, DescriptorPlus(ds, kk * 16 * 128), DescriptorPlus(k, kk * 16 * 128),
                    kk > 0);
  }
  WgmmaCommit();
}

// How a kernel updates fp32 rows: reductions (red.global.add, which the SM
// does not wait for; rows other CTAs add to), a plain read-modify-write
// (the CTA's own rows), or a store (the CTA's own rows, known to hold
// zeros).
enum class RowUpdate { kReduce, kReadModifyWrite, kStore };

// The thread's rows row0 and row0 + 8 (those below `rows`) of an m16n8-
// layout accumulator of kCols columns (per warp; a warpgroup's m64 wgmma
// accumulator is four of them), times `scale` when kScaled, into fp32 rows
// `stride` floats apart from `base` as `update` says.
template <int kCols, bool kScaled = true>
__device__ __forceinline__ void AddAccumulatorRows(float* base, int64_t stride,
                                                   const float (&acc)[kCols / 2], int row0,
                                                   int64_t rows, float scale, RowUpdate update) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int row = row0 + 8 * half;
    if (row >= rows) continue;
    float* out = base + row * stride + (lane % 4) * 2;
    // The product rounded before the add on either path (no FMA).
    const auto scaled = [&](float v) { return kScaled ? __fmul_rn(v, scale) : v; };
    const auto x = [&](int j) { return scaled(acc[4 * j + 2 * half]); };
    const auto y = [&](int j) { return scaled(acc[4 * j + 2 * half + 1]); };
    if (update == RowUpdate::kReduce) {
#pragma unroll
      for (int j = 0; j < kCols / 8; ++j) AtomicAdd2(out + j * 8, x(j), y(j));
    } else if (update == RowUpdate::kStore) {
#pragma unroll
      for (int j = 0; j < kCols / 8; ++j) {
        *reinterpret_cast<float2*>(out + j * 8) = make_float2(x(j), y(j));
      }
    } else {
#pragma unroll
      for (int j = 0; j < kCols / 8; ++j) {
        float2* p = reinterpret_cast<float2*>(out + j * 8);
        const float2 old = *p;
        *p = make_float2(old.x + x(j), old.y + y(j));
      }
    }
  }
}

// dQ (64 queries x 64 columns from col, the m64n64 accumulators of
// IssueQueryGrads) * scale added to the fp32 dQ with reductions: the
// thread's rows row0 and row0 + 8 of the query tile from task row q_first.
template <typename Task>
__device__ __forceinline__ void AddQueryGrads(const BackwardBlockArgs& args, const Task& task,
                                              const float (&dq)[32], int64_t q_first, int row0,
                                              int col) {
  AddAccumulatorRows<64>(args.dq + task.q_offset0 + q_first * task.q_stride + col, task.q_stride,
                         dq, row0, task.q_len - q_first, args.task.softmax_scale,
                         RowUpdate::kReduce);
}

// One bit per element of the thread's S^T fragment.
template <int kBlockM>
using FragmentBits = std::conditional_t<(kBlockM > 64), uint64_t, uint32_t>;

// Which of the thread's elements of S^T are allowed pairs, as bit
// 4 j + 2 half + e. The thread's two keys (key0 and key0 + 8, counted from
// the key tile's first key k0, which has k_valid keys) each see one range
// of the query tile's columns (IndicesWithin), which ColumnRangeBits turns
// into the bits of the elements whose columns (compile-time offsets from
// the lane's first) lie in it.
template <int kBlockM>
__device__ __forceinline__ FragmentBits<kBlockM> AllowedBitsT(const ForwardBlockArgs& a, int64_t b,
                                                              int key0, int k_valid, int64_t k0,
                                                              int64_t q_first) {
  int begin[2], end[2];
  KeyQueryColumns(a, b, key0, k_valid, k0, q_first, kBlockM, begin, end);
  return ColumnRangeBits<FragmentBits<kBlockM>, kBlockM / 8>(begin, end);
}

// A tile's per-query statistic (LSE or D) as this thread's pairs: the two
// queries of each n8 block of its fragment, one 64-bit load each (`x` 8-byte
// aligned). Loaded before a wgmma wait, their latency hides behind it.
template <int kBlockM>
__device__ __forceinline__ void LoadQueryPairs(const float* x, float2 (&pairs)[kBlockM / 8]) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int j = 0; j < kBlockM / 8; ++j)
    pairs[j] = reinterpret_cast<const float2*>(x)[j * 4 + lane % 4];
}

// P^T = exp2(S^T * scale_log2 - lse) in place (pairs not in `allowed` 0;
// without kMasked every pair is allowed and `allowed` is not read).
// lse: the thread's pairs of the tile's LSE per query (LoadQueryPairs), in
// log2 units (+inf for rows that are not there).
template <int kBlockM, bool kMasked = true>
__device__ __forceinline__ void ProbabilitiesT(float (&s)[kBlockM / 2],
                                               FragmentBits<kBlockM> allowed,
                                               const float2 (&lse)[kBlockM / 8], float scale_log2) {
  constexpr int kMB = kBlockM / 8;
  auto& p3 = *reinterpret_cast<float(*)[1][kMB][4]>(s);
#pragma unroll
  for (int j = 0; j < kMB; ++j) {
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const float row_lse = e == 0 ? lse[j].x : lse[j].y;
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const float x = FastExp2(fmaf(p3[0][j][2 * half + e], scale_log2, -row_lse));
        p3[0][j][2 * half + e] = !kMasked || ((allowed >> (4 * j + 2 * half + e)) & 1u) ? x : 0.f;
      }
    }
  }
}

// The same from the tile's LSE in memory (8-byte aligned).
template <int kBlockM, bool kMasked = true>
__device__ __forceinline__ void ProbabilitiesT(float (&s)[kBlockM / 2],
                                               FragmentBits<kBlockM> allowed, const float* lse,
                                               float scale_log2) {
  float2 pairs[kBlockM / 8];
  LoadQueryPairs<kBlockM>(lse, pairs);
  ProbabilitiesT<kBlockM, kMasked>(s, allowed, pairs, scale_log2);
}

// dS^T = P^T (dP^T - D) in place in dp (delta: the thread's pairs of the
// tile's D per query, LoadQueryPairs),
// then P^T and dS^T packed into p16 and ds16, the A operands of
// dV += P^T dO and dK += dS^T Q (packed after dS^T so that P^T's fp32 and
// its packed copy are not live together beside dP^T).
template <ElementType E, int kBlockM>
__device__ __forceinline__ void ScoreGradsT(const float (&p)[kBlockM / 2], float (&dp)[kBlockM / 2],
                                            const float2 (&delta)[kBlockM / 8],
                                            uint32_t (&p16)[kBlockM / 16][4],
                                            uint32_t (&ds16)[kBlockM / 16][4]) {
  constexpr int kMB = kBlockM / 8;
  const auto& p3 = *reinterpret_cast<const float(*)[1][kMB][4]>(p);
  auto& ds3 = *reinterpret_cast<float(*)[1][kMB][4]>(dp);
#pragma unroll
  for (int j = 0; j < kMB; ++j) {
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const float row_delta = e == 0 ? delta[j].x : delta[j].y;
      ds3[0][j][e] = p3[0][j][e] * (ds3[0][j][e] - row_delta);
      ds3[0][j][2 + e] = p3[0][j][2 + e] * (ds3[0][j][2 + e] - row_delta);
    }
  }
#pragma unroll
  for (int kk = 0; kk < kBlockM / 16; ++kk) {
    PackP<E>(p3, 0, kk, p16[kk]);
    PackP<E>(ds3, 0, kk, ds16[kk]);
  }
}

// The same from the tile's D in memory (8-byte aligned).
template <ElementType E, int kBlockM>
__device__ __forceinline__ void ScoreGradsT(const float (&p)[kBlockM / 2], float (&dp)[kBlockM / 2],
                                            const float* delta, uint32_t (&p16)[kBlockM / 16][4],
                                            uint32_t (&ds16)[kBlockM / 16][4]) {
  float2 pairs[kBlockM / 8];
  LoadQueryPairs<kBlockM>(delta, pairs);
  ScoreGradsT<E, kBlockM>(p, dp, pairs, p16, ds16);
}

// dS^T into shared memory in the 128-byte-swizzle layout (column blocks of
// 64 queries kBlockN rows apart; a row of 128 bytes per key, one 16-byte
// chunk per n8 block), the A operand of dQ = dS K: the thread's kCols
// query columns, from chunk first_chunk (8 queries a chunk) of the tile.
template <int kBlockN, int kCols>
__device__ __forceinline__ void StoreScoreGradsT(uint32_t s_ds, int key0,
                                                 const uint32_t (&ds16)[kCols / 16][4],
                                                 int first_chunk = 0) {
  static_assert(kCols % 16 == 0, "whole k16 steps");
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int kk = 0; kk < kCols / 16; ++kk) {
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const int key = key0 + 8 * (r % 2), chunk = first_chunk + 2 * kk + r / 2;
      const uint32_t address = s_ds + (chunk / 8) * kBlockN * 128 + key * 128 +
                               (((chunk % 8) ^ (key % 8)) << 4) + (lane % 4) * 4;
      asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(address), "r"(ds16[kk][r]));
    }
  }
}

// Whether a kernel whose CTA owns its key rows stores its dK/dV rows
// instead of adding them: they hold zeros (key_grads_fresh) and no other
// CTA adds to them (no GQA).
__device__ __forceinline__ bool StoresKeyGrads(const BackwardBlockArgs& args) {
  return args.key_grads_fresh && args.task.num_heads == args.task.num_kv_heads;
}

// Zeros into `rows` rows (kv_stride floats apart, from kv_offset0) of dK
// and dV, the CTA's threads in turn: a key tile no query meets, in a
// launch that stores its rows (StoresKeyGrads), so that every row of the
// launch's range is written and the buffer needs no zeroing before it
// (FlashBackwardStoresEveryKeyRow). 8-byte stores: dK and dV are 8-byte
// aligned (FlashBackwardSupports).
template <int kHeadDim>
__device__ __forceinline__ void ZeroKeyGradRows(const BackwardBlockArgs& args, int64_t kv_offset0,
                                                int64_t kv_stride, int rows) {
  constexpr int kPairs = kHeadDim / 2;
  for (int i = threadIdx.x; i < rows * kPairs; i += blockDim.x) {
    const int64_t at = kv_offset0 + (i / kPairs) * kv_stride + 2 * (i % kPairs);
    *reinterpret_cast<float2*>(args.dk + at) = make_float2(0.f, 0.f);
    *reinterpret_cast<float2*>(args.dv + at) = make_float2(0.f, 0.f);
  }
}

// dK (scaled) and dV of the thread's keys (key0, key0 + 8 of the tile at
// kv_offset0, k_valid keys) into the travelling fp32 buffers: with
// reductions when kReduce or other CTAs add to the same rows (GQA), else
// plain read-modify-write; stored where kStore and StoresKeyGrads.
template <int kHeadDim, bool kReduce = false, bool kStore = false>
__device__ __forceinline__ void AddKeyGrads(const BackwardBlockArgs& args,
                                            const float (&dk)[kHeadDim / 2],
                                            const float (&dv)[kHeadDim / 2], int64_t kv_offset0,
                                            int64_t kv_stride, int key0, int k_valid) {
  const ForwardBlockArgs& a = args.task;
  const RowUpdate update = kStore && StoresKeyGrads(args)             ? RowUpdate::kStore
                           : kReduce || a.num_heads != a.num_kv_heads ? RowUpdate::kReduce
                                                                      : RowUpdate::kReadModifyWrite;
  AddAccumulatorRows<kHeadDim>(args.dk + kv_offset0, kv_stride, dk, key0, k_valid, a.softmax_scale,
                               update);
  AddAccumulatorRows<kHeadDim, false>(args.dv + kv_offset0, kv_stride, dv, key0, k_valid, 1.f,
                                      update);
}

}  // namespace ringattn::cuda::flash

#endif  // RINGATTN_CUDA_FLASH_BACKWARD_HOPPER_COMMON_CUH_
