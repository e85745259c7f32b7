#include "core/shapes.h"

#include <limits>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ringattn {
namespace {

using ::testing::HasSubstr;

AttentionShape Shape() { return {2, 16, 24, 8, 2, 64}; }

TEST(ShapesTest, ValidShapePasses) {
  EXPECT_TRUE(ValidateShape(Shape()).ok());
  EXPECT_EQ(Shape().group_size(), 4);
  EXPECT_EQ(Shape().q_elements(), 2 * 16 * 8 * 64);
  EXPECT_EQ(Shape().kv_elements(), 2 * 24 * 2 * 64);
  EXPECT_EQ(Shape().lse_elements(), 2 * 8 * 16);
}

TEST(ShapesTest, NamesTheBadValue) {
  AttentionShape s = Shape();
  s.num_kv_heads = 3;
  EXPECT_THAT(ValidateShape(s).message(),
              HasSubstr("num_heads 8 is not a multiple of num_kv_heads 3"));
  s = Shape();
  s.head_dim = 512;
  EXPECT_THAT(ValidateShape(s).message(),
              HasSubstr("head_dim 512 is not supported; expected at most 256"));
  s = Shape();
  s.seqlen_k = 0;
  EXPECT_THAT(ValidateShape(s).message(), HasSubstr("seqlen_k is 0; expected a positive size"));
  EXPECT_THAT(ValidateHeadDim(96, {64, 128, 256}).message(),
              HasSubstr("head_dim 96 is not supported; expected one of {64, "
                        "128, 256}"));
  EXPECT_TRUE(ValidateHeadDim(128, {64, 128, 256}).ok());
}

TEST(ShapesTest, SoftmaxScale) {
  EXPECT_DOUBLE_EQ(DefaultSoftmaxScale(64), 0.125);
  EXPECT_TRUE(ValidateSoftmaxScale(0.5).ok());
  EXPECT_THAT(ValidateSoftmaxScale(0).message(), HasSubstr("softmax_scale is 0"));
  EXPECT_FALSE(ValidateSoftmaxScale(-1).ok());
}

TEST(ShapesTest, KvPackedStrides) {
  const AttentionShape s = Shape();
  absl::StatusOr<QkvStrides> st = PackedStrides(s, QkvPacking::kKvPacked);
  ASSERT_TRUE(st.ok()) << st.status();
  // kv (batch, seqlen_k, 2, num_kv_heads, head_dim)
  EXPECT_EQ(st->k.Index(1, 3, 1), ((1 * 24 + 3) * 2 + 0) * 2 * 64 + 1 * 64);
  EXPECT_EQ(st->v.Index(1, 3, 1), ((1 * 24 + 3) * 2 + 1) * 2 * 64 + 1 * 64);
  EXPECT_EQ(st->q.Index(1, 3, 5), ((1 * 16 + 3) * 8 + 5) * 64);
}

TEST(ShapesTest, QkvPackedStrides) {
  AttentionShape s{2, 16, 16, 4, 4, 32};
  absl::StatusOr<QkvStrides> st = PackedStrides(s, QkvPacking::kQkvPacked);
  ASSERT_TRUE(st.ok()) << st.status();
  // qkv (batch, seqlen, 3, num_heads, head_dim)
  for (int which = 0; which < 3; ++which) {
    const TensorStrides& t = which == 0 ? st->q : (which == 1 ? st->k : st->v);
    EXPECT_EQ(t.Index(1, 5, 2), ((1 * 16 + 5) * 3 + which) * 4 * 32 + 2 * 32);
  }
  EXPECT_TRUE(CheckTensorFits("q", 2 * 16 * 3 * 4 * 32, st->v, 2, 16, 4, 32).ok());
  EXPECT_THAT(CheckTensorFits("v", 2 * 16 * 3 * 4 * 32 - 1, st->v, 2, 16, 4, 32).message(),
              HasSubstr("v needs 12288 elements"));
}

// Strides from a caller's description: a negative one would step before
// the buffer, and ones whose last index overflows int64 wrapped around to a
// small number that "fit" (the C ABI's fuzz test read outside the buffer).
TEST(ShapesTest, NegativeAndOverflowingStridesDoNotFit) {
  const TensorStrides dense = DenseStrides(16, 4, 32);
  const int64_t size = 2 * 16 * 4 * 32;
  ASSERT_TRUE(CheckTensorFits("q", size, dense, 2, 16, 4, 32).ok());
  TensorStrides back = dense;
  back.batch = -32;  // batch 1 starts before the buffer
  EXPECT_THAT(CheckTensorFits("q", size, back, 2, 16, 4, 32).message(),
              HasSubstr("q has offset 0 and strides (batch -32, row 128, head 32); expected them "
                        "all >= 0"));
  back = dense;
  back.offset = -1;
  EXPECT_FALSE(CheckTensorFits("q", size, back, 2, 16, 4, 32).ok());
  TensorStrides wrap = dense;
  wrap.token = wrap.head = std::numeric_limits<int64_t>::max() / 2;  // 15x + 3x wraps below 0
  EXPECT_THAT(CheckTensorFits("k", size, wrap, 2, 16, 4, 32).message(),
              HasSubstr("k needs more than 2^63 elements"));
  TensorStrides far = dense;
  far.offset = std::numeric_limits<int64_t>::max() - 16;  // + head_dim overflows
  EXPECT_THAT(CheckTensorFits("v", size, far, 1, 1, 1, 32).message(), HasSubstr("more than 2^63"));
  // Zero strides (one row read for every position) are a valid view.
  EXPECT_TRUE(CheckTensorFits("q", 32, TensorStrides{0, 0, 0, 0}, 2, 16, 4, 32).ok());
}

TEST(ShapesTest, QkvPackedRejectsGqaAndCrossLengths) {
  EXPECT_THAT(PackedStrides(Shape(), QkvPacking::kQkvPacked).status().message(),
              HasSubstr("seqlen_q == seqlen_k"));
  AttentionShape s{1, 16, 16, 8, 2, 64};
  EXPECT_THAT(PackedStrides(s, QkvPacking::kQkvPacked).status().message(),
              HasSubstr("num_heads == num_kv_heads"));
}

}  // namespace
}  // namespace ringattn
