// CPU benchmarks: the blocked Eigen kernel (GFLOP/s of one block task) and
// schedule generation (block tasks per second, what the simulator will pay).
//   ./bazelw run //bench:cpu_bench
#include <vector>

#include "benchmark/benchmark.h"
#include "core/layout.h"
#include "core/mask.h"
#include "core/online_softmax.h"
#include "core/schedule.h"
#include "cpu_reference/blocked_attention.h"
#include "tests/test_util.h"

namespace ringattn {
namespace {

template <typename T>
void BM_BlockForward(benchmark::State& state) {
  const int64_t seqlen = state.range(0), head_dim = state.range(1);
  const int64_t heads = 4;
  const Mask mask = *Mask::Create({.causal = state.range(2) != 0}, 1, seqlen, seqlen);
  const std::vector<T> q = testing::RandomNormal<T>(seqlen * heads * head_dim, 1);
  const std::vector<T> k = testing::RandomNormal<T>(seqlen * heads * head_dim, 2);
  const std::vector<T> v = testing::RandomNormal<T>(seqlen * heads * head_dim, 3);
  const TensorStrides st = DenseStrides(seqlen, heads, head_dim);
  const cpu::BlockProblem problem{.batch = 1,
                                  .q_rows = seqlen,
                                  .k_rows = seqlen,
                                  .num_heads = heads,
                                  .num_kv_heads = heads,
                                  .head_dim = head_dim,
                                  .softmax_scale = DefaultSoftmaxScale(head_dim),
                                  .mask = &mask};
  const BlockTask task{
      0, PositionRun::Contiguous(0, seqlen), 0, PositionRun::Contiguous(0, seqlen), 0, heads};
  for (auto _ : state) {
    cpu::AttentionOutput<T> out = cpu::EmptyOutput<T>(1, seqlen, heads, head_dim);
    benchmark::DoNotOptimize(cpu::BlockForward<T>(task, problem, {q, st}, {k, st}, {v, st}, &out));
  }
  const double flops = ForwardFlops(task, mask, 0, 1, 1, head_dim);
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_BlockForward<float>)
    ->ArgNames({"seqlen", "head_dim", "causal"})
    ->Args({1024, 64, 0})
    ->Args({1024, 64, 1})
    ->Args({1024, 128, 1})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_BlockForward<double>)
    ->ArgNames({"seqlen", "head_dim", "causal"})
    ->Args({1024, 64, 1})
    ->Unit(benchmark::kMillisecond);

// The fp32 ring-state merge (core/lse_math.h) over rows of head_dim.
void BM_MergeState(benchmark::State& state) {
  const int64_t rows = 1 << 14, head_dim = state.range(0);
  SoftmaxState<float> running(rows, head_dim), block(rows, head_dim);
  const std::vector<float> o = testing::RandomNormal<float>(rows * head_dim, 1);
  const std::vector<float> lse = testing::RandomNormal<float>(rows, 2, 3.0);
  for (int64_t r = 0; r < rows; ++r) {
    std::copy(o.begin() + r * head_dim, o.begin() + (r + 1) * head_dim, block.o(r));
    block.lse(r) = lse[r];
    running.lse(r) = -lse[r];
  }
  for (auto _ : state) {
    benchmark::DoNotOptimize(running.Merge(block));
    benchmark::ClobberMemory();
  }
  // Reads O, O_b and writes O: 12 bytes per element.
  state.counters["GB/s"] = benchmark::Counter(12.0 * rows * head_dim * 1e-9,
                                              benchmark::Counter::kIsIterationInvariantRate);
  state.counters["rows/s"] =
      benchmark::Counter(static_cast<double>(rows), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_MergeState)->ArgName("head_dim")->Arg(64)->Arg(128);

void BM_ScheduleTasks(benchmark::State& state) {
  const int world = static_cast<int>(state.range(0));
  const int64_t seqlen = state.range(1);
  const Layout layout =
      *Layout::Create({.kind = static_cast<LayoutKind>(state.range(2)), .world = world}, 1, seqlen);
  const Mask mask = *Mask::Create({.causal = true}, 1, seqlen, seqlen);
  const Schedule schedule = *Schedule::Create(layout, mask, 8);
  int64_t tasks = 0;
  for (auto _ : state) {
    for (int rank = 0; rank < world; ++rank) {
      for (int step = 0; step < schedule.num_steps(); ++step) {
        tasks += static_cast<int64_t>(schedule.Tasks(rank, step)->size());
      }
    }
  }
  state.counters["tasks/s"] =
      benchmark::Counter(static_cast<double>(tasks), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ScheduleTasks)
    ->ArgNames({"world", "seqlen", "layout"})
    ->Args({8, 1 << 16, static_cast<int>(LayoutKind::kZigzag)})
    ->Args({256, 1 << 20, static_cast<int>(LayoutKind::kZigzag)})
    ->Args({256, 1 << 20, static_cast<int>(LayoutKind::kStripe)})
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace ringattn

BENCHMARK_MAIN();
