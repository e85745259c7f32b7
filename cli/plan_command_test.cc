#include "cli/plan_command.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ringattn::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(PlanCommandTest, ParsesLists) {
  EXPECT_THAT(*ParseIntList("cu_seqlens", "0,5,9"), ElementsAre(0, 5, 9));
  EXPECT_TRUE(ParseIntList("cu_seqlens", "")->empty());
  EXPECT_THAT(ParseIntList("cu_seqlens", "0,x").status().message(),
              HasSubstr("--cu_seqlens: 'x' is not an integer"));
  EXPECT_THAT(*ParseLayouts("all"),
              ElementsAre(LayoutKind::kRing, LayoutKind::kZigzag, LayoutKind::kStripe,
                          LayoutKind::kLlama3, LayoutKind::kBalanced));
  EXPECT_THAT(ParseLayouts("zigzg").status().message(), HasSubstr("unknown layout 'zigzg'"));
}

TEST(PlanCommandTest, ComparesLayouts) {
  PlanOptions options;
  options.layouts = *ParseLayouts("all");
  options.layout.world = 4;
  options.shape = {1, 256, 256, 2, 2, 16};
  options.mask.causal = true;
  const std::string text = *RunPlan(options);
  EXPECT_THAT(text, HasSubstr("ring    world 4"));
  EXPECT_THAT(text, HasSubstr("zigzag  world 4"));
  EXPECT_THAT(text, HasSubstr("llama3  world 4"));
  options.shape.seqlen_q = options.shape.seqlen_k = 100;
  EXPECT_THAT(RunPlan(options).status().message(), HasSubstr("seqlen 100 is not divisible by"));
}

}  // namespace
}  // namespace ringattn::cli
