#include "core/layout.h"

#include <numeric>
#include <set>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace ringattn {
namespace {

using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

Layout Make(LayoutKind kind, int world, int64_t seqlen, int64_t stripe = 1,
            std::vector<int64_t> cu = {}, int ring_size = 0, int64_t batch = 1) {
  absl::StatusOr<Layout> layout =
      Layout::Create({.kind = kind, .world = world, .ring_size = ring_size, .stripe_width = stripe},
                     batch, seqlen, cu);
  EXPECT_TRUE(layout.ok()) << layout.status();
  return *layout;
}

TEST(LayoutTest, ZigzagHoldsChunksRAnd2WMinus1MinusR) {
  const Layout layout = Make(LayoutKind::kZigzag, 4, 16);
  EXPECT_THAT(*layout.PositionIds(1), ElementsAre(2, 3, 12, 13));
  EXPECT_THAT(*layout.PositionIds(3), ElementsAre(6, 7, 8, 9));
}

TEST(LayoutTest, StripeDealsStripesRoundRobin) {
  EXPECT_THAT(*Make(LayoutKind::kStripe, 3, 9).PositionIds(1), ElementsAre(1, 4, 7));
  EXPECT_THAT(*Make(LayoutKind::kStripe, 2, 12, 3).PositionIds(1), ElementsAre(3, 4, 5, 9, 10, 11));
}

TEST(LayoutTest, VarlenSplitsEveryDocument) {
  // Ring: each document split in W pieces.
  const Layout ring = Make(LayoutKind::kRing, 2, 10, 1, {0, 4, 10});
  EXPECT_THAT(*ring.PositionIds(0), ElementsAre(0, 1, 4, 5, 6));
  EXPECT_THAT(*ring.PositionIds(1), ElementsAre(2, 3, 7, 8, 9));
  // Zigzag: each document in 2W chunks.
  const Layout zigzag = Make(LayoutKind::kZigzag, 2, 12, 1, {0, 4, 12});
  EXPECT_THAT(*zigzag.PositionIds(0), ElementsAre(0, 3, 4, 5, 10, 11));
  // llama3: the packed sequence split contiguously.
  const Layout llama3 = Make(LayoutKind::kLlama3, 2, 6, 1, {0, 1, 6});
  EXPECT_THAT(*llama3.PositionIds(1), ElementsAre(3, 4, 5));
}

// Every layout maps each position to exactly one (rank, row), Locate agrees
// with PositionIds, and Shard/Unshard round-trip.
TEST(LayoutTest, BijectionAndRoundTrip) {
  const std::vector<Layout> layouts = {
      Make(LayoutKind::kRing, 4, 24),
      Make(LayoutKind::kZigzag, 3, 24),
      Make(LayoutKind::kStripe, 4, 24),
      Make(LayoutKind::kStripe, 2, 24, 4),
      Make(LayoutKind::kLlama3, 8, 24),
      Make(LayoutKind::kRing, 2, 24, 1, {0, 6, 6, 24}),
      Make(LayoutKind::kZigzag, 2, 24, 1, {0, 8, 24}),
      Make(LayoutKind::kLlama3, 4, 24, 1, {0, 5, 24}),
      Make(LayoutKind::kZigzag, 4, 24, 1, {}, 2, 2),
  };
  for (const Layout& layout : layouts) {
    SCOPED_TRACE(layout.DebugString());
    std::set<int64_t> seen;
    for (int rank = 0; rank < layout.ring_size(); ++rank) {
      const std::vector<int64_t> ids = *layout.PositionIds(rank);
      ASSERT_EQ(static_cast<int64_t>(ids.size()), layout.local_seqlen());
      for (int64_t row = 0; row < static_cast<int64_t>(ids.size()); ++row) {
        EXPECT_TRUE(seen.insert(ids[row]).second) << ids[row];
        const Layout::Location loc = *layout.Locate(ids[row]);
        EXPECT_EQ(loc.ring_rank, rank);
        EXPECT_EQ(loc.local_index, row);
      }
    }
    EXPECT_EQ(static_cast<int64_t>(seen.size()), layout.seqlen());
    const int64_t token = 3;
    std::vector<int> global(layout.batch() * layout.seqlen() * token);
    std::iota(global.begin(), global.end(), 0);
    const auto shards = *layout.Shard(absl::Span<const int>(global), token);
    ASSERT_EQ(static_cast<int>(shards.size()), layout.world());
    for (int rank = 0; rank < layout.world(); ++rank) {
      const int64_t b0 = layout.BatchRange(rank).first;
      const std::vector<int64_t> ids = *layout.PositionIds(rank);
      EXPECT_EQ(shards[rank][(ids.size() - 1) * token + 1],
                (b0 * layout.seqlen() + ids.back()) * token + 1);
    }
    EXPECT_EQ(*layout.Unshard(shards, token), global);
  }
}

TEST(LayoutTest, RingSizeSmallerThanWorldShardsTheBatch) {
  const Layout layout = Make(LayoutKind::kRing, 4, 8, 1, {}, 2, 4);
  EXPECT_EQ(layout.num_rings(), 2);
  EXPECT_EQ(layout.local_batch(), 2);
  EXPECT_EQ(layout.BatchRange(3), (std::pair<int64_t, int64_t>(2, 4)));
  EXPECT_EQ(layout.RingRank(3), 1);
  EXPECT_THAT(*layout.PositionIds(3), ElementsAre(4, 5, 6, 7));
}

// Varlen takes documents of any length: zigzag over 2 ranks splits
// [0, 4) into 4 pieces of 1 and [4, 10) into 2, 2, 1, 1 (the remainder's
// extra tokens on the pieces after the last document's).
TEST(LayoutTest, VarlenDocumentsOfAnyLength) {
  const Layout zigzag =
      *Layout::Create({.kind = LayoutKind::kZigzag, .world = 2}, 1, 10, {0, 4, 10});
  EXPECT_EQ(zigzag.local_seqlen(), 5);
  EXPECT_THAT(*zigzag.PositionIds(0), ElementsAre(0, 3, 4, 5, 9));
  EXPECT_THAT(*zigzag.PositionIds(1), ElementsAre(1, 2, 6, 7, 8));
  // 7 tokens over 2 ranks: rank 1 holds 3 and one padding row (-1).
  const Layout ring = *Layout::Create({.kind = LayoutKind::kRing, .world = 2}, 1, 7, {0, 1, 4, 7});
  EXPECT_EQ(ring.local_seqlen(), 4);
  EXPECT_THAT(*ring.PositionIds(0), ElementsAre(0, 1, 4, 5));
  EXPECT_THAT(*ring.PositionIds(1), ElementsAre(2, 3, 6, -1));
  // Fewer tokens than ranks: ranks without tokens hold only padding.
  const Layout llama3 = *Layout::Create({.kind = LayoutKind::kLlama3, .world = 4}, 1, 2, {0, 2});
  EXPECT_EQ(llama3.local_seqlen(), 1);
  EXPECT_THAT(*llama3.PositionIds(0), ElementsAre(-1));
  EXPECT_THAT(*llama3.PositionIds(1), ElementsAre(0));
  EXPECT_THAT(*llama3.PositionIds(3), ElementsAre(1));
}

// Random lognormal mixes of 1..S-token documents: every token on exactly
// one rank, ranks within two tokens of each other (but balanced's), Shard and Unshard
// inverse, padding zero.
TEST(LayoutTest, VarlenAnyLengthsHoldEveryTokenOnceAndBalanceTheRanks) {
  std::mt19937 rng(11);
  for (LayoutKind kind : {LayoutKind::kRing, LayoutKind::kZigzag, LayoutKind::kStripe,
                          LayoutKind::kLlama3, LayoutKind::kBalanced}) {
    for (int world : {1, 2, 3, 4, 8}) {
      for (int trial = 0; trial < 20; ++trial) {
        const int64_t total = 1 + trial * 37 % 300;
        const std::vector<int64_t> cu = testing::RandomDocuments(total, 6, total, &rng);
        const Layout layout = *Layout::Create({.kind = kind, .world = world}, 1, total, cu);
        std::vector<int> held(total, 0);
        int64_t most = 0, fewest = total;
        for (int r = 0; r < world; ++r) {
          const std::vector<int64_t> ids = *layout.PositionIds(r);
          ASSERT_EQ(static_cast<int64_t>(ids.size()), layout.local_seqlen());
          const int64_t tokens =
              std::count_if(ids.begin(), ids.end(), [](int64_t p) { return p >= 0; });
          for (int64_t i = 0; i < tokens; ++i) ++held.at(ids[i]);  // tokens first, then padding
          for (int64_t i = tokens; i < layout.local_seqlen(); ++i) EXPECT_EQ(ids[i], -1);
          most = std::max(most, tokens);
          fewest = std::min(fewest, tokens);
        }
        EXPECT_THAT(held, Each(1));
        // (balanced evens out work, not tokens: core/plan_test.cc)
        if (kind != LayoutKind::kBalanced) {
          EXPECT_LE(most - fewest, 2) << LayoutKindName(kind) << " W=" << world;
        }
        EXPECT_EQ(layout.local_seqlen(), std::max<int64_t>(most, 1));
        std::vector<int> global(total);
        for (int64_t i = 0; i < total; ++i) global[i] = static_cast<int>(i + 1);
        const std::vector<std::vector<int>> shards = *layout.Shard<int>(global, 1);
        for (int r = 0; r < world; ++r) {
          const std::vector<int64_t> ids = *layout.PositionIds(r);
          for (int64_t i = 0; i < layout.local_seqlen(); ++i) {
            EXPECT_EQ(shards[r][i], ids[i] < 0 ? 0 : ids[i] + 1);
          }
        }
        EXPECT_EQ(*layout.Unshard(shards, 1), global);
      }
    }
  }
}

TEST(LayoutTest, Errors) {
  auto error = [](LayoutSpec spec, int64_t batch, int64_t seqlen, std::vector<int64_t> cu = {}) {
    return std::string(Layout::Create(spec, batch, seqlen, cu).status().message());
  };
  EXPECT_THAT(error({.kind = LayoutKind::kZigzag, .world = 8}, 1, 1000),
              HasSubstr("seqlen 1000 is not divisible by 2*ring_size = 16 (zigzag)"));
  EXPECT_THAT(error({.kind = LayoutKind::kRing, .world = 3}, 1, 10),
              HasSubstr("seqlen 10 is not divisible by ring_size = 3 (ring)"));
  EXPECT_THAT(error({.kind = LayoutKind::kStripe, .world = 2, .stripe_width = 4}, 1, 12),
              HasSubstr("ring_size*stripe_width = 8"));
  EXPECT_THAT(error({.world = 0}, 1, 8), HasSubstr("world is 0"));
  EXPECT_THAT(error({.world = 4, .ring_size = 3}, 1, 12),
              HasSubstr("ring_size 3 does not divide world 4"));
  EXPECT_THAT(error({.world = 4, .ring_size = 2}, 3, 12),
              HasSubstr("batch 3 is not divisible by the number of rings"));
  EXPECT_THAT(error({.kind = LayoutKind::kStripe, .world = 2, .stripe_width = 0}, 1, 12),
              HasSubstr("stripe_width is 0"));
  EXPECT_THAT(error({.kind = LayoutKind::kRing, .world = 2}, 1, 10, {0, 4, 9}),
              HasSubstr("ends at 9"));
  const Layout layout = Make(LayoutKind::kRing, 2, 8);
  EXPECT_THAT(layout.Slices(2).status().message(), HasSubstr("rank 2 is outside [0, world = 2)"));
  EXPECT_THAT(layout.PositionIds(-1).status().message(), HasSubstr("rank -1"));
  EXPECT_THAT(layout.Locate(8).status().message(),
              HasSubstr("position 8 is outside [0, seqlen = 8)"));
  std::vector<float> wrong(7);
  EXPECT_THAT(layout.Shard(absl::Span<const float>(wrong), 1).status().message(),
              HasSubstr("global tensor has 7 elements; expected batch 1 x seqlen 8"));
  EXPECT_THAT(ParseLayoutKind("spiral").status().message(), HasSubstr("unknown layout 'spiral'"));
  EXPECT_EQ(*ParseLayoutKind("llama3"), LayoutKind::kLlama3);
}

}  // namespace
}  // namespace ringattn
