#include "cli/auto_layout.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ringattn::cli {
namespace {

using ::testing::HasSubstr;

const AttentionShape kShape{1, 65536, 65536, 32, 8, 128};

TEST(AutoLayoutTest, OneLongSequencePicksZigzag) {
  absl::StatusOr<LayoutChoice> c =
      PickLayout({.world = 8}, {.causal = true}, kShape, DType::kBFloat16, true);
  ASSERT_TRUE(c.ok()) << c.status();
  // zigzag and balanced tie (the same pieces); the earlier listed wins.
  EXPECT_EQ(c->kind, LayoutKind::kZigzag);
  EXPECT_THAT(c->report, HasSubstr("layout auto: zigzag (simulated fwd+bwd on h200: ring "));
  EXPECT_THAT(c->report, HasSubstr("stripe"));
}

TEST(AutoLayoutTest, ManyShortDocumentsPickBalanced) {
  MaskSpec mask{.causal = true};
  for (int64_t pos = 0; pos < 65536; pos += 512) mask.cu_seqlens.push_back(pos);
  mask.cu_seqlens.push_back(65536);
  absl::StatusOr<LayoutChoice> c = PickLayout({.world = 8}, mask, kShape, DType::kBFloat16, true);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->kind, LayoutKind::kBalanced) << c->report;
  EXPECT_THAT(c->report, HasSubstr("stripe"));  // varlen stripe is a candidate too
}

TEST(AutoLayoutTest, NoLayoutTakesTheProblem) {
  absl::StatusOr<LayoutChoice> c = PickLayout({.world = 3, .ring_size = 2}, {.causal = true},
                                              {1, 64, 64, 32, 8, 128}, DType::kBFloat16, true);
  EXPECT_THAT(c.status().message(), HasSubstr("--layout=auto: no layout takes the problem"));
}

}  // namespace
}  // namespace ringattn::cli
