#include "core/mask.h"

#include <limits>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ringattn {
namespace {

using ::testing::HasSubstr;

// The allowed matrix of batch row 0 as strings of 0/1, one per query.
std::vector<std::string> Pattern(const Mask& mask, int64_t b = 0) {
  std::vector<std::string> rows;
  for (int64_t i = 0; i < mask.seqlen_q(); ++i) {
    std::string row;
    for (int64_t j = 0; j < mask.seqlen_k(); ++j) {
      row += mask.Allowed(b, i, j) ? '1' : '0';
    }
    rows.push_back(row);
  }
  return rows;
}

TEST(MaskTest, CausalIsBottomRightAligned) {
  // FlashAttention README: seqlen_q = 2, seqlen_k = 5.
  Mask mask = *Mask::Create({.causal = true}, 1, 2, 5);
  EXPECT_THAT(Pattern(mask), ::testing::ElementsAre("11110", "11111"));
  // seqlen_q = 5, seqlen_k = 2: the first three rows see nothing.
  mask = *Mask::Create({.causal = true}, 1, 5, 2);
  EXPECT_THAT(Pattern(mask), ::testing::ElementsAre("00", "00", "00", "10", "11"));
}

TEST(MaskTest, SlidingWindow) {
  Mask mask = *Mask::Create({.window_left = 1, .window_right = 0}, 1, 4, 4);
  EXPECT_THAT(Pattern(mask), ::testing::ElementsAre("1000", "1100", "0110", "0011"));
  mask = *Mask::Create({.window_left = 0, .window_right = 1}, 1, 3, 3);
  EXPECT_THAT(Pattern(mask), ::testing::ElementsAre("110", "011", "001"));
  // Causal overrides window_right.
  mask = *Mask::Create({.causal = true, .window_left = 1, .window_right = 5}, 1, 3, 3);
  EXPECT_THAT(Pattern(mask), ::testing::ElementsAre("100", "110", "011"));
}

TEST(MaskTest, WindowsAsWideAsTheSequenceOrWiderAreUnbounded) {
  for (int64_t wide : {int64_t{4}, int64_t{1} << 62, std::numeric_limits<int64_t>::max()}) {
    const Mask mask = *Mask::Create({.causal = true, .window_left = wide}, 1, 4, 4);
    EXPECT_THAT(Pattern(mask), ::testing::ElementsAre("1000", "1100", "1110", "1111")) << wide;
    EXPECT_EQ(mask.min_delta(), -Mask::kUnbounded) << wide;
    const Mask right = *Mask::Create({.window_left = 0, .window_right = wide}, 1, 3, 3);
    EXPECT_THAT(Pattern(right), ::testing::ElementsAre("111", "011", "001")) << wide;
  }
  // One less than the sequence still bounds (by nothing here, but exactly).
  const Mask three = *Mask::Create({.causal = true, .window_left = 3}, 1, 4, 4);
  EXPECT_EQ(three.min_delta(), -3);
}

TEST(MaskTest, DocumentsAndPadding) {
  Mask mask = *Mask::Create({.causal = true, .cu_seqlens = {0, 2, 5}}, 1, 5, 5);
  EXPECT_THAT(Pattern(mask), ::testing::ElementsAre("10000", "11000", "00100", "00110", "00111"));
  EXPECT_EQ(mask.DocumentBounds(3), (std::pair<int64_t, int64_t>(2, 5)));
  mask = *Mask::Create({.key_lengths = {2, 3}}, 2, 2, 4);
  EXPECT_THAT(Pattern(mask, 0), ::testing::ElementsAre("1100", "1100"));
  EXPECT_THAT(Pattern(mask, 1), ::testing::ElementsAre("1110", "1110"));
  EXPECT_EQ(mask.MaxKeyLimit(0, 2), 3);
}

// Documents are found by binary search over the boundaries (no per-token
// table), the same in a short and a long sequence.
TEST(MaskTest, LongSequencesFindDocumentsWithoutATable) {
  const int64_t n = (int64_t{1} << 24) + 8;
  for (const int64_t seqlen : {int64_t{64}, n}) {
    const int64_t tail = seqlen - 64;  // documents [0, 17), [17, 40), [40, 40 + 1), [41, seqlen)
    MaskSpec spec;
    spec.causal = false;
    spec.cu_seqlens = {0, 17, 40, 41, seqlen};
    absl::StatusOr<Mask> m = Mask::Create(spec, 1, seqlen, seqlen);
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(m->DocumentBounds(0), (std::pair<int64_t, int64_t>{0, 17}));
    EXPECT_EQ(m->DocumentBounds(16), (std::pair<int64_t, int64_t>{0, 17}));
    EXPECT_EQ(m->DocumentBounds(17), (std::pair<int64_t, int64_t>{17, 40}));
    EXPECT_EQ(m->DocumentBounds(40), (std::pair<int64_t, int64_t>{40, 41}));
    EXPECT_EQ(m->DocumentBounds(41 + tail), (std::pair<int64_t, int64_t>{41, seqlen}));
    EXPECT_TRUE(m->Allowed(0, 3, 16));
    EXPECT_FALSE(m->Allowed(0, 16, 17));
    EXPECT_TRUE(m->Allowed(0, 39, 17));
    EXPECT_FALSE(m->Allowed(0, 40, 41));
    EXPECT_TRUE(m->Allowed(0, seqlen - 1, 41));
  }
}

TEST(MaskTest, Errors) {
  EXPECT_THAT(Mask::Create({.window_left = -2}, 1, 4, 4).status().message(),
              HasSubstr("window_left is -2; expected >= 0, or -1"));
  EXPECT_THAT(Mask::Create({.window_right = -3}, 1, 4, 4).status().message(),
              HasSubstr("window_right is -3"));
  EXPECT_THAT(Mask::Create({.key_lengths = {1}}, 2, 4, 4).status().message(),
              HasSubstr("key_lengths has 1 entries; expected one per batch row (2)"));
  EXPECT_THAT(Mask::Create({.key_lengths = {5}}, 1, 4, 4).status().message(),
              HasSubstr("key_lengths[0] is 5; expected a value in [0, seqlen_k = 4]"));
  EXPECT_THAT(Mask::Create({.cu_seqlens = {0, 4}}, 2, 4, 4).status().message(),
              HasSubstr("batch 1; got batch 2"));
  EXPECT_THAT(Mask::Create({.cu_seqlens = {0, 3}}, 1, 4, 4).status().message(),
              HasSubstr("ends at 3"));
  EXPECT_THAT(Mask::Create({.cu_seqlens = {0, 4}}, 1, 4, 6).status().message(),
              HasSubstr("seqlen_q == seqlen_k"));
}

}  // namespace
}  // namespace ringattn
