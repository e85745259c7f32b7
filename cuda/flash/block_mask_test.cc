// The tensor-core kernels' mask ranges on the host (block_mask.cuh), against
// testing every pair: over random position runs (consecutive, strided,
// grouped) and masks (causal shifted, sliding windows, documents, key
// limits), the columns a query sees and the queries a key is seen by are the
// one range IndicesWithin gives (its closed form and its binary searches),
// and the key tiles of a query tile (KeyTileRange) and the query tiles of a
// key tile (KeyTileQueries) hold every allowed pair, are tight (for
// consecutive positions), and mark as needing no element mask only tiles
// whose pairs are all allowed; EveryPairAllowed is every pair. The GPU
// tests check the kernels that use them; this checks the ranges alone.
#include "cuda/flash/block_mask.cuh"

#include <algorithm>
#include <cstdint>
#include <random>

#include "gtest/gtest.h"

namespace ringattn::cuda::flash {
namespace {

constexpr int64_t kFar = int64_t{1} << 60;

struct Rng {
  std::mt19937 gen;
  int64_t operator()(int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(gen);
  }
};

// A run of `length` increasing positions: consecutive, strided or grouped.
DeviceRun RandomRun(Rng& rng, int64_t length) {
  switch (rng(0, 2)) {
    case 0:
      return {rng(0, 200), length, 1, length, length};
    case 1: {
      const int64_t stride = rng(2, 4);
      return {rng(0, 3), length, stride, length, stride * length};
    }
    default: {
      const int64_t g = rng(2, 16), w = rng(2, 4);
      return {rng(0, 2 * g), length, 1, g, g * w};
    }
  }
}

TaskMask RandomMask(Rng& rng, int64_t span) {
  TaskMask m{-kFar, kFar, INT64_MAX, 0, kFar};
  switch (rng(0, 4)) {
    case 0:
      break;  // none
    case 1:
      m.max_delta = rng(-5, 5);  // causal, shifted
      break;
    case 2:
      m.max_delta = rng(0, 40);  // sliding window
      m.min_delta = m.max_delta - rng(0, 150);
      break;
    case 3:
      m.max_delta = 0;  // causal within a document
      m.doc_begin = rng(0, span / 2);
      m.doc_end = m.doc_begin + rng(0, span);
      break;
    default:
      m.max_delta = 0;  // causal with a key limit (padding)
      m.key_limit = rng(0, span);
  }
  return m;
}

// Random tasks: the two runs and the mask (as a ForwardBlockArgs, which the
// tile ranges take), and the same mask as TaskMask.
struct Task {
  ForwardBlockArgs args;
  TaskMask mask;
  int64_t key_limit;
};
Task RandomTask(Rng& rng) {
  Task t;
  t.args.q_pos = RandomRun(rng, rng(1, 400));
  t.args.k_pos = RandomRun(rng, rng(1, 400));
  const int64_t span = std::max(PositionAt(t.args.q_pos, t.args.q_pos.length - 1),
                                PositionAt(t.args.k_pos, t.args.k_pos.length - 1)) +
                       1;
  t.mask = RandomMask(rng, span);
  t.args.min_delta = t.mask.min_delta;
  t.args.max_delta = t.mask.max_delta;
  t.args.doc_begin = t.mask.doc_begin;
  t.args.doc_end = t.mask.doc_end;
  t.key_limit = t.mask.key_limit;
  t.args.key_limit = t.key_limit == INT64_MAX ? nullptr : &t.key_limit;
  return t;
}

// EveryPairAllowed (the forward's tile order takes smaller sections for
// such tasks) is true exactly
// when the task has no key limit and every (query, key) pair is allowed;
// then every query tile meets every key tile.
TEST(BlockMaskTest, EveryPairAllowedIsEveryPairAllowed) {
  Rng rng{std::mt19937(41)};
  int unmasked = 0;
  for (int i = 0; i < 2000; ++i) {
    const Task t = RandomTask(rng);
    const ForwardBlockArgs& a = t.args;
    bool all = a.key_limit == nullptr;
    for (int64_t qi = 0; all && qi < a.q_pos.length; ++qi) {
      for (int64_t ki = 0; all && ki < a.k_pos.length; ++ki) {
        all = t.mask.Allowed(PositionAt(a.q_pos, qi), PositionAt(a.k_pos, ki));
      }
    }
    EXPECT_EQ(EveryPairAllowed(a), all) << "task " << i;
    unmasked += all;
    if (!all) continue;
    const int n_tiles = static_cast<int>((a.k_pos.length + 15) / 16);
    for (int64_t b = 0; b < a.batch; ++b) {
      for (int m = 0; m * 16 < a.q_pos.length; ++m) {
        const KeyTileRange keys(a, b, m, 16, 16);
        ASSERT_EQ(keys.n_begin, 0) << "task " << i << " tile " << m;
        ASSERT_EQ(keys.n_end, n_tiles) << "task " << i << " tile " << m;
      }
    }
  }
  EXPECT_GT(unmasked, 100);  // the unmasked tasks are there to be found
}

TEST(BlockMaskTest, IndicesWithinIsEveryIndexInTheRange) {
  Rng rng{std::mt19937(11)};
  for (int trial = 0; trial < 20000; ++trial) {
    const DeviceRun run = RandomRun(rng, rng(1, 300));
    const int64_t first = rng(0, run.length - 1);
    const int count = static_cast<int>(std::min<int64_t>(rng(0, 130), run.length - first));
    const int64_t top = PositionAt(run, run.length - 1);
    int64_t lo = rng(-20, top + 20), hi = rng(-20, top + 20);
    if (trial % 7 == 0) hi = INT64_MIN;  // QueryHigh of a key outside the documents
    if (trial % 11 == 0) lo = -kFar;
    if (trial % 13 == 0) hi = kFar;
    int begin = -1, end = -1;
    IndicesWithin(run, first, count, lo, hi, &begin, &end);
    SCOPED_TRACE(::testing::Message()
                 << "run {" << run.base << ", " << run.length << ", " << run.stride << ", "
                 << run.group << ", " << run.group_stride << "} first " << first << " count "
                 << count << " [" << lo << ", " << hi << "]");
    ASSERT_LE(0, begin);
    ASSERT_LE(begin, end);
    ASSERT_LE(end, std::max(count, 0));
    for (int i = 0; i < count; ++i) {
      const int64_t p = PositionAt(run, first + i);
      ASSERT_EQ(p >= lo && p <= hi, i >= begin && i < end) << "index " << i << " position " << p;
    }
  }
}

// ColumnRangeBits against the element-by-element rule it replaces (bit
// 4 j + 2 s + e set when begin[s] <= 8 j + e < end[s]), for the fragments
// of 64-query (32 bits) and 128-query (64 bits) tiles, over ranges that
// start and end before, inside and past the fragment, empty and reversed.
template <typename Bits, int kMB>
void ExpectColumnRangeBitsAreTheElementRule() {
  const auto by_element = [](const int(&begin)[2], const int(&end)[2]) {
    Bits bits = 0;
    for (int bit = 0; bit < 4 * kMB; ++bit) {
      const int column = (bit / 4) * 8 + bit % 2, s = (bit / 2) % 2;
      if (column >= begin[s] && column < end[s]) bits |= Bits{1} << bit;
    }
    return bits;
  };
  Rng rng{std::mt19937(53)};
  int checked = 0;
  for (int lo = -12; lo <= 8 * kMB + 12; ++lo) {
    for (int hi = -12; hi <= 8 * kMB + 12; ++hi) {
      for (int s = 0; s < 2; ++s) {
        int begin[2], end[2];
        begin[s] = lo;
        end[s] = hi;
        begin[1 - s] = static_cast<int>(rng(-12, 8 * kMB + 12));
        end[1 - s] = static_cast<int>(rng(-12, 8 * kMB + 12));
        ASSERT_EQ((ColumnRangeBits<Bits, kMB>(begin, end)), by_element(begin, end))
            << "key 0 [" << begin[0] << ", " << end[0] << "), key 8 [" << begin[1] << ", " << end[1]
            << ")";
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 1000);
}

TEST(BlockMaskTest, ColumnRangeBitsAreTheElementsInTheRanges) {
  ExpectColumnRangeBitsAreTheElementRule<uint32_t, 8>();
  ExpectColumnRangeBitsAreTheElementRule<uint64_t, 16>();
}

TEST(BlockMaskTest, RowAndKeyRangesAreTheAllowedPairs) {
  // What the kernels' element masks use: a query's keys in a key tile
  // (forward) and a key's queries in a query tile (backward).
  Rng rng{std::mt19937(12)};
  for (int trial = 0; trial < 3000; ++trial) {
    const Task t = RandomTask(rng);
    const DeviceRun &q = t.args.q_pos, &k = t.args.k_pos;
    const int64_t i = rng(0, q.length - 1), j = rng(0, k.length - 1);
    const int64_t qp = PositionAt(q, i), kp = PositionAt(k, j);
    const int64_t k_first = rng(0, k.length - 1), q_first = rng(0, q.length - 1);
    const int k_count = static_cast<int>(std::min<int64_t>(128, k.length - k_first));
    const int q_count = static_cast<int>(std::min<int64_t>(128, q.length - q_first));
    int kb, ke, qb, qe;
    IndicesWithin(k, k_first, k_count, t.mask.KeyLow(qp), t.mask.KeyHigh(qp), &kb, &ke);
    IndicesWithin(q, q_first, q_count, t.mask.QueryLow(kp), t.mask.QueryHigh(kp, kp), &qb, &qe);
    for (int c = 0; c < k_count; ++c) {
      ASSERT_EQ(t.mask.Allowed(qp, PositionAt(k, k_first + c)), c >= kb && c < ke)
          << "trial " << trial << ": query " << qp << ", key column " << c;
    }
    for (int r = 0; r < q_count; ++r) {
      ASSERT_EQ(t.mask.Allowed(PositionAt(q, q_first + r), kp), r >= qb && r < qe)
          << "trial " << trial << ": key " << kp << ", query row " << r;
    }
  }
}

// Whether query tile m and key tile n hold an allowed pair, and only allowed pairs.
struct TilePairs {
  bool any = false, all = true;
};
TilePairs Pairs(const Task& t, int block_m, int block_n, int m, int n) {
  TilePairs p;
  const DeviceRun &q = t.args.q_pos, &k = t.args.k_pos;
  for (int64_t i = int64_t{m} * block_m;
       i < std::min<int64_t>((m + 1) * int64_t{block_m}, q.length); ++i) {
    for (int64_t j = int64_t{n} * block_n;
         j < std::min<int64_t>((n + 1) * int64_t{block_n}, k.length); ++j) {
      const bool ok = t.mask.Allowed(PositionAt(q, i), PositionAt(k, j));
      p.any |= ok;
      p.all &= ok;
    }
  }
  return p;
}

// One tile's range [begin, end) of the other side's `count` tiles, against
// every pair (`pairs_with(i)`: of this tile and tile i): tiles outside hold
// no allowed pair; tiles inside that skip the element mask hold only
// allowed pairs and whole key tiles (`whole_keys(i)`: a key tile past the
// task's end needs the mask for its missing keys); with `tight`, the first
// and last tiles inside hold a pair.
template <typename NeedsMask, typename PairsWith, typename WholeKeys>
void CheckTileRange(int count, int begin, int end, bool tight, NeedsMask needs_mask,
                    PairsWith pairs_with, WholeKeys whole_keys) {
  for (int i = 0; i < count; ++i) {
    const TilePairs p = pairs_with(i);
    const bool inside = i >= begin && i < end;
    ASSERT_TRUE(inside || !p.any) << "tile " << i << " left out";
    if (inside && !needs_mask(i)) {
      ASSERT_TRUE(p.all) << "tile " << i << " unmasked";
      ASSERT_TRUE(whole_keys(i)) << "tile " << i << ": partial key tile unmasked";
    }
  }
  if (tight && begin < end) {
    ASSERT_TRUE(pairs_with(begin).any) << "first tile " << begin;
    ASSERT_TRUE(pairs_with(end - 1).any) << "last tile " << end - 1;
  }
}

TEST(BlockMaskTest, TileRangesHoldEveryAllowedPairAndSkipOnlyWholeAllowedTiles) {
  Rng rng{std::mt19937(13)};
  for (int trial = 0; trial < 400; ++trial) {
    const Task t = RandomTask(rng);
    const int block_m = rng(0, 1) ? 64 : 128, block_n = rng(0, 1) ? 64 : 128;
    const RunTiles q_tiles{t.args.q_pos, block_m}, k_tiles{t.args.k_pos, block_n};
    // Ranges are tight where positions are consecutive; with gaps between
    // positions, an end tile may hold keys only between allowed ones.
    const auto consecutive_run = [](const DeviceRun& r) {
      return r.stride == 1 && r.group >= r.length;
    };
    const bool consecutive = consecutive_run(t.args.q_pos) && consecutive_run(t.args.k_pos);
    SCOPED_TRACE(::testing::Message()
                 << "trial " << trial << " tiles " << block_m << " x " << block_n);
    for (int m = 0; m < q_tiles.Count(); ++m) {
      SCOPED_TRACE(::testing::Message() << "query tile " << m << ", key tiles");
      const KeyTileRange keys(t.args, 0, m, block_m, block_n);
      ASSERT_NO_FATAL_FAILURE(CheckTileRange(
          k_tiles.Count(), keys.n_begin, keys.n_end, consecutive,
          [&](int n) { return keys.NeedsMask(n); },
          [&](int n) { return Pairs(t, block_m, block_n, m, n); },
          [&](int n) { return k_tiles.Full(n); }));
    }
    for (int n = 0; n < k_tiles.Count(); ++n) {
      SCOPED_TRACE(::testing::Message() << "key tile " << n << ", query tiles");
      const KeyTileQueries queries(t.args, 0, n, block_m, block_n);
      ASSERT_NO_FATAL_FAILURE(CheckTileRange(
          q_tiles.Count(), queries.m_begin, queries.m_end, consecutive,
          [&](int m) { return queries.NeedsMask(m); },
          [&](int m) { return Pairs(t, block_m, block_n, m, n); },
          [&](int) { return k_tiles.Full(n); }));
    }
  }
}

// The forward's upper-bound-only mask: in a key tile LowerBoundFree names,
// every row of the query tile sees its keys from the tile's first on, so
// `column < end` alone is the row's mask (checked against every pair).
TEST(BlockMaskTest, LowerBoundFreeTilesNeedOnlyTheUpperBound) {
  Rng rng{std::mt19937(14)};
  int checked = 0, cut_below = 0;
  for (int trial = 0; trial < 400; ++trial) {
    const Task t = RandomTask(rng);
    const int block_m = rng(0, 1) ? 64 : 128, block_n = rng(0, 1) ? 64 : 128;
    const DeviceRun &q = t.args.q_pos, &k = t.args.k_pos;
    const RunTiles q_tiles{q, block_m};
    SCOPED_TRACE(::testing::Message()
                 << "trial " << trial << " tiles " << block_m << " x " << block_n);
    for (int m = 0; m < q_tiles.Count(); ++m) {
      const KeyTileRange keys(t.args, 0, m, block_m, block_n);
      for (int n = keys.n_begin; n < keys.n_end; ++n) {
        if (!keys.NeedsMask(n)) continue;
        const int64_t k_first = int64_t{n} * block_n;
        const int count = static_cast<int>(std::min<int64_t>(block_n, k.length - k_first));
        for (int64_t i = int64_t{m} * block_m;
             i < std::min<int64_t>((m + 1) * int64_t{block_m}, q.length); ++i) {
          const int64_t qp = PositionAt(q, i);
          int begin, end;
          IndicesWithin(k, k_first, count, t.mask.KeyLow(qp), t.mask.KeyHigh(qp), &begin, &end);
          if (!keys.LowerBoundFree(n)) {
            cut_below += begin > 0;
            continue;
          }
          ASSERT_EQ(begin, 0) << "query tile " << m << ", key tile " << n << ", row " << i;
          for (int c = 0; c < count; ++c) {
            ASSERT_EQ(t.mask.Allowed(qp, PositionAt(k, k_first + c)), c < end)
                << "query tile " << m << ", key tile " << n << ", row " << i << ", column " << c;
          }
          ++checked;
        }
      }
    }
  }
  EXPECT_GT(checked, 10000);  // causal diagonals, padding and document ends
  EXPECT_GT(cut_below, 100);  // windows and document starts keep both bounds
}

}  // namespace
}  // namespace ringattn::cuda::flash
