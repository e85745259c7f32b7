#include "cpu_reference/attention.h"

#include <cmath>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace ringattn::cpu {
namespace {

using ::ringattn::testing::Cast;
using ::ringattn::testing::MaxRelError;
using ::ringattn::testing::RandomNormal;
using ::testing::HasSubstr;

template <typename T>
struct Problem {
  AttentionShape shape;
  std::vector<T> q, k, v, dout;

  TensorRef<const T> Q() const {
    return {q, DenseStrides(shape.seqlen_q, shape.num_heads, shape.head_dim)};
  }
  TensorRef<const T> K() const {
    return {k, DenseStrides(shape.seqlen_k, shape.num_kv_heads, shape.head_dim)};
  }
  TensorRef<const T> V() const {
    return {v, DenseStrides(shape.seqlen_k, shape.num_kv_heads, shape.head_dim)};
  }
  TensorRef<const T> Dense(const std::vector<T>& x) const {
    return {x, DenseStrides(shape.seqlen_q, shape.num_heads, shape.head_dim)};
  }
};

Problem<double> MakeProblem(const AttentionShape& shape, uint32_t seed) {
  Problem<double> p{shape};
  p.q = RandomNormal<double>(shape.q_elements(), seed);
  p.k = RandomNormal<double>(shape.kv_elements(), seed + 1);
  p.v = RandomNormal<double>(shape.kv_elements(), seed + 2);
  p.dout = RandomNormal<double>(shape.q_elements(), seed + 3);
  return p;
}

template <typename T>
Problem<T> CastProblem(const Problem<double>& p) {
  return {p.shape, Cast<T, double>(p.q), Cast<T, double>(p.k), Cast<T, double>(p.v),
          Cast<T, double>(p.dout)};
}

template <typename T>
std::pair<AttentionOutput<T>, AttentionGrads<T>> ForwardBackward(const Problem<T>& p,
                                                                 const Mask& mask, double scale) {
  absl::StatusOr<AttentionOutput<T>> fwd =
      NaiveForward<T>(p.shape, p.Q(), p.K(), p.V(), mask, scale);
  EXPECT_TRUE(fwd.ok()) << fwd.status();
  absl::StatusOr<AttentionGrads<T>> bwd = NaiveBackward<T>(
      p.shape, p.Q(), p.K(), p.V(), p.Dense(fwd->out), fwd->lse, p.Dense(p.dout), mask, scale);
  EXPECT_TRUE(bwd.ok()) << bwd.status();
  return {*fwd, *bwd};
}

TEST(AttentionTest, FloatMatchesDoubleWithin1e5) {
  for (const AttentionShape& shape :
       {AttentionShape{2, 37, 53, 4, 2, 16}, AttentionShape{1, 64, 64, 3, 1, 32},
        AttentionShape{1, 50, 20, 2, 2, 8}}) {
    for (const MaskSpec& spec :
         {MaskSpec{}, MaskSpec{.causal = true}, MaskSpec{.window_left = 6, .window_right = 2}}) {
      SCOPED_TRACE(shape.DebugString());
      const Mask mask = *Mask::Create(spec, shape.batch, shape.seqlen_q, shape.seqlen_k);
      const Problem<double> p = MakeProblem(shape, 11);
      const double scale = DefaultSoftmaxScale(shape.head_dim);
      const auto [fwd64, bwd64] = ForwardBackward(p, mask, scale);
      const auto [fwd32, bwd32] = ForwardBackward(CastProblem<float>(p), mask, scale);
      EXPECT_LE(MaxRelError(fwd32.out, fwd64.out), 1e-5);
      EXPECT_LE(MaxRelError(fwd32.lse, fwd64.lse), 1e-5);
      EXPECT_LE(MaxRelError(bwd32.dq, bwd64.dq), 1e-5);
      EXPECT_LE(MaxRelError(bwd32.dk, bwd64.dk), 1e-5);
      EXPECT_LE(MaxRelError(bwd32.dv, bwd64.dv), 1e-5);
    }
  }
}

// L = sum(out * dout), so dL/dx is what NaiveBackward returns for x.
double Loss(const Problem<double>& p, const Mask& mask, double scale) {
  const AttentionOutput<double> fwd =
      *NaiveForward<double>(p.shape, p.Q(), p.K(), p.V(), mask, scale);
  double loss = 0;
  for (size_t i = 0; i < fwd.out.size(); ++i) loss += fwd.out[i] * p.dout[i];
  return loss;
}

TEST(AttentionTest, BackwardMatchesFiniteDifferences) {
  const AttentionShape shape{1, 7, 9, 4, 2, 5};
  for (const MaskSpec& spec : {MaskSpec{}, MaskSpec{.causal = true},
                               MaskSpec{.window_left = 2, .window_right = 1, .key_lengths = {8}}}) {
    const Mask mask = *Mask::Create(spec, 1, shape.seqlen_q, shape.seqlen_k);
    Problem<double> p = MakeProblem(shape, 5);
    const double scale = 0.7;
    const auto [fwd, grads] = ForwardBackward(p, mask, scale);
    const double h = 1e-6;
    for (auto [x, g] :
         {std::pair{&p.q, &grads.dq}, std::pair{&p.k, &grads.dk}, std::pair{&p.v, &grads.dv}}) {
      for (size_t i = 0; i < x->size(); i += 3) {
        const double saved = (*x)[i];
        (*x)[i] = saved + h;
        const double up = Loss(p, mask, scale);
        (*x)[i] = saved - h;
        const double down = Loss(p, mask, scale);
        (*x)[i] = saved;
        EXPECT_NEAR((*g)[i], (up - down) / (2 * h), 1e-7) << "element " << i;
      }
    }
  }
}

TEST(AttentionTest, PackedFormsMatchSeparate) {
  const AttentionShape shape{2, 12, 12, 4, 4, 8};
  const Mask mask = *Mask::Create({.causal = true}, 2, 12, 12);
  const Problem<double> p = MakeProblem(shape, 21);
  const double scale = DefaultSoftmaxScale(8);
  const AttentionOutput<double> separate =
      *NaiveForward<double>(shape, p.Q(), p.K(), p.V(), mask, scale);

  // Pack q, k, v into one (batch, seqlen, 3, heads, head_dim) buffer.
  const QkvStrides st = *PackedStrides(shape, QkvPacking::kQkvPacked);
  std::vector<double> qkv(3 * shape.q_elements());
  for (int64_t b = 0; b < 2; ++b) {
    for (int64_t t = 0; t < 12; ++t) {
      for (int64_t h = 0; h < 4; ++h) {
        for (int64_t i = 0; i < 8; ++i) {
          const int64_t dense = ((b * 12 + t) * 4 + h) * 8 + i;
          qkv[st.q.Index(b, t, h) + i] = p.q[dense];
          qkv[st.k.Index(b, t, h) + i] = p.k[dense];
          qkv[st.v.Index(b, t, h) + i] = p.v[dense];
        }
      }
    }
  }
  const AttentionOutput<double> packed =
      *NaiveForward<double>(shape, {qkv, st.q}, {qkv, st.k}, {qkv, st.v}, mask, scale);
  EXPECT_EQ(packed.out, separate.out);
  EXPECT_EQ(packed.lse, separate.lse);
}

TEST(AttentionTest, RowsWithoutKeysHaveMinusInfLseAndZeroOutput) {
  // seqlen_q > seqlen_k, causal: the first rows see no key.
  const AttentionShape shape{1, 6, 3, 1, 1, 4};
  const Mask mask = *Mask::Create({.causal = true}, 1, 6, 3);
  const Problem<double> p = MakeProblem(shape, 2);
  const auto [fwd, grads] = ForwardBackward(p, mask, 0.5);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(fwd.lse[i], -INFINITY);
    for (int d = 0; d < 4; ++d) EXPECT_EQ(fwd.out[i * 4 + d], 0.0);
  }
  EXPECT_TRUE(std::isfinite(fwd.lse[3]));
  for (double g : grads.dq) EXPECT_TRUE(std::isfinite(g));
  for (double g : grads.dk) EXPECT_TRUE(std::isfinite(g));
}

