// Positions and masks of a block task on the device, shared by the
// tensor-core kernels: the global position of a local row (PositionRun's
// formula), whether a (query, key) pair is allowed, and the contiguous range
// of tiles that are not fully masked (positions increase with the row, so
// every bound of the mask cuts the tiles in one place).
#ifndef RINGATTN_CUDA_FLASH_BLOCK_MASK_CUH_
#define RINGATTN_CUDA_FLASH_BLOCK_MASK_CUH_

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/kernel_args.h"

// Loop pragmas for the functions here that host code compiles too (the
// CPU test, nvcc's host pass): nvcc's `#pragma unroll` / `#pragma unroll 1`
// in the device pass, nothing for the host compiler (which warns about a
// pragma it does not know).
#ifdef __CUDA_ARCH__
#define RINGATTN_UNROLL _Pragma("unroll")
#define RINGATTN_NO_UNROLL _Pragma("unroll 1")
#else
#define RINGATTN_UNROLL
#define RINGATTN_NO_UNROLL
#endif

namespace ringattn::cuda::flash {

// CUDA's integer min and max on the device; the same on the host (tests).
__host__ __device__ __forceinline__ int64_t min64(int64_t x, int64_t y) {
#ifdef __CUDA_ARCH__
  return min(x, y);
#else
  return x < y ? x : y;
#endif
}
__host__ __device__ __forceinline__ int64_t max64(int64_t x, int64_t y) {
#ifdef __CUDA_ARCH__
  return max(x, y);
#else
  return x > y ? x : y;
#endif
}

__host__ __device__ __forceinline__ int64_t PositionAt(const DeviceRun& r, int64_t i) {
  if (r.group >= r.length) return r.base + i * r.stride;  // affine: no division
  return r.base + (i / r.group) * r.group_stride + (i % r.group) * r.stride;
}

// The mask of one task for one batch row.
struct TaskMask {
  int64_t min_delta, max_delta, key_limit, doc_begin, doc_end;

