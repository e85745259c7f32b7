#include "sim/tile_fill.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <queue>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "cuda/flash/tile_scheduler.cuh"
#include "cuda/kernel_args.h"
#include "sim/calibration.h"

namespace ringattn::sim {
namespace {

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Whether query rows [i0, i1) and key rows [j0, j1) of `task` hold an
// allowed pair in batch row `b`.
bool AnyAllowed(const BlockTask& task, const Mask& mask, int64_t b, int64_t i0, int64_t i1,
                int64_t j0, int64_t j1) {
  if (task.q.contiguous() && task.k.contiguous()) {
    BlockTask sub = task;
    sub.q = task.q.Sub(i0, i1);
    sub.k = task.k.Sub(j0, j1);
    return CountAllowedPairs(sub, mask, b) > 0;
  }
  // Positions grow with the row, so the rows of [j0, j1) at positions <= x
  // are CountAtMost(x) clamped to the range.
  const auto keys_at_most = [&](int64_t x) { return std::clamp(task.k.CountAtMost(x), j0, j1); };
  const int64_t k_max = mask.KeyLimit(b) - 1;
  for (int64_t i = i0; i < i1; ++i) {
    const int64_t pos = task.q.At(i);
    const auto [doc_begin, doc_end] = mask.DocumentBounds(pos);
    const int64_t lo = std::max(pos + mask.min_delta(), doc_begin);
    const int64_t hi = std::min({pos + mask.max_delta(), k_max, doc_end - 1});
    if (hi >= lo && keys_at_most(hi) > keys_at_most(lo - 1)) return true;
  }
  return false;
}

// Under a band mask (no documents) on contiguous runs, the step blocks of
// tile rows [a0, a1) that hold an allowed pair, in O(1): the positions the
// tile's rows may meet form one interval (forward: keys in [q0 + min_delta,
// q1 + max_delta], at most the key limit; backward: queries in
// [k0 - max_delta, k1 - min_delta] of the tile's keys under the limit),
// and the step blocks it touches are consecutive.
int64_t BandSteps(const BlockTask& task, const Mask& mask, int64_t b, int64_t a0, int64_t a1,
                  int64_t step_len, bool backward) {
  using Wide = __int128;  // the unbounded deltas are far beyond any position
  const Wide k_max = mask.KeyLimit(b) - 1;
  Wide lo, hi;
  const PositionRun& steps = backward ? task.q : task.k;
  if (backward) {
    const Wide k0 = task.k.base + a0;
    const Wide k1 = std::min<Wide>(task.k.base + a1 - 1, k_max);
    if (k0 > k1) return 0;
    lo = k0 - mask.max_delta();
    hi = k1 - mask.min_delta();
  } else {
    lo = Wide{task.q.base} + a0 + mask.min_delta();
    hi = std::min<Wide>(Wide{task.q.base} + a1 - 1 + mask.max_delta(), k_max);
  }
  const Wide first = std::max<Wide>(lo - steps.base, 0);
  const Wide last = std::min<Wide>(hi - steps.base, steps.length - 1);
  if (first > last) return 0;
  return static_cast<int64_t>(last / step_len - first / step_len + 1);
}

// Without documents on any runs (stripes): the step blocks the tile rows
// [a0, a1) meet, in O(rows). Each tile row may meet one interval of step
// positions (`range` of its position); the step rows there are the run's
// rows from CountAtMost(lo - 1) to CountAtMost(hi), and both ends grow with
// the tile row, so the blocks they touch are counted in order, each once.
template <typename Range>
int64_t OrderedRangeSteps(const PositionRun& tile_run, const PositionRun& step_run, int64_t a0,
                          int64_t a1, int64_t step_len, const Range& range) {
  using Wide = __int128;
  const Wide below = Wide{step_run.base} - 1, above = Wide{step_run.last()} + 1;
  int64_t n = 0, last_block = -1;
  for (int64_t a = a0; a < a1; ++a) {
    const auto [lo, hi] = range(tile_run.At(a));
    if (lo > hi) continue;
    const int64_t first =
        step_run.CountAtMost(static_cast<int64_t>(std::clamp<Wide>(lo - 1, below, above)));
    const int64_t end =
        step_run.CountAtMost(static_cast<int64_t>(std::clamp<Wide>(hi, below, above)));
    if (first >= end) continue;
    const int64_t b0 = std::max(first / step_len, last_block + 1), b1 = (end - 1) / step_len;
    if (b1 >= b0) n += b1 - b0 + 1;
    last_block = std::max(last_block, b1);
  }
  return n;
}

// The launch's CTAs' work in the kernel's order: the steps of each
// (tile, head, batch row) plus the tile's overhead (tiles without a step
// are skipped, as the kernels skip them). `steps_by_row[b][tile]`;
// `heads` query heads over those rows; `step_count`: the steps of a tile
// whose every step holds an allowed pair.
std::vector<double> LaunchWork(const std::vector<std::vector<int64_t>>& steps_by_row, int64_t heads,
                               bool backward, const KernelTiling& tiling, int64_t rows_k,
                               int64_t head_dim, int64_t step_count, const LaunchGpu& gpu) {
  using cuda::flash::HeavyFirstTileScheduler;
  const int64_t batch = static_cast<int64_t>(steps_by_row.size());
  const int tiles = steps_by_row.empty() ? 0 : static_cast<int>(steps_by_row[0].size());
  std::vector<double> work;
  if (tiles == 0 || heads <= 0) return work;
  const int64_t group = std::clamp<int64_t>(gpu.group, 1, heads);
  work.reserve(static_cast<size_t>(tiles * heads * batch));
  const auto add = [&](int tile, int64_t b) {
    const int64_t steps = steps_by_row[static_cast<size_t>(b)][static_cast<size_t>(tile)];
    if (steps > 0) work.push_back(static_cast<double>(steps) + tiling.overhead_steps);
  };
  if (backward) {
    cuda::ForwardBlockArgs a;
    a.batch = batch;
    a.num_heads = heads;
    a.num_kv_heads = heads / group;
    a.kv_head_end = heads / group;
    a.k_pos.length = rows_k;
    const HeavyFirstTileScheduler order = cuda::flash::KeyTileOrder(a, tiling.tile_rows);
    for (int64_t t = 0; t < order.Count(); ++t) {
      const cuda::flash::KeyTileItem item = cuda::flash::KeyTileAt(order, t);
      add(item.n_tile, item.batch);
    }
    return work;
  }
  bool every_pair_allowed = true;
  for (const std::vector<int64_t>& row : steps_by_row) {
    for (int64_t steps : row) every_pair_allowed = every_pair_allowed && steps == step_count;
  }
  const HeavyFirstTileScheduler order = HeavyFirstTileScheduler::Sections(
      tiles, heads, batch, group, 2 * rows_k * head_dim * gpu.element_bytes,
      cuda::flash::L2SectionBudget(static_cast<int>(std::min<int64_t>(gpu.l2_bytes, INT32_MAX))),
      gpu.sms, every_pair_allowed);
  for (int64_t t = 0; t < order.Count(); ++t) {
    const cuda::flash::QueryTile tile = order.At(t);
    add(tile.m, tile.batch);
  }
  return work;
}

}  // namespace

KernelTiling TilingOf(bool backward, int64_t head_dim) {
  if (!backward) {
    // Forward: 64 query rows per consumer warpgroup, 3 of them at d64, 2
    // otherwise; key tiles of 128 (80 at d256); a tile starts with its Q
    // and ends with its O.
    return {head_dim <= 64 ? 192 : 128, head_dim > 128 ? 80 : 128, 1.0};
  }
  // Backward: 128 keys per CTA (64 at d256's column split), query tiles of
  // 64 (128 at d64); K, V in and dK, dV out.
  return {head_dim > 128 ? 64 : 128, head_dim <= 64 ? 128 : 64, 2.0};
}

std::vector<int64_t> TileSteps(const BlockTask& task, const Mask& mask, int64_t batch_row,
                               const KernelTiling& tiling, bool backward) {
  const int64_t rows_q = task.q.length, rows_k = task.k.length;
  const int64_t tile_len = tiling.tile_rows, step_len = tiling.step_rows;
  const int64_t tile_total = backward ? rows_k : rows_q;
  const int64_t step_total = backward ? rows_q : rows_k;
  const int64_t tiles = CeilDiv(tile_total, tile_len);
  std::vector<int64_t> steps(static_cast<size_t>(tiles), 0);
  // Closed forms where the mask has no documents; pair blocks otherwise.
  const bool band = task.q.contiguous() && task.k.contiguous() && !mask.has_documents();
  for (int64_t tile = 0; tile < tiles; ++tile) {
    const int64_t a0 = tile * tile_len, a1 = std::min(tile_total, a0 + tile_len);
    if (band) {
      steps[static_cast<size_t>(tile)] =
          BandSteps(task, mask, batch_row, a0, a1, step_len, backward);
      continue;
    }
    if (!mask.has_documents()) {
      using Wide = __int128;
      using Interval = std::pair<Wide, Wide>;
      const Wide k_max = mask.KeyLimit(batch_row) - 1;
      // Backward: the queries a key meets (none past the key limit);
      // forward: the keys a query meets.
      const auto queries_of = [&](int64_t k) {
        return k > k_max ? Interval{1, 0}
                         : Interval{Wide{k} - mask.max_delta(), Wide{k} - mask.min_delta()};
      };
      const auto keys_of = [&](int64_t q) {
        return Interval{Wide{q} + mask.min_delta(),
                        std::min<Wide>(Wide{q} + mask.max_delta(), k_max)};
      };
      steps[static_cast<size_t>(tile)] =
          backward ? OrderedRangeSteps(task.k, task.q, a0, a1, step_len, queries_of)
                   : OrderedRangeSteps(task.q, task.k, a0, a1, step_len, keys_of);
      continue;
    }
    int64_t n = 0;
    for (int64_t s0 = 0; s0 < step_total; s0 += step_len) {
      const int64_t s1 = std::min(step_total, s0 + step_len);
      n += backward ? AnyAllowed(task, mask, batch_row, s0, s1, a0, a1)
                    : AnyAllowed(task, mask, batch_row, a0, a1, s0, s1);
    }
    steps[static_cast<size_t>(tile)] = n;
  }
  return steps;
}

double FillEfficiency(absl::Span<const double> work, int sms) {
  double total = 0, end = 0;
  if (static_cast<int64_t>(work.size()) <= sms) {
    for (double w : work) {
      total += w;
      end = std::max(end, w);
    }
  } else {
    std::priority_queue<double, std::vector<double>, std::greater<double>> free_at;
    for (int i = 0; i < sms; ++i) free_at.push(0.0);
    for (double w : work) {
      const double start = free_at.top();
      free_at.pop();
      free_at.push(start + w);
      total += w;
      end = std::max(end, start + w);
    }
  }
  return end > 0 ? total / (sms * end) : 1.0;
}

namespace {

// The most CTAs a fill is computed over: a launch of more is computed as
// one of this many (fewer batch rows, then fewer heads): its tail is then
// under 1 % of its time either way. And the most tile x step blocks a task
// is cut into: a larger task (sides of about 256k rows) fills the SMs
// many times over at any head count, so its ratio is 1.
constexpr int64_t kMaxCtas = int64_t{1} << 16;
constexpr int64_t kMaxBlocks = int64_t{1} << 22;

struct Sizes {
  int64_t tiles, step_count;
};
Sizes SizesOf(const BlockTask& task, const KernelTiling& tiling, bool backward) {
  const int64_t tile_total = backward ? task.k.length : task.q.length;
  const int64_t step_total = backward ? task.q.length : task.k.length;
  return {CeilDiv(tile_total, tiling.tile_rows), CeilDiv(step_total, tiling.step_rows)};
}

// The fill of `heads` heads over `rows` batch rows from batch_begin, at
// most kMaxCtas CTAs of them (whole kv head groups).
double CappedFill(const BlockTask& task, const Mask& mask, int64_t batch_begin, int64_t rows,
                  int64_t heads, bool backward, int64_t head_dim, const LaunchGpu& gpu,
                  const KernelTiling& tiling, const Sizes& sizes) {
  const int64_t tiles = std::max<int64_t>(sizes.tiles, 1);
  const int64_t group = std::clamp<int64_t>(gpu.group, 1, std::max<int64_t>(heads, 1));
  if (tiles * heads > kMaxCtas) {
    heads = std::max(group, kMaxCtas / tiles / group * group);
    rows = 1;
  } else {
    rows = std::clamp<int64_t>(kMaxCtas / (tiles * heads), 1, rows);
  }
  std::vector<std::vector<int64_t>> steps;
  for (int64_t b = batch_begin; b < batch_begin + rows; ++b) {
    if (b > batch_begin && !mask.has_key_lengths()) {
      steps.push_back(steps.front());  // every row's mask is the same
    } else {
      steps.push_back(TileSteps(task, mask, b, tiling, backward));
    }
  }
  // A simulation asks for the same launches over and over (every rank's
  // full blocks, every step): the fill of each launch is kept, by what it
  // depends on, per thread (a simulation's ranks share one).
  std::vector<int64_t> key = {backward, heads,   rows,         gpu.group,         task.k.length,
                              head_dim, gpu.sms, gpu.l2_bytes, gpu.element_bytes, sizes.step_count};
  for (const std::vector<int64_t>& row : steps) {
    key.insert(key.end(), row.begin(), row.end());
    if (!mask.has_key_lengths()) break;  // the rows are copies
  }
  thread_local absl::flat_hash_map<std::vector<int64_t>, double> fills;
  if (const auto it = fills.find(key); it != fills.end()) return it->second;
  const double fill = FillEfficiency(
      LaunchWork(steps, heads, backward, tiling, task.k.length, head_dim, sizes.step_count, gpu),
      gpu.sms);
  if (fills.size() >= 4096) fills.clear();
  fills.emplace(std::move(key), fill);
  return fill;
}

}  // namespace

double LaunchFill(const BlockTask& task, const Mask& mask, int64_t batch_begin, int64_t batch_end,
                  int64_t heads, bool backward, int64_t head_dim, const LaunchGpu& gpu) {
  const KernelTiling tiling = TilingOf(backward, head_dim);
  const Sizes sizes = SizesOf(task, tiling, backward);
  if (batch_end <= batch_begin || heads <= 0 || sizes.tiles * sizes.step_count > kMaxBlocks) {
    return 1.0;
  }
  return CappedFill(task, mask, batch_begin, batch_end - batch_begin, heads, backward, head_dim,
                    gpu, tiling, sizes);
}

double FillRatio(const BlockTask& task, const Mask& mask, int64_t batch_begin, int64_t batch_end,
                 int64_t heads, bool backward, int64_t head_dim, const LaunchGpu& gpu,
                 int64_t rate_heads) {
  if (rate_heads <= 0 || gpu.sms <= 0 || heads <= 0 || batch_end <= batch_begin) return 1.0;
  if (heads == rate_heads && batch_end - batch_begin == 1) return 1.0;
  const KernelTiling tiling = TilingOf(backward, head_dim);
  const Sizes sizes = SizesOf(task, tiling, backward);
  if (sizes.tiles * sizes.step_count > kMaxBlocks) return 1.0;
  const double as_run = CappedFill(task, mask, batch_begin, batch_end - batch_begin, heads,
                                   backward, head_dim, gpu, tiling, sizes);
  const double as_calibrated =
      CappedFill(task, mask, batch_begin, 1, rate_heads, backward, head_dim, gpu, tiling, sizes);
  return as_run / as_calibrated;
}

double ModelledCausalFactor(int64_t side, bool backward, int64_t head_dim, int64_t heads,
                            const LaunchGpu& gpu) {
  if (side <= 0 || heads <= 0 || gpu.sms <= 0) return 1.0;
  const KernelTiling tiling = TilingOf(backward, head_dim);
  double rate[2];
  for (const bool causal : {false, true}) {
    MaskSpec spec;
    spec.causal = causal;
    const absl::StatusOr<Mask> mask = Mask::Create(spec, 1, side, side);
    if (!mask.ok()) return 1.0;
    BlockTask task;
    task.q = task.k = PositionRun::Contiguous(0, side);
    task.kv_head_end = std::max<int64_t>(1, heads / std::max<int64_t>(gpu.group, 1));
    double steps = 0;
    for (const int64_t s : TileSteps(task, *mask, 0, tiling, backward)) {
      if (s > 0) steps += static_cast<double>(s) + tiling.overhead_steps;
    }
    const double fill = LaunchFill(task, *mask, 0, 1, heads, backward, head_dim, gpu);
    const double n = static_cast<double>(side);
    const double pairs = causal ? n * (n + 1) / 2 : n * n;
    rate[causal] = pairs * fill / (steps * static_cast<double>(heads));
  }
  return rate[1] / rate[0];
}

double CausalFactorScale(const Calibration& calibration, bool backward, double side,
                         int64_t head_dim, int64_t heads, const LaunchGpu& gpu) {
  const std::vector<std::pair<double, double>>& measured =
      calibration.partial_by_side[backward ? 1 : 0];
  if (measured.empty() || !(side > 0) || side >= measured.front().first) return 1.0;
  const double edge = measured.front().first;
  const int64_t at =
      calibration.rate_heads > 0 ? static_cast<int64_t>(calibration.rate_heads) : heads;
  const double there =
      ModelledCausalFactor(static_cast<int64_t>(std::llround(edge)), backward, head_dim, at, gpu);
  const double here =
      ModelledCausalFactor(static_cast<int64_t>(std::llround(side)), backward, head_dim, at, gpu);
  // At most 1: below a tile a block's causal pairs grow past half while it
  // takes the full one's one step (0.51 at 40 tokens against 0.50 at 128),
  // which the rate measured at the smallest side holds already.
  return there > 0 ? std::min(1.0, here / there) : 1.0;
}

double TileRounding(const BlockTask& task, const Mask& mask, int64_t batch_row, bool backward,
                    int64_t head_dim, absl::Span<const std::pair<double, double>> curve,
                    double allowed) {
  const double side =
      std::sqrt(static_cast<double>(task.q.length) * static_cast<double>(task.k.length));
  const KernelTiling tiling = TilingOf(backward, head_dim);
  const double tile = static_cast<double>(std::max(tiling.tile_rows, tiling.step_rows));
  // The curve's block sides about `side`: the last at or below it, the
  // first above it (the two points the interpolation reads).
  double first = 0, below = 0, above = 0;
  for (const auto& [c, tflops] : curve) {
    if (c < tile) continue;
    if (first == 0) first = c;
    if (c > side) {
      above = c;
      break;
    }
    below = c;
  }
  if (first == 0 || side <= first) return 1;
  if (allowed < 0) allowed = static_cast<double>(CountAllowedPairs(task, mask, batch_row));
  const double density = allowed / (static_cast<double>(task.q.length) * task.k.length);
  std::vector<std::pair<double, double>> waste;
  for (double c : {below, above}) {
    if (c > 0)
      waste.push_back({c, BlockStepWaste(static_cast<int64_t>(c), density, backward, head_dim)});
  }
  return StepWaste(task, mask, batch_row, backward, head_dim, allowed) /
         InterpolateInLogSide(waste, side);
}

double StepWaste(const BlockTask& task, const Mask& mask, int64_t batch_row, bool backward,
                 int64_t head_dim, double allowed) {
  if (allowed < 0) allowed = static_cast<double>(CountAllowedPairs(task, mask, batch_row));
  if (allowed <= 0) return 1;
  const KernelTiling tiling = TilingOf(backward, head_dim);
  const int64_t tile_total = backward ? task.k.length : task.q.length;
  const int64_t step_total = backward ? task.q.length : task.k.length;
  double steps = 0;
  if (allowed == static_cast<double>(tile_total) * static_cast<double>(step_total)) {
    // Every pair allowed: every step of every tile (a ring's off-diagonal
    // blocks), without walking the tiles.
    steps = static_cast<double>(CeilDiv(tile_total, tiling.tile_rows)) *
            static_cast<double>(CeilDiv(step_total, tiling.step_rows));
  } else {
    for (int64_t s : TileSteps(task, mask, batch_row, tiling, backward)) steps += s;
  }
  return steps * static_cast<double>(tiling.tile_rows * tiling.step_rows) / allowed;
}

double BlockStepWaste(int64_t side, double density, bool backward, int64_t head_dim) {
  const KernelTiling tiling = TilingOf(backward, head_dim);
  const int64_t tile = tiling.tile_rows, step = tiling.step_rows;
  const double n = static_cast<double>(side);
  const double full =
      static_cast<double>(CeilDiv(side, tile) * tile * CeilDiv(side, step) * step) / (n * n);
  // Causal (query i sees keys <= i): a forward tile of rows [a, b) steps
  // over keys [0, b); a backward tile of keys [a, b) over queries [a, n).
  double steps = 0;
  for (int64_t a = 0; a < side; a += tile) {
    const int64_t b = std::min(side, a + tile);
    steps += static_cast<double>(backward ? CeilDiv(side, step) - a / step : CeilDiv(b, step));
  }
  const double causal = steps * static_cast<double>(tile * step) / (n * (n + 1) / 2);
  const double t = std::clamp((density - 0.5) / 0.5, 0.0, 1.0);
  return causal * (1 - t) + full * t;
}

}  // namespace ringattn::sim
