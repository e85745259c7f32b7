// Simulator speed: simulated block tasks per second of wall time.
//   ./bazelw run //bench:sim_bench
// The case: W = 256, 1M tokens, causal zigzag, forward + backward.
#include "benchmark/benchmark.h"
#include "sim/simulator.h"

namespace ringattn::sim {
namespace {

void BM_Simulate(benchmark::State& state) {
  SimOptions o;
  o.layout = {.kind = static_cast<LayoutKind>(state.range(2)),
              .world = static_cast<int>(state.range(0))};
  o.mask = {.causal = true};
  o.shape = {1, state.range(1), state.range(1), 32, 8, 128};
  o.backward = true;
  o.calibration = *Calibration::Builtin("h200");
  int64_t tasks = 0;
  double simulated_s = 0;
  for (auto _ : state) {
    const SimResult r = *Simulate(o);
    tasks += r.tasks;
    simulated_s = r.iteration_s;
  }
  state.counters["tasks/s"] =
      benchmark::Counter(static_cast<double>(tasks), benchmark::Counter::kIsRate);
  state.counters["simulated_ms"] = 1e3 * simulated_s;
}
BENCHMARK(BM_Simulate)
    ->ArgNames({"world", "tokens", "layout"})
    ->Args({8, 65536, static_cast<int>(LayoutKind::kZigzag)})
    ->Args({256, 1 << 20, static_cast<int>(LayoutKind::kZigzag)})
    ->Args({256, 1 << 20, static_cast<int>(LayoutKind::kRing)})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace ringattn::sim

BENCHMARK_MAIN();