  static __host__ __device__ __forceinline__ TaskMask Of(const ForwardBlockArgs& a, int64_t b) {
    return {a.min_delta, a.max_delta, a.key_limit != nullptr ? a.key_limit[b] : INT64_MAX,
            a.doc_begin, a.doc_end};
  }
  __host__ __device__ __forceinline__ bool Allowed(int64_t q, int64_t k) const {
    const int64_t d = k - q;
    return d >= min_delta && d <= max_delta && k < key_limit && k >= doc_begin && k < doc_end;
  }
  // Every pair of queries in [q_lo, q_hi] and keys in [k_lo, k_hi] allowed.
  __host__ __device__ __forceinline__ bool AllAllowed(int64_t q_lo, int64_t q_hi, int64_t k_lo,
                                                      int64_t k_hi) const {
    return k_lo - q_hi >= min_delta && k_hi - q_lo <= max_delta && k_hi < key_limit &&
           k_lo >= doc_begin && k_hi < doc_end;
  }
  // Keys a query in [q_lo, q_hi] may see lie in [KeyLow(q_lo), KeyHigh(q_hi)].
  __host__ __device__ __forceinline__ int64_t KeyLow(int64_t q_lo) const {
    return max64(q_lo + min_delta, doc_begin);
  }
  __host__ __device__ __forceinline__ int64_t KeyHigh(int64_t q_hi) const {
    return min64(min64(q_hi + max_delta, key_limit - 1), doc_end - 1);
  }
  // Queries a key in [k_lo, k_hi] may be seen by: [QueryLow, QueryHigh]
  // (empty when the keys are all outside the document or the padding).
  __host__ __device__ __forceinline__ int64_t QueryLow(int64_t k_lo) const {
    return k_lo - max_delta;
  }
  __host__ __device__ __forceinline__ int64_t QueryHigh(int64_t k_lo, int64_t k_hi) const {
    if (k_lo >= key_limit || k_lo >= doc_end || k_hi < doc_begin) {
      return INT64_MIN;
    }
    return k_hi - min_delta;
  }
};

// Whether every (query, key) pair of a task is allowed (no key limit; the
// delta bounds and the document hold for its first and last positions,
// which bound the others): none of its tiles needs a mask.
inline bool EveryPairAllowed(const ForwardBlockArgs& a) {
  if (a.key_limit != nullptr || a.q_pos.length <= 0 || a.k_pos.length <= 0) return false;
  const TaskMask mask{a.min_delta, a.max_delta, INT64_MAX, a.doc_begin, a.doc_end};
  return mask.AllAllowed(PositionAt(a.q_pos, 0), PositionAt(a.q_pos, a.q_pos.length - 1),
                         PositionAt(a.k_pos, 0), PositionAt(a.k_pos, a.k_pos.length - 1));
}

// The first index in [a, z) at which `reached(index)` holds, by binary
// search: false before some index, true from it on (z when never).
template <typename Reached>
__host__ __device__ __forceinline__ int FirstReached(int a, int z, const Reached& reached) {
  while (a < z) {
    const int mid = (a + z) / 2;
    if (reached(mid))
      z = mid;
    else
      a = mid + 1;
  }
  return a;
}

// Tiles of `tile` rows over a run: [first position, last position] of tile t.
struct RunTiles {
  DeviceRun run;
  int tile;
  __host__ __device__ __forceinline__ int Count() const {
    return static_cast<int>((run.length + tile - 1) / tile);
  }
  __host__ __device__ __forceinline__ int64_t First(int t) const {
    return PositionAt(run, static_cast<int64_t>(t) * tile);
  }
  __host__ __device__ __forceinline__ int64_t Last(int t) const {
    return PositionAt(run, min64(run.length, static_cast<int64_t>(t + 1) * tile) - 1);
  }
  __host__ __device__ __forceinline__ bool Full(int t) const {
    return static_cast<int64_t>(t + 1) * tile <= run.length;
  }
  // The tiles [begin, end) that hold a position in [lo, hi].
  __host__ __device__ __forceinline__ void Range(int64_t lo, int64_t hi, int* begin,
                                                 int* end) const {
    *begin = FirstReached(0, Count(), [&](int t) { return Last(t) >= lo; });
    *end = FirstReached(*begin, Count(), [&](int t) { return First(t) > hi; });
  }
};

// The indices [*begin, *end) among `count` consecutive indices of `run`
// from `first` whose positions lie in [lo, hi] (one range: positions grow
// with the index; empty: begin == end). Consecutive positions (every
// layout's blocks but stripe's and the grouped runs) in closed form; others
// by two rolled binary searches (unrolled 64-bit position math over a tile
// overflowed the instruction cache). hi may be INT64_MIN (nothing allowed).
__host__ __device__ __forceinline__ void IndicesWithin(const DeviceRun& run, int64_t first,
                                                       int count, int64_t lo, int64_t hi,
                                                       int* begin, int* end) {
  if (count <= 0) {
    *begin = *end = 0;
    return;
  }
  if (run.stride == 1 && run.group >= run.length) {
    const int64_t p0 = run.base + first;  // position of index `first`
    const int b = lo <= p0 ? 0 : static_cast<int>(min64(lo - p0, count));
    const int e = hi < p0 ? 0 : static_cast<int>(min64(hi - p0 + 1, count));
    *begin = b;
    *end = e > b ? e : b;
    return;
  }
  int a = 0, z = count;  // first index whose position >= lo
  RINGATTN_NO_UNROLL
  while (a < z) {
    const int mid = (a + z) / 2;
    if (PositionAt(run, first + mid) >= lo)
      z = mid;
    else
      a = mid + 1;
  }
  *begin = a;
  z = count;  // first index at or after it whose position > hi
  RINGATTN_NO_UNROLL
  while (a < z) {
    const int mid = (a + z) / 2;
    if (PositionAt(run, first + mid) > hi)
      z = mid;
    else
      a = mid + 1;
  }
  *end = a;
}

// The bits of a fragment's elements whose columns lie in their key's range,
// as the backwards' AllowedBitsT keeps them: bit 4 j + 2 s + e (j < kMB;
// s, e in {0, 1}) stands for the column 8 j + e (relative to the lane's
// first) of key s, set when begin[s] <= 8 j + e < end[s]. In closed form:
// for one (s, e) the allowed j are consecutive, every fourth bit from
// 2 s + e; ranges reaching past the fragment are clipped.
template <typename Bits>
__host__ __device__ constexpr Bits BitsBelow(int bit) {
  return bit >= static_cast<int>(8 * sizeof(Bits)) ? ~Bits{0} : (Bits{1} << bit) - 1;
}
template <typename Bits, int kMB>
__host__ __device__ constexpr Bits EveryFourthBit() {
  Bits bits = 0;
  for (int j = 0; j < kMB; ++j) bits |= Bits{1} << (4 * j);
  return bits;
}
// The first j with 8 j >= column, within [0, kMB].
template <int kMB>
__host__ __device__ __forceinline__ int FirstBlockFrom(int column) {
  return (column < 0 ? 0 : column > 8 * kMB ? 8 * kMB : column + 7) / 8;
}
template <typename Bits, int kMB>
__host__ __device__ __forceinline__ Bits ColumnRangeBits(const int (&begin)[2],
                                                         const int (&end)[2]) {
  static_assert(4 * kMB <= 8 * sizeof(Bits), "one bit per element");
  constexpr Bits kEveryFourth = EveryFourthBit<Bits, kMB>();
  Bits bits = 0;
  RINGATTN_UNROLL
  for (int s = 0; s < 2; ++s) {
    RINGATTN_UNROLL
    for (int e = 0; e < 2; ++e) {
      // j in [lo, hi): begin <= 8 j + e < end (empty when hi <= lo).
      const int lo = FirstBlockFrom<kMB>(begin[s] - e), hi = FirstBlockFrom<kMB>(end[s] - e);
      bits |= (BitsBelow<Bits>(4 * hi) & ~BitsBelow<Bits>(4 * lo) & kEveryFourth) << (2 * s + e);
    }
  }
  return bits;
}

#ifdef __CUDACC__  // (the host-side test reads the ranges alone)
// The backward's S^T fragments: the query columns of a query tile (from task
// row q_first) that the thread's keys key0 and key0 + 8 of a key tile (from
// task key k0, k_valid keys) may be seen by, one range each
// (IndicesWithin; a key past the tile sees none), relative to the lane's
// first column (lane % 4) * 2, so that callers compare compile-time offsets.
__device__ __forceinline__ void KeyQueryColumns(const ForwardBlockArgs& a, int64_t b, int key0,
                                                int k_valid, int64_t k0, int64_t q_first,
                                                int block_m, int (&begin)[2], int (&end)[2]) {
  const TaskMask mask = TaskMask::Of(a, b);
  const int q_valid = static_cast<int>(min64(block_m, a.q_pos.length - q_first));
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int key = key0 + 8 * half;
    begin[half] = end[half] = 0;
    if (key < k_valid) {
      const int64_t kp = PositionAt(a.k_pos, k0 + key);
      IndicesWithin(a.q_pos, q_first, q_valid, mask.QueryLow(kp), mask.QueryHigh(kp, kp),
                    &begin[half], &end[half]);
    }
    begin[half] -= (lane % 4) * 2;
    end[half] -= (lane % 4) * 2;
  }
}
#endif  // __CUDACC__

