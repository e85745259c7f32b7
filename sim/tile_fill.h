// How well one attention kernel launch keeps the GPU's SMs busy.
//
// ringattn's Hopper kernels run one CTA per SM over tiles: the forward a
// query tile of a (batch row, head) pair per tile, walking its key tiles;
// the backward a key tile per CTA, walking its query tiles. A tile's time
// is its steps (the step blocks holding an allowed pair; the kernels skip
// the others) plus a fixed start and end. Tiles go to the SM that frees
// first, in the kernel's order (the forward's scheduler hands them out from
// a counter, the backward's grid is dispatched in its index order), so a
// launch of few tiles leaves SMs idle and a causal launch whose heavy tiles
// start late ends on a long tail.
//
// The calibration's rates were measured at one count of (batch row, head)
// pairs (ring_bench's heads, batch 1); FillRatio scales a rate by how much
// better or worse a launch of another count fills the SMs with the same
// tiles. Measured on one H200 (2026-12-03, 48th session: ring_bench
// --world=1 at 4-64 heads, docs/SIMULATOR.md): a head group of llama3 (half
// the heads) at 2048 tokens ran its backward 0.79x the rate of all heads,
// which the fills of the two launches give (0.66 / 0.80); 4 heads at 2048
// tokens fill 64 of 132 SMs.
#ifndef RINGATTN_SIM_TILE_FILL_H_
#define RINGATTN_SIM_TILE_FILL_H_

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/types/span.h"
#include "core/mask.h"
#include "core/schedule.h"
#include "sim/calibration.h"

namespace ringattn::sim {

// The tiles of ringattn's Hopper kernels at a head_dim
// (cuda/flash/traits.h: WarpSpecializedForwardTraits,
// WarpSpecializedBackwardTraits, ColumnSplitBackwardTraits).
struct KernelTiling {
  int64_t tile_rows;  // forward: query rows per tile; backward: keys per CTA
  int64_t step_rows;  // forward: keys per step; backward: query rows per step
  // A tile's fixed start and end (Q or K/V loads, the epilogue's writes),
  // in steps.
  double overhead_steps;
};
KernelTiling TilingOf(bool backward, int64_t head_dim);

// The steps of each tile of one (batch row, head) pair of `task`, by tile
// index (forward: query tiles; backward: key tiles).
std::vector<int64_t> TileSteps(const BlockTask& task, const Mask& mask, int64_t batch_row,
                               const KernelTiling& tiling, bool backward);

// The busy share of `sms` SMs over a launch whose CTAs take `work` (in
// order) each to the SM that frees first: total work / (sms x the last
// SM's end). 1 for no work.
double FillEfficiency(absl::Span<const double> work, int sms);

// What a launch runs on: the GPU's SMs and L2 (the forward's sections fit
// half of it), the element size, and the query heads per kv head.
struct LaunchGpu {
  int sms = 132;
  int64_t l2_bytes = int64_t{50} << 20;
  int64_t element_bytes = 2;
  int64_t group = 1;
};

// The fill of a launch of `task` over batch rows [batch_begin, batch_end)
// and `heads` query heads: its tiles in the kernel's own order
// (cuda/flash/tile_scheduler.cuh: the forward's HeavyFirstTileScheduler in
// L2 sections, the backward's KeyTileOrder).
double LaunchFill(const BlockTask& task, const Mask& mask, int64_t batch_begin, int64_t batch_end,
                  int64_t heads, bool backward, int64_t head_dim, const LaunchGpu& gpu);

// The kernels process whole steps (tile_rows x step_rows pairs, any of
// them allowed): the pairs of `task`'s steps (batch row `batch_row`) over
// its allowed pairs, 1 without any. A block whose sides are not multiples
// of the tiles does the work of its rounded-up steps (a 776-token causal
// document at d128: 7 query tiles of 128, 1.52 its pairs). `allowed`: the
// task's allowed pairs in that row when the caller has them (< 0: counted).
double StepWaste(const BlockTask& task, const Mask& mask, int64_t batch_row, bool backward,
                 int64_t head_dim, double allowed = -1);

// StepWaste of a square block of `side` tokens as ring_bench's
// calibration measures one: causal, full, or between them by density as
// Calibration::Tflops takes its factor (t = (density - 1/2) / (1/2)).
double BlockStepWaste(int64_t side, double density, bool backward, int64_t head_dim);

// The factor on `task`'s FLOPs / rate for its tiles' rounding: its
// StepWaste over the calibration's, BlockStepWaste at the block sides of
// `curve` (a rate curve, (side, TFLOP/s) sorted by side) about the task's
// side, interpolated in log(side) as the rate is (a rate measured on
// square blocks of the curve's sides carries their rounding): 1 for a
// block the calibration measured, 1.29 for a 776-token causal document at
// d128 between the 512- and 1024-token blocks. Only the curve's sides of a
// tile or more are blocks (a flat table's one point at side 1 is a rate,
// not a block: 1); below the first of them, 1 (the rate falls with the
// side there, Calibration::Tflops). `allowed` as StepWaste's.
double TileRounding(const BlockTask& task, const Mask& mask, int64_t batch_row, bool backward,
                    int64_t head_dim, absl::Span<const std::pair<double, double>> curve,
                    double allowed = -1);

// The causal / full rate factor this model gives a square block of `side`
// tokens over `heads` query heads (batch 1): the causal block's allowed
// pairs over its launch's time (its tiles' steps and overheads in the
// kernel's order over the SMs, as LaunchFill) against the full block's.
// What ring_bench's calibration measures per block side (Calibration::
// partial_by_side), the way the simulator carries it to sides the
// calibration did not measure. Below a wave of tiles a causal launch takes
// its longest tile, the full one's: 0.5.
double ModelledCausalFactor(int64_t side, bool backward, int64_t head_dim, int64_t heads,
                            const LaunchGpu& gpu);

// The factor on `calibration`'s causal / full factor at a block of `side`
// tokens (Calibration::Tflops' factor_scale): below the sides the
// calibration measured it at (partial_by_side), ModelledCausalFactor at
// `side` over at the smallest measured side, at the calibration's heads
// (rate_heads; `heads` where that is 0), where the held factor gave a
// small block the rate of the smallest measured one while the factor falls
// steeply as a launch nears one wave of tiles (h32 d128 backward, measured:
// 0.97 at 8192 tokens, 0.71 at 2048, 0.56 at 1024); at most 1. 1 at and above the
// smallest measured side (above the largest the measured factors move
// within +-3 % between runs, around 1, as the model's do), for a
// calibration with one factor, and for the seed's kernels (not ringattn's
// tiles).
double CausalFactorScale(const Calibration& calibration, bool backward, double side,
                         int64_t head_dim, int64_t heads, const LaunchGpu& gpu);

// LaunchFill of the task as it runs over the fill of the same task at the
// calibration's `rate_heads` query heads (batch row batch_begin): the factor
// on a rate measured at rate_heads. 1 when rate_heads is not positive.
double FillRatio(const BlockTask& task, const Mask& mask, int64_t batch_begin, int64_t batch_end,
                 int64_t heads, bool backward, int64_t head_dim, const LaunchGpu& gpu,
                 int64_t rate_heads);

}  // namespace ringattn::sim

#endif  // RINGATTN_SIM_TILE_FILL_H_
