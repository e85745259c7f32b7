#include "cpu_reference/blocked_attention.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace ringattn::cpu {
namespace {

using ::ringattn::testing::MaxRelError;
using ::ringattn::testing::RandomNormal;
using ::testing::HasSubstr;

// One task over the whole (multi-tile) problem equals the naive oracle; so
// does the same problem split into four tasks merged in a scrambled order.
TEST(BlockedAttentionTest, TasksMergeToTheNaiveResult) {
  const AttentionShape shape{2, 150, 300, 4, 2, 16};
  const double scale = DefaultSoftmaxScale(16);
  const TensorStrides qs = DenseStrides(150, 4, 16);
  const TensorStrides ks = DenseStrides(300, 2, 16);
  const std::vector<double> q = RandomNormal<double>(shape.q_elements(), 1);
  const std::vector<double> k = RandomNormal<double>(shape.kv_elements(), 2);
  const std::vector<double> v = RandomNormal<double>(shape.kv_elements(), 3);
  const std::vector<double> dout = RandomNormal<double>(shape.q_elements(), 4);
  for (const MaskSpec& spec :
       {MaskSpec{}, MaskSpec{.causal = true},
        MaskSpec{.window_left = 40, .window_right = 7, .key_lengths = {290, 211}}}) {
    const Mask mask = *Mask::Create(spec, 2, 150, 300);
    const AttentionOutput<double> naive =
        *NaiveForward<double>(shape, {q, qs}, {k, ks}, {v, ks}, mask, scale);
    const AttentionGrads<double> naive_grads = *NaiveBackward<double>(
        shape, {q, qs}, {k, ks}, {v, ks}, {naive.out, qs}, naive.lse, {dout, qs}, mask, scale);

    const BlockProblem problem{.batch = 2,
                               .q_rows = 150,
                               .k_rows = 300,
                               .num_heads = 4,
                               .num_kv_heads = 2,
                               .head_dim = 16,
                               .softmax_scale = scale,
                               .mask = &mask};
    std::vector<BlockTask> tasks;
    for (auto [q0, q1, k0, k1] : {std::tuple{70, 150, 100, 300}, std::tuple{0, 70, 0, 100},
                                  std::tuple{70, 150, 0, 100}, std::tuple{0, 70, 100, 300}}) {
      tasks.push_back({q0, PositionRun::Contiguous(q0, q1 - q0), k0,
                       PositionRun::Contiguous(k0, k1 - k0), 0, 2});
    }
    AttentionOutput<double> state = EmptyOutput<double>(2, 150, 4, 16);
    for (const BlockTask& task : tasks) {
      ASSERT_TRUE(BlockForward<double>(task, problem, {q, qs}, {k, ks}, {v, ks}, &state).ok());
    }
    EXPECT_LE(MaxRelError(state.out, naive.out), 1e-12);
    EXPECT_LE(MaxRelError(state.lse, naive.lse), 1e-12);

    const std::vector<double> delta = BackwardDelta<double>(state.out, dout, 2, 150, 4, 16);
    std::vector<double> dq(q.size()), dk(k.size()), dv(v.size());
    for (const BlockTask& task : tasks) {
      ASSERT_TRUE(BlockBackward<double>(task, problem, {q, qs}, {k, ks}, {v, ks}, {dout, qs},
                                        state.lse, delta, {absl::MakeSpan(dq), qs},
                                        {absl::MakeSpan(dk), ks}, {absl::MakeSpan(dv), ks})
                      .ok());
    }
    EXPECT_LE(MaxRelError(dq, naive_grads.dq), 1e-12);
    EXPECT_LE(MaxRelError(dk, naive_grads.dk), 1e-12);
    EXPECT_LE(MaxRelError(dv, naive_grads.dv), 1e-12);
  }
}

// One task spanning several documents: tiles crossing a document boundary
// are masked element-wise, tiles inside one are not.
TEST(BlockedAttentionTest, TaskAcrossDocumentsMatchesTheNaiveResult) {
  const AttentionShape shape{1, 300, 300, 2, 1, 8};
  const TensorStrides qs = DenseStrides(300, 2, 8);
  const TensorStrides ks = DenseStrides(300, 1, 8);
  const std::vector<double> q = RandomNormal<double>(shape.q_elements(), 7);
  const std::vector<double> k = RandomNormal<double>(shape.kv_elements(), 8);
  const std::vector<double> v = RandomNormal<double>(shape.kv_elements(), 9);
  const Mask mask = *Mask::Create({.causal = true, .cu_seqlens = {0, 100, 130, 300}}, 1, 300, 300);
  const AttentionOutput<double> naive =
      *NaiveForward<double>(shape, {q, qs}, {k, ks}, {v, ks}, mask, 0.3);
  const BlockProblem problem{.batch = 1,
                             .q_rows = 300,
                             .k_rows = 300,
                             .num_heads = 2,
                             .num_kv_heads = 1,
                             .head_dim = 8,
                             .softmax_scale = 0.3,
                             .mask = &mask};
  AttentionOutput<double> state = EmptyOutput<double>(1, 300, 2, 8);
  ASSERT_TRUE(BlockForward<double>(
                  {0, PositionRun::Contiguous(0, 300), 0, PositionRun::Contiguous(0, 300), 0, 1},
                  problem, {q, qs}, {k, ks}, {v, ks}, &state)
                  .ok());
  EXPECT_LE(MaxRelError(state.out, naive.out), 1e-12);
  EXPECT_LE(MaxRelError(state.lse, naive.lse), 1e-12);
}

TEST(BlockedAttentionTest, Errors) {
  const Mask mask = *Mask::Create({}, 1, 8, 8);
  const std::vector<float> x(8 * 2 * 4);
  const TensorStrides st = DenseStrides(8, 2, 4);
  BlockProblem problem{.batch = 1,
                       .q_rows = 8,
                       .k_rows = 8,
                       .num_heads = 2,
                       .num_kv_heads = 2,
                       .head_dim = 4,
                       .softmax_scale = 0.5,
                       .mask = &mask};
  AttentionOutput<float> state = EmptyOutput<float>(1, 8, 2, 4);
  const BlockTask outside{4, PositionRun::Contiguous(4, 6), 0, PositionRun::Contiguous(0, 8), 0, 2};
  EXPECT_THAT(BlockForward<float>(outside, problem, {x, st}, {x, st}, {x, st}, &state).message(),
              HasSubstr("lies outside q rows [0, 8)"));
  const BlockTask ok{0, PositionRun::Contiguous(0, 8), 0, PositionRun::Contiguous(0, 8), 0, 2};
  AttentionOutput<float> small = EmptyOutput<float>(1, 4, 2, 4);
  EXPECT_THAT(BlockForward<float>(ok, problem, {x, st}, {x, st}, {x, st}, &small).message(),
              HasSubstr("state out has 32 elements; expected 64"));
  problem.mask = nullptr;
  EXPECT_THAT(BlockForward<float>(ok, problem, {x, st}, {x, st}, {x, st}, &state).message(),
              HasSubstr("mask is null"));
}

}  // namespace
}  // namespace ringattn::cpu