// The whole tiles [begin, end) of `tiles` whose rows all lie in [lo, hi()]:
// from the first with First >= lo to the first after it with Last > hi(),
// a partial last tile left out. (hi is asked for after the first search, so
// that it is not held through it.)
template <typename High>
__host__ __device__ __forceinline__ void WholeTilesWithin(const RunTiles& tiles, int64_t lo,
                                                          const High& high, int* begin, int* end) {
  const int count = tiles.Count();
  *begin = FirstReached(0, count, [&](int t) { return tiles.First(t) >= lo; });
  const int64_t hi = high();
  *end = FirstReached(*begin, count, [&](int t) { return tiles.Last(t) > hi; });
  if (*end == count && count > 0 && !tiles.Full(count - 1)) *end = count - 1;
  if (*end < *begin) *end = *begin;
}

// The tiles [begin, end) of `tiles` whose every key is allowed for every
// query in [q_lo, q_hi] (a contiguous range: each condition of AllAllowed
// holds from some tile on, or up to some tile).
__host__ __device__ __forceinline__ void FullTileRange(const TaskMask& mask, const RunTiles& tiles,
                                                       int64_t q_lo, int64_t q_hi, int* begin,
                                                       int* end) {
  // Tiles from the first with First >= max(q_hi + min_delta, doc_begin) to
  // the first with Last > min(q_lo + max_delta, key_limit - 1, doc_end - 1).
  WholeTilesWithin(
      tiles, max64(q_hi + mask.min_delta, mask.doc_begin),
      [&] { return min64(min64(q_lo + mask.max_delta, mask.key_limit - 1), mask.doc_end - 1); },
      begin, end);
}

