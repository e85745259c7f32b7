#include "sim/tile_fill.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "core/mask.h"
#include "core/schedule.h"
#include "gtest/gtest.h"
#include "sim/calibration.h"

namespace ringattn::sim {
namespace {

Mask MakeMask(bool causal, int64_t seqlen, std::vector<int64_t> cu_seqlens = {},
              int64_t window_left = -1, int64_t window_right = -1) {
  MaskSpec spec;
  spec.causal = causal;
  spec.cu_seqlens = std::move(cu_seqlens);
  spec.window_left = window_left;
  spec.window_right = window_right;
  absl::StatusOr<Mask> mask = Mask::Create(spec, 1, seqlen, seqlen);
  EXPECT_TRUE(mask.ok()) << mask.status();
  return *mask;
}

BlockTask Square(int64_t begin, int64_t rows, int64_t kv_heads = 32) {
  BlockTask t;
  t.q = t.k = PositionRun::Contiguous(begin, rows);
  t.kv_head_end = kv_heads;
  return t;
}

// The steps a tile makes, counted pair by pair with Mask::Allowed.
std::vector<int64_t> BruteSteps(const BlockTask& task, const Mask& mask, const KernelTiling& t,
                                bool backward) {
  const int64_t tile_total = backward ? task.k.length : task.q.length;
  const int64_t step_total = backward ? task.q.length : task.k.length;
  std::vector<int64_t> steps;
  for (int64_t a0 = 0; a0 < tile_total; a0 += t.tile_rows) {
    int64_t n = 0;
    for (int64_t s0 = 0; s0 < step_total; s0 += t.step_rows) {
      bool any = false;
      for (int64_t a = a0; a < std::min(tile_total, a0 + t.tile_rows) && !any; ++a) {
        for (int64_t s = s0; s < std::min(step_total, s0 + t.step_rows) && !any; ++s) {
          const int64_t qi = backward ? s : a, ki = backward ? a : s;
          any = mask.Allowed(0, task.q.At(qi), task.k.At(ki));
        }
      }
      n += any;
    }
    steps.push_back(n);
  }
  return steps;
}

TEST(TileFillTest, ListSchedulingOverTheSms) {
  // Fewer tiles than SMs: the busy share is the tiles' over the SMs'.
  EXPECT_DOUBLE_EQ(FillEfficiency(std::vector<double>(66, 3.0), 132), 0.5);
  // Two full waves and one tile more: three waves' time.
  EXPECT_NEAR(FillEfficiency(std::vector<double>(265, 1.0), 132), 265.0 / (3 * 132), 1e-12);
  // Each tile to the SM free first: 4, 1, 1, 1, 1 on two SMs end at 4.
  EXPECT_DOUBLE_EQ(FillEfficiency({4, 1, 1, 1, 1}, 2), 8.0 / 8.0);
  // The heavy tile last starts at 2 and ends at 6.
  EXPECT_DOUBLE_EQ(FillEfficiency({1, 1, 1, 1, 4}, 2), 8.0 / 12.0);
  EXPECT_DOUBLE_EQ(FillEfficiency({}, 132), 1.0);
}

TEST(TileFillTest, CausalStepsFollowTheDiagonal) {
  const Mask causal = MakeMask(true, 2048);
  const BlockTask task = Square(0, 2048);
  // Forward, d128: query tile m of 128 rows meets key tiles 0..m.
  const std::vector<int64_t> fwd = TileSteps(task, causal, 0, TilingOf(false, 128), false);
  ASSERT_EQ(fwd.size(), 16u);
  for (int m = 0; m < 16; ++m) EXPECT_EQ(fwd[m], m + 1) << m;
  // Backward, d128: key tile n of 128 meets the 64-row query tiles from
  // its diagonal on: 32 - 2n.
  const std::vector<int64_t> bwd = TileSteps(task, causal, 0, TilingOf(true, 128), true);
  ASSERT_EQ(bwd.size(), 16u);
  for (int n = 0; n < 16; ++n) EXPECT_EQ(bwd[n], 32 - 2 * n) << n;
  // Full: every step.
  const Mask full = MakeMask(false, 2048);
  for (int64_t s : TileSteps(task, full, 0, TilingOf(false, 64), false)) EXPECT_EQ(s, 16);
}

TEST(TileFillTest, StepsOfStridedAndDocumentTasksMatchThePairs) {
  // A stripe task (strided positions, the row loop) and one across two
  // documents, against the mask pair by pair.
  const Mask causal = MakeMask(true, 4096);
  BlockTask stripe;
  stripe.q = PositionRun::Strided(1, 1000, 4);
  stripe.k = PositionRun::Strided(0, 1000, 4);
  stripe.kv_head_end = 8;
  for (bool backward : {false, true}) {
    const KernelTiling t = TilingOf(backward, 128);
    EXPECT_EQ(TileSteps(stripe, causal, 0, t, backward), BruteSteps(stripe, causal, t, backward));
  }
  // Windows (narrower than a stripe's period too) on strided and on
  // contiguous tasks, including a rectangle off the diagonal.
  BlockTask shifted = Square(300, 900, 8);
  shifted.k = PositionRun::Contiguous(100, 1300);
  for (const Mask& window : {MakeMask(true, 4096, {}, 300), MakeMask(false, 4096, {}, 2, 5),
                             MakeMask(false, 4096, {}, 150, 40)}) {
    for (bool backward : {false, true}) {
      for (const BlockTask& task : {stripe, shifted, Square(0, 1000, 8)}) {
        const KernelTiling t = TilingOf(backward, 128);
        EXPECT_EQ(TileSteps(task, window, 0, t, backward), BruteSteps(task, window, t, backward));
      }
    }
  }
  const Mask docs = MakeMask(true, 4096, {0, 700, 1500, 4096});
  const BlockTask across = Square(300, 1500, 8);
  for (bool backward : {false, true}) {
    const KernelTiling t = TilingOf(backward, 64);
    EXPECT_EQ(TileSteps(across, docs, 0, t, backward), BruteSteps(across, docs, t, backward));
  }
}

TEST(TileFillTest, FewerHeadsFillTheSmsWorse) {
  const Mask causal = MakeMask(true, 8192);
  const LaunchGpu h200;
  // The calibration's heads: no change.
  EXPECT_DOUBLE_EQ(FillRatio(Square(0, 2048), causal, 0, 1, 32, true, 128, h200, 32), 1.0);
  EXPECT_DOUBLE_EQ(FillRatio(Square(0, 2048), causal, 0, 1, 16, true, 128, h200, 0), 1.0);
  // llama3's head group at 2048 tokens: 16 heads' backward (256 CTAs in
  // sections of two heads, heavy key tiles first) ends on a longer tail
  // than 32 heads' (measured on one H200: 0.79x the rate).
  const double group = FillRatio(Square(0, 2048), causal, 0, 1, 16, true, 128, h200, 32);
  EXPECT_GT(group, 0.75);
  EXPECT_LT(group, 0.9);
  // 4 heads of 2048 causal rows: 64 forward tiles of 2-17 steps on 132
  // SMs, the longest sets the time (608 / (132 x 17)); 32 heads fill 0.95.
  // Measured on one H200: the causal 2048-token forward at 4 heads 160.0,
  // at 32 heads 516.9 TFLOP/s (0.31).
  const double four = FillRatio(Square(0, 2048), causal, 0, 1, 4, false, 128, h200, 32);
  EXPECT_GT(four, 0.25);
  EXPECT_LT(four, 0.35);
  // Long blocks fill every SM at any of these head counts.
  EXPECT_NEAR(FillRatio(Square(0, 8192), causal, 0, 1, 8, true, 128, h200, 32), 1.0, 0.03);
  // A batch of rows is as many more pairs as heads are.
  const Mask full = MakeMask(false, 8192);
  EXPECT_NEAR(FillRatio(Square(0, 1024), full, 0, 4, 8, false, 128, h200, 32), 1.0, 1e-12);
  // Nothing to run: no change.
  BlockTask empty = Square(0, 0);
  EXPECT_DOUBLE_EQ(FillRatio(empty, full, 0, 1, 4, false, 128, h200, 32), 1.0);
}

// A launch of 2^36 batch rows is computed over at most 2^16 CTAs, and a
// task of 2^31 rows is not cut at all (it fills every SM at any head
// count): both at once, not over hours.
TEST(TileFillTest, HugeLaunchesAreCappedNotWalked) {
  const LaunchGpu h200;
  const Mask full = MakeMask(false, 8192);
  // Every SM busy to the end, against the calibration's 256 CTAs in two
  // waves of 132 (0.97).
  EXPECT_NEAR(FillRatio(Square(0, 1024), full, 0, int64_t{1} << 36, 8, true, 128, h200, 32),
              264.0 / 256.0, 3e-3);
  const Mask causal = MakeMask(true, int64_t{1} << 31);
  EXPECT_DOUBLE_EQ(FillRatio(Square(0, int64_t{1} << 31), causal, 0, 1, 1, false, 128, h200, 32),
                   1.0);
  EXPECT_DOUBLE_EQ(LaunchFill(Square(0, int64_t{1} << 31), causal, 0, 1, 1, false, 128, h200), 1.0);
}

TEST(TileFillTest, StepWasteCountsTheRoundedUpSteps) {
  // A causal block of 1024 at d128 forward: query tile m meets m + 1 key
  // tiles of 128, 36 steps of 128 x 128 pairs over 1024 x 1025 / 2 allowed.
  const double causal_1024 = 36.0 * 128 * 128 / (1024.0 * 1025 / 2);
  EXPECT_NEAR(BlockStepWaste(1024, 0.5, false, 128), causal_1024, 1e-12);
  EXPECT_NEAR(StepWaste(Square(0, 1024), MakeMask(true, 1024), 0, false, 128), causal_1024, 1e-12);
  // Full blocks: 1 where the tiles divide the side; d64's 192-row query
  // tiles round 1024 up to 1152.
  EXPECT_DOUBLE_EQ(BlockStepWaste(1024, 1.0, false, 128), 1.0);
  EXPECT_DOUBLE_EQ(BlockStepWaste(1024, 1.0, false, 64), 1152.0 / 1024);
  // A 776-token causal document: 7 query tiles (the last of 8 rows) meet
  // 1 + 2 + ... + 7 key tiles (the last row's 776 keys need 7), 28 steps.
  const double causal_776 = 28.0 * 128 * 128 / (776.0 * 777 / 2);
  EXPECT_NEAR(BlockStepWaste(776, 0.5, false, 128), causal_776, 1e-12);
  EXPECT_NEAR(StepWaste(Square(0, 776), MakeMask(true, 776), 0, false, 128), causal_776, 1e-12);
  // The backward's key tile n of 128 meets the 64-row query tiles from its
  // diagonal to the end: 2 x (8 - n) for n < 8 at 1024.
  EXPECT_NEAR(BlockStepWaste(1024, 0.5, true, 128), 72.0 * 128 * 64 / (1024.0 * 1025 / 2), 1e-12);
  EXPECT_NEAR(StepWaste(Square(0, 1024), MakeMask(true, 1024), 0, true, 128),
              BlockStepWaste(1024, 0.5, true, 128), 1e-12);
  // No allowed pair: 1.
  BlockTask above = Square(0, 128);
  above.k = PositionRun::Contiguous(512, 128);
  EXPECT_DOUBLE_EQ(StepWaste(above, MakeMask(true, 1024), 0, false, 128), 1.0);
}

TEST(TileFillTest, ModelledCausalFactorFollowsTheMeasuredFactorsPerSide) {
  const LaunchGpu h200;  // 132 SMs
  // Within a wave of tiles (8 heads of 1024 tokens: 64 query tiles, 64 key
  // tiles) a causal launch takes its longest tile, the full one's: 0.5 of
  // the full rate (measured on one H200, h8 d128 at 1024 tokens: 0.49 / 0.49).
  EXPECT_NEAR(ModelledCausalFactor(1024, false, 128, 8, h200), 0.5, 0.01);
  EXPECT_NEAR(ModelledCausalFactor(1024, true, 128, 8, h200), 0.5, 0.01);
  // 32 heads d128, the backward as measured by ring_bench's side sweeps
  // (2026-12-03/04: 0.553-0.565 at 1024, 0.70-0.76 at 2048, 0.83-0.89 at
  // 4096, 0.96-1.03 at 8192), rising with the side.
  EXPECT_NEAR(ModelledCausalFactor(1024, true, 128, 32, h200), 0.56, 0.02);
  EXPECT_NEAR(ModelledCausalFactor(2048, true, 128, 32, h200), 0.73, 0.03);
  EXPECT_NEAR(ModelledCausalFactor(4096, true, 128, 32, h200), 0.86, 0.03);
  EXPECT_NEAR(ModelledCausalFactor(8192, true, 128, 32, h200), 0.99, 0.03);
  double last = 0;
  for (const int64_t side : {1024, 2048, 4096, 8192}) {
    const double f = ModelledCausalFactor(side, false, 128, 32, h200);
    EXPECT_GT(f, last) << side;
    last = f;
  }
  // Nothing to launch: 1.
  EXPECT_DOUBLE_EQ(ModelledCausalFactor(0, false, 128, 32, h200), 1.0);
  EXPECT_DOUBLE_EQ(ModelledCausalFactor(1024, false, 128, 0, h200), 1.0);
}

TEST(TileFillTest, CausalFactorScaleBelowTheMeasuredSidesOnly) {
  const LaunchGpu h200;
  Calibration c;
  c.rate_heads = 32;
  // One factor (no sides measured): 1 everywhere.
  EXPECT_DOUBLE_EQ(CausalFactorScale(c, true, 1024, 128, 32, h200), 1.0);
  c.partial_by_side[1] = {{4096, 0.87}, {8192, 0.97}};
  // At and above the smallest measured side: the measured factors.
  EXPECT_DOUBLE_EQ(CausalFactorScale(c, true, 4096, 128, 32, h200), 1.0);
  EXPECT_DOUBLE_EQ(CausalFactorScale(c, true, 6000, 128, 32, h200), 1.0);
  EXPECT_DOUBLE_EQ(CausalFactorScale(c, true, 32768, 128, 32, h200), 1.0);
  // Below it: the model's factor there over at 4096, at the calibration's
  // heads whatever the task's.
  const double at_1024 = ModelledCausalFactor(1024, true, 128, 32, h200) /
                         ModelledCausalFactor(4096, true, 128, 32, h200);
  EXPECT_LT(at_1024, 0.75);
  EXPECT_NEAR(CausalFactorScale(c, true, 1024, 128, 32, h200), at_1024, 1e-12);
  EXPECT_NEAR(CausalFactorScale(c, true, 1024, 128, 8, h200), at_1024, 1e-12);
  // The forward has no sides here: 1.
  EXPECT_DOUBLE_EQ(CausalFactorScale(c, false, 1024, 128, 32, h200), 1.0);
  // Never above 1: a block under a tile (its pairs past half in one full
  // step) against a measured side of a tile.
  c.partial_by_side[0] = {{128, 0.44}, {1024, 0.71}};
  EXPECT_GT(ModelledCausalFactor(40, false, 128, 32, h200),
            ModelledCausalFactor(128, false, 128, 32, h200));
  EXPECT_DOUBLE_EQ(CausalFactorScale(c, false, 40, 128, 32, h200), 1.0);
  // Without rate_heads: the task's heads.
  c.rate_heads = 0;
  EXPECT_NEAR(CausalFactorScale(c, true, 1024, 128, 8, h200),
              ModelledCausalFactor(1024, true, 128, 8, h200) /
                  ModelledCausalFactor(4096, true, 128, 8, h200),
              1e-12);
}

}  // namespace
}  // namespace ringattn::sim
