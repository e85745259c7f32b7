// Every layout and schedule, run serially through the blocked kernel, equals
// the naive oracle: forward and backward, in double (<= 1e-12) and float
// (<= 1e-5 relative to the double oracle).
#include "cpu_reference/serial_ring.h"

#include <random>

#include "core/layout.h"
#include "core/mask.h"
#include "core/schedule.h"
#include "cpu_reference/attention.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace ringattn::cpu {
namespace {

using ::ringattn::testing::Cast;
using ::ringattn::testing::MaxRelError;
using ::ringattn::testing::RandomNormal;

using Case = ::ringattn::testing::RingCase;

void CheckAgainstOracle(const Case& c) {
  const AttentionShape& shape = c.shape;
  SCOPED_TRACE(absl::StrCat(LayoutKindName(c.layout.kind), " world ", c.layout.world, " ring_size ",
                            c.layout.ring_size, " ", shape.DebugString(), " causal ", c.mask.causal,
                            " window ", c.mask.window_left, " docs ", c.mask.cu_seqlens.size()));
  const Layout layout = *Layout::Create(c.layout, shape.batch, shape.seqlen_q, c.mask.cu_seqlens);
  const Mask mask = *Mask::Create(c.mask, shape.batch, shape.seqlen_q, shape.seqlen_k);
  const Schedule schedule = *Schedule::Create(layout, mask, shape.num_kv_heads);
  const double scale = DefaultSoftmaxScale(shape.head_dim);
  const std::vector<double> q = RandomNormal<double>(shape.q_elements(), 1);
  const std::vector<double> k = RandomNormal<double>(shape.kv_elements(), 2);
  const std::vector<double> v = RandomNormal<double>(shape.kv_elements(), 3);
  const std::vector<double> dout = RandomNormal<double>(shape.q_elements(), 4);
  const TensorStrides qs = DenseStrides(shape.seqlen_q, shape.num_heads, shape.head_dim);
  const TensorStrides ks = DenseStrides(shape.seqlen_k, shape.num_kv_heads, shape.head_dim);
  const AttentionOutput<double> naive =
      *NaiveForward<double>(shape, {q, qs}, {k, ks}, {v, ks}, mask, scale);
  const AttentionGrads<double> naive_grads = *NaiveBackward<double>(
      shape, {q, qs}, {k, ks}, {v, ks}, {naive.out, qs}, naive.lse, {dout, qs}, mask, scale);

  absl::StatusOr<AttentionOutput<double>> ring =
      SerialRingForward<double>(schedule, shape, q, k, v, scale);
  ASSERT_TRUE(ring.ok()) << ring.status();
  EXPECT_LE(MaxRelError(ring->out, naive.out), 1e-12);
  EXPECT_LE(MaxRelError(ring->lse, naive.lse), 1e-12);
  absl::StatusOr<AttentionGrads<double>> grads =
      SerialRingBackward<double>(schedule, shape, q, k, v, ring->out, ring->lse, dout, scale);
  ASSERT_TRUE(grads.ok()) << grads.status();
  EXPECT_LE(MaxRelError(grads->dq, naive_grads.dq), 1e-12);
  EXPECT_LE(MaxRelError(grads->dk, naive_grads.dk), 1e-12);
  EXPECT_LE(MaxRelError(grads->dv, naive_grads.dv), 1e-12);

  const std::vector<float> qf = Cast<float, double>(q), kf = Cast<float, double>(k),
                           vf = Cast<float, double>(v), df = Cast<float, double>(dout);
  const AttentionOutput<float> ring32 =
      *SerialRingForward<float>(schedule, shape, qf, kf, vf, scale);
  EXPECT_LE(MaxRelError(ring32.out, naive.out), 1e-5);
  EXPECT_LE(MaxRelError(ring32.lse, naive.lse), 1e-5);
  const AttentionGrads<float> grads32 =
      *SerialRingBackward<float>(schedule, shape, qf, kf, vf, ring32.out, ring32.lse, df, scale);
  EXPECT_LE(MaxRelError(grads32.dq, naive_grads.dq), 1e-5);
  EXPECT_LE(MaxRelError(grads32.dk, naive_grads.dk), 1e-5);
  EXPECT_LE(MaxRelError(grads32.dv, naive_grads.dv), 1e-5);
}

TEST(SerialRingTest, EveryLayoutMatchesTheOracle) {
  for (LayoutKind kind :
       {LayoutKind::kRing, LayoutKind::kZigzag, LayoutKind::kStripe, LayoutKind::kLlama3}) {
    for (int world : {1, 2, 3, 4, 8}) {
      for (const MaskSpec& mask :
           {MaskSpec{}, MaskSpec{.causal = true}, MaskSpec{.causal = true, .window_left = 9},
            MaskSpec{.key_lengths = {40, 29}}}) {
        CheckAgainstOracle({.layout = {.kind = kind, .world = world},
                            .shape = {2, 48, 48, 4, 2, 8},
                            .mask = mask});
      }
    }
  }
}

TEST(SerialRingTest, StripesRingSizeAndHeadGroups) {
  CheckAgainstOracle({.layout = {.kind = LayoutKind::kStripe, .world = 4, .stripe_width = 3},
                      .shape = {1, 48, 48, 2, 2, 8},
                      .mask = {.causal = true}});
  for (LayoutKind kind : {LayoutKind::kRing, LayoutKind::kZigzag, LayoutKind::kLlama3}) {
    CheckAgainstOracle({.layout = {.kind = kind, .world = 4, .ring_size = 2},
                        .shape = {2, 32, 32, 2, 1, 8},
                        .mask = {.causal = true}});
  }
  CheckAgainstOracle({.layout = {.kind = LayoutKind::kLlama3, .world = 4, .kv_heads_per_group = 1},
                      .shape = {1, 32, 32, 6, 3, 8},
                      .mask = {.causal = true}});
}

TEST(SerialRingTest, VarlenLayoutsMatchTheOracle) {
  std::mt19937 rng(5);
  for (LayoutKind kind : {LayoutKind::kRing, LayoutKind::kZigzag, LayoutKind::kLlama3}) {
    for (int world : {2, 3, 4}) {
      const int64_t unit = kind == LayoutKind::kZigzag ? 2 * world
                           : kind == LayoutKind::kRing ? world
                                                       : 1;
      const int64_t total = 12 * world;
      std::vector<int64_t> cu = {0};
      while (cu.back() < total) {
        // llama3 documents of any length cross rank boundaries.
        std::uniform_int_distribution<int64_t> pick(1, kind == LayoutKind::kLlama3 ? 17 : 4);
        cu.push_back(std::min(total, cu.back() + pick(rng) * unit));
      }
      CheckAgainstOracle({.layout = {.kind = kind, .world = world},
                          .shape = {1, total, total, 2, 1, 8},
                          .mask = {.causal = true, .cu_seqlens = cu}});
    }
  }
}

}  // namespace
}  // namespace ringattn::cpu