// The query tiles [begin, end) of `tiles` all of whose queries may see every
// key in [k_lo, k_hi] (the backward's transposed FullTileRange).
__host__ __device__ __forceinline__ void FullQueryTileRange(const TaskMask& mask,
                                                            const RunTiles& tiles, int64_t k_lo,
                                                            int64_t k_hi, int* begin, int* end) {
  *begin = *end = 0;
  if (!(k_hi < mask.key_limit && k_lo >= mask.doc_begin && k_hi < mask.doc_end)) return;
  // Tiles from the first with First >= k_hi - max_delta to the first with
  // Last > k_lo - min_delta.
  WholeTilesWithin(
      tiles, k_hi - mask.max_delta, [&] { return k_lo - mask.min_delta; }, begin, end);
}

// The key tiles of a CTA's query tile m_tile: [n_begin, n_end) hold an
// allowed pair; [full_begin, full_end) hold only allowed pairs and skip the
// element mask.
struct KeyTileRange {
  int n_begin, n_end, full_begin, full_end;
  KeyTileRange() = default;
  __host__ __device__ __forceinline__ KeyTileRange(const ForwardBlockArgs& a, int64_t b, int m_tile,
                                                   int block_m, int block_n) {
    const TaskMask mask = TaskMask::Of(a, b);
    const RunTiles q_tiles{a.q_pos, block_m};
    const RunTiles k_tiles{a.k_pos, block_n};
    const int64_t q_lo = q_tiles.First(m_tile), q_hi = q_tiles.Last(m_tile);
    k_tiles.Range(mask.KeyLow(q_lo), mask.KeyHigh(q_hi), &n_begin, &n_end);
    FullTileRange(mask, k_tiles, q_lo, q_hi, &full_begin, &full_end);
  }
  __host__ __device__ __forceinline__ bool NeedsMask(int n) const {
    return n < full_begin || n >= full_end;
  }
  // Whether every key of tile n meets every row's lower bounds (the window's
  // and the document's start): full_begin is the first tile whose first key
  // does for the tile's last query (WholeTilesWithin's begin, whatever its
  // end), and keys and those bounds only grow. A masked tile from there on
  // (a causal diagonal) is cut by its rows' upper bounds alone.
  __host__ __device__ __forceinline__ bool LowerBoundFree(int n) const { return n >= full_begin; }
};

// The query tiles (of kBlockM rows) key tile n_tile (of kBlockN keys)
// meets in batch row b: [m_begin, m_end) hold an allowed pair,
// [full_begin, full_end) only allowed pairs (empty when the key tile is
// not whole).
struct KeyTileQueries {
  int m_begin, m_end, full_begin, full_end;
  __host__ __device__ __forceinline__ KeyTileQueries(const ForwardBlockArgs& a, int64_t b,
                                                     int n_tile, int block_m, int block_n) {
    const TaskMask mask = TaskMask::Of(a, b);
    const RunTiles q_tiles{a.q_pos, block_m};
    const RunTiles k_tiles{a.k_pos, block_n};
    const int64_t k_lo = k_tiles.First(n_tile), k_hi = k_tiles.Last(n_tile);
    q_tiles.Range(mask.QueryLow(k_lo), mask.QueryHigh(k_lo, k_hi), &m_begin, &m_end);
    FullQueryTileRange(mask, q_tiles, k_lo, k_hi, &full_begin, &full_end);
    if (!k_tiles.Full(n_tile)) full_begin = full_end = 0;
  }
  __host__ __device__ __forceinline__ bool NeedsMask(int m) const {
    return m < full_begin || m >= full_end;
  }
};

}  // namespace ringattn::cuda::flash

#endif  // RINGATTN_CUDA_FLASH_BLOCK_MASK_CUH_
