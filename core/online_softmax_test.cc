#include "core/online_softmax.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace ringattn {
namespace {

constexpr int kDim = 4;

// The state of one row after softmax over `scores` with values `values`.
template <typename T>
void Exact(const std::vector<double>& scores, const std::vector<std::vector<double>>& values, T* o,
           T* lse) {
  double max = -INFINITY;
  for (double s : scores) max = std::max(max, s);
  double sum = 0;
  std::vector<double> acc(kDim, 0);
  for (size_t j = 0; j < scores.size(); ++j) {
    const double p = std::exp(scores[j] - max);
    sum += p;
    for (int i = 0; i < kDim; ++i) acc[i] += p * values[j][i];
  }
  for (int i = 0; i < kDim; ++i) o[i] = static_cast<T>(acc[i] / sum);
  *lse = static_cast<T>(max + std::log(sum));
}

TEST(OnlineSoftmaxTest, MergingBlocksEqualsOneSoftmaxInAnyOrder) {
  std::mt19937 rng(3);
  std::normal_distribution<double> normal(0, 4);
  const int kKeys = 40;
  std::vector<double> scores(kKeys);
  std::vector<std::vector<double>> values(kKeys, std::vector<double>(kDim));
  for (int j = 0; j < kKeys; ++j) {
    scores[j] = normal(rng) + (j == 7 ? 60 : 0);  // one dominant key
    for (double& x : values[j]) x = normal(rng);
  }
  double o_ref[kDim], lse_ref;
  Exact(scores, values, o_ref, &lse_ref);

  // Blocks of 5 keys, merged in three different orders.
  std::vector<int> order = {0, 1, 2, 3, 4, 5, 6, 7};
  for (int trial = 0; trial < 3; ++trial) {
    SoftmaxState<float> state(1, kDim);
    for (int block : order) {
      std::vector<double> s(scores.begin() + 5 * block, scores.begin() + 5 * block + 5);
      std::vector<std::vector<double>> v(values.begin() + 5 * block,
                                         values.begin() + 5 * block + 5);
      float o_b[kDim], lse_b;
      Exact(s, v, o_b, &lse_b);
      state.MergeRowFrom(0, o_b, lse_b);
    }
    EXPECT_NEAR(state.lse(0), lse_ref, 1e-6 * std::abs(lse_ref));
    for (int i = 0; i < kDim; ++i) {
      EXPECT_NEAR(state.o(0)[i], o_ref[i], 1e-5 * (1 + std::abs(o_ref[i])));
    }
    std::shuffle(order.begin(), order.end(), rng);
  }
}

TEST(OnlineSoftmaxTest, EmptyRowsStayFiniteAndNeutral) {
  SoftmaxState<double> state(2, kDim);
  SoftmaxState<double> empty(2, kDim);
  ASSERT_TRUE(state.Merge(empty).ok());
  EXPECT_EQ(state.lse(0), -INFINITY);
  for (int i = 0; i < kDim; ++i) EXPECT_EQ(state.o(0)[i], 0.0);

  const double o_b[kDim] = {1, 2, 3, 4};
  state.MergeRowFrom(1, o_b, 0.5);
  ASSERT_TRUE(state.Merge(empty).ok());  // -inf block leaves row 1 unchanged
  EXPECT_EQ(state.lse(1), 0.5);
  for (int i = 0; i < kDim; ++i) EXPECT_EQ(state.o(1)[i], o_b[i]);
  // A -inf block with garbage output must not leak NaN.
  const double nan_o[kDim] = {NAN, NAN, NAN, NAN};
  state.MergeRowFrom(1, nan_o, -INFINITY);
  for (int i = 0; i < kDim; ++i) EXPECT_EQ(state.o(1)[i], o_b[i]);
  EXPECT_FALSE(state.Merge(SoftmaxState<double>(3, kDim)).ok());
}

TEST(OnlineSoftmaxTest, MergeLseIsStableForLargeGaps) {
  const LseMerge<float> m = MergeLse(1000.0f, -1000.0f);
  EXPECT_EQ(m.lse, 1000.0f);
  EXPECT_EQ(m.old_scale, 1.0f);
  EXPECT_EQ(m.new_scale, 0.0f);
  const LseMerge<double> equal = MergeLse(2.0, 2.0);
  EXPECT_NEAR(equal.lse, 2.0 + std::log(2.0), 1e-15);
  EXPECT_NEAR(equal.old_scale, 0.5, 1e-15);
}

}  // namespace
}  // namespace ringattn