TEST(AttentionTest, Errors) {
  const AttentionShape shape{1, 4, 4, 2, 2, 8};
  const Problem<double> p = MakeProblem(shape, 1);
  const Mask wrong = *Mask::Create({}, 1, 4, 5);
  EXPECT_THAT(NaiveForward<double>(shape, p.Q(), p.K(), p.V(), wrong, 1.0).status().message(),
              HasSubstr("the mask is for batch 1, seqlen_q 4, seqlen_k 5"));
  const Mask mask = *Mask::Create({}, 1, 4, 4);
  const std::vector<double> short_k(p.k.begin(), p.k.end() - 1);
  EXPECT_THAT(NaiveForward<double>(shape, p.Q(), {short_k, DenseStrides(4, 2, 8)}, p.V(), mask, 1.0)
                  .status()
                  .message(),
              HasSubstr("k needs 64 elements"));
  EXPECT_THAT(NaiveForward<double>(shape, p.Q(), p.K(), p.V(), mask, -1).status().message(),
              HasSubstr("softmax_scale is -1"));
  const std::vector<double> lse(3);
  EXPECT_THAT(NaiveBackward<double>(shape, p.Q(), p.K(), p.V(), p.Q(), lse, p.Q(), mask, 1.0)
                  .status()
                  .message(),
              HasSubstr("lse has 3 elements; expected"));
}

}  // namespace
}  // namespace ringattn::cpu
