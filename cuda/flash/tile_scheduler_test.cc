// The tile orders on the host (tile_scheduler.cuh). The forward's persistent one:
// every (query tile, head, batch) tile exactly once, sections of whole
// (head, batch) pairs run one after another, heaviest query tiles first
// inside each, for sections that divide the pairs, sections that leave a
// short last one, and a longer final section from each section boundary.
// The GPU tests' shapes all fit one section; this is the test of the
// others.
#include "cuda/flash/tile_scheduler.cuh"

#include <cstdint>
#include <set>
#include <tuple>

#include "gtest/gtest.h"

namespace ringattn::cuda::flash {
namespace {

void CheckOrder(const HeavyFirstTileScheduler& s) {
  SCOPED_TRACE(::testing::Message() << "m_tiles " << s.m_tiles << " heads " << s.heads << " batch "
                                    << s.batch << " section " << s.section);
  std::set<std::tuple<int, int64_t, int64_t>> seen;
  int previous_m = s.m_tiles;
  int64_t previous_section = 0;
  for (int64_t t = 0; t < s.Count(); ++t) {
    const QueryTile tile = s.At(t);
    ASSERT_GE(tile.m, 0);
    ASSERT_LT(tile.m, s.m_tiles);
    ASSERT_GE(tile.head, 0);
    ASSERT_LT(tile.head, s.heads);
    ASSERT_GE(tile.batch, 0);
    ASSERT_LT(tile.batch, s.batch);
    ASSERT_TRUE(seen.insert({tile.m, tile.head, tile.batch}).second) << "tile " << t << " again";
    const int64_t pair = tile.batch * s.heads + tile.head;
    const int64_t section =
        s.final_first >= 0 && pair >= s.final_first ? s.final_first / s.section : pair / s.section;
    ASSERT_GE(section, previous_section) << "sections run in order";
    if (section != previous_section) previous_m = s.m_tiles;
    ASSERT_LE(tile.m, previous_m) << "heaviest first inside a section (tile " << t << ")";
    previous_m = tile.m;
    previous_section = section;
  }
  EXPECT_EQ(static_cast<int64_t>(seen.size()), s.Count());
}

TEST(TileSchedulerTest, EveryTileOnceSectionBySectionHeaviestFirst) {
  for (int m_tiles : {1, 3, 8}) {
    for (int64_t heads : {1, 5, 32}) {
      for (int64_t batch : {1, 2, 3}) {
        const int64_t pairs = heads * batch;
        for (int64_t section : {int64_t{1}, int64_t{2}, int64_t{3}, int64_t{7}, pairs}) {
          if (section > pairs) continue;
          CheckOrder({m_tiles, heads, batch, section});
          // A final section from each section boundary on.
          for (int64_t first = 0; first < pairs; first += section) {
            CheckOrder({m_tiles, heads, batch, section, first});
          }
        }
      }
    }
  }
}

TEST(TileSchedulerTest, SectionsFitTheL2AndKeepEveryCtaBusy) {
  // Under a mask, one round of tiles per section, the final one longer.
  // s32768 d128 bf16 on an H200 (132 SMs, 25 MB budget): one kv head's
  // K/V is 16 MiB, one fits, and its 256 query tiles give every CTA one;
  // the final section: 2.5 x 132 / 257 -> 2 pairs.
  const int64_t kv = 2 * 32768 * 128 * 2;
  HeavyFirstTileScheduler s =
      HeavyFirstTileScheduler::Sections(256, 32, 1, 1, kv, 25 << 20, 132, false);
  EXPECT_EQ(s.section, 1);
  EXPECT_EQ(s.final_first, 30);
  // s8192, GQA groups of 4 query heads: six kv heads of 4 MiB fit, one
  // round is 132 / 64 -> 3 pairs -> one kv head (4); final: 330 / 65 -> 6
  // pairs -> two kv heads, from pair 24 on.
  s = HeavyFirstTileScheduler::Sections(64, 32, 1, 4, 2 * 8192 * 128 * 2, 25 << 20, 132, false);
  EXPECT_EQ(s.section, 4);
  EXPECT_EQ(s.final_first, 24);
  CheckOrder(s);
  // b16 s1024: 50 pairs of 512 KiB fit, one round is 132 / 8 -> 17; the
  // final section 330 / 9 -> 37 pairs or more: from pair 27 x 17 on (53).
  s = HeavyFirstTileScheduler::Sections(8, 32, 16, 1, 2 * 1024 * 128 * 2, 25 << 20, 132, false);
  EXPECT_EQ(s.section, 17);
  EXPECT_EQ(s.final_first, 459);
  CheckOrder(s);
  // Fewer pairs than the final section wants: one section.
  s = HeavyFirstTileScheduler::Sections(8, 4, 1, 1, 2 * 1024 * 128 * 2, 25 << 20, 132, false);
  EXPECT_EQ(s.final_first, 0);
  CheckOrder(s);
  // Without a mask: the fewest whole kv heads whose tiles cover the 132
  // CTAs: 64 query tiles each -> 3 pairs (the rule's 6 at 4 MiB per head);
  // GQA groups of 4 -> one kv head (4 pairs); never more than the rule.
  s = HeavyFirstTileScheduler::Sections(64, 32, 1, 1, 2 * 8192 * 128 * 2, 25 << 20, 132, true);
  EXPECT_EQ(s.section, 3);
  s = HeavyFirstTileScheduler::Sections(64, 32, 1, 4, 2 * 8192 * 128 * 2, 25 << 20, 132, true);
  EXPECT_EQ(s.section, 4);
  s = HeavyFirstTileScheduler::Sections(8, 32, 1, 1, 2 * 1024 * 128 * 2, 2 << 20, 132, true);
  EXPECT_EQ(s.section, 17);  // cover: 132 / 8 -> 17; the rule: max(4, 33) = 33
  s = HeavyFirstTileScheduler::Sections(1024, 32, 1, 1, 64 << 20, 25 << 20, 132, true);
  EXPECT_EQ(s.section, 1);
  // Budget 0: one section of every pair.
  s = HeavyFirstTileScheduler::Sections(8, 32, 16, 1, kv, 0, 132, false);
  EXPECT_EQ(s.section, 32 * 16);
  // Never more than the pairs there are.
  s = HeavyFirstTileScheduler::Sections(1, 2, 1, 1, 1024, 25 << 20, 132, true);
  EXPECT_EQ(s.section, 2);
  CheckOrder(s);
}

// The backwards' CTA order: every (key tile, head, batch) item once, pairs
// in sections of two (one where there is one pair), each section's items
// key tile 0 first (the heaviest under a causal mask), the grid one CTA per
// item.
TEST(TileSchedulerTest, KeyTileOrderTakesEveryItemOnceKeyTileZeroFirst) {
  for (int64_t keys : {1, 128, 300, 1024}) {
    for (int64_t heads : {1, 3, 32}) {
      for (int64_t batch : {1, 2}) {
        ForwardBlockArgs a;
        a.num_heads = heads;
        a.num_kv_heads = 1;
        a.kv_head_end = 1;
        a.batch = batch;
        a.k_pos.length = keys;
        const HeavyFirstTileScheduler order = KeyTileOrder(a, 128);
        SCOPED_TRACE(::testing::Message()
                     << "keys " << keys << " heads " << heads << " batch " << batch);
        const int tiles = static_cast<int>((keys + 127) / 128);
        EXPECT_EQ(order.section, heads * batch == 1 ? 1 : 2);
        EXPECT_EQ(OrderGrid(order).x, static_cast<unsigned>(tiles * heads * batch));
        std::set<std::tuple<int, int64_t, int64_t>> seen;
        int previous_tile = 0;
        int64_t previous_section = 0;
        for (int64_t t = 0; t < order.Count(); ++t) {
          const KeyTileItem item = KeyTileAt(order, t);
          ASSERT_GE(item.n_tile, 0);
          ASSERT_LT(item.n_tile, tiles);
          ASSERT_TRUE(seen.insert({item.n_tile, item.head, item.batch}).second) << "item " << t;
          const int64_t section = (item.batch * heads + item.head) / order.section;
          ASSERT_GE(section, previous_section) << "sections run in order";
          if (section != previous_section) previous_tile = 0;
          ASSERT_GE(item.n_tile, previous_tile)
              << "key tile 0 first in a section (item " << t << ")";
          if (t == 0 || section != previous_section) {
            EXPECT_EQ(item.n_tile, 0);
          }
          previous_tile = item.n_tile;
          previous_section = section;
        }
        EXPECT_EQ(static_cast<int64_t>(seen.size()), tiles * heads * batch);
      }
    }
  }
}

}  // namespace
}  // namespace ringattn::cuda::flash
