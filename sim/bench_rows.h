// The rows of bench/ring_bench (the seed table's layouts, dense, and varlen
// over the seed's four per-rank document sets) as simulator problems, so
// that ring_bench predicts each row exactly as a replay of its measured
// table does (sim/replay_test.cc).
#ifndef RINGATTN_SIM_BENCH_ROWS_H_
#define RINGATTN_SIM_BENCH_ROWS_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/layout.h"
#include "core/mask.h"
#include "core/shapes.h"
#include "sim/calibration.h"
#include "sim/simulator.h"

namespace ringattn::sim {

struct BenchRow {
  const char* name;
  LayoutKind kind;
  bool varlen;
};
inline constexpr BenchRow kBenchRows[] = {
    {"ring", LayoutKind::kRing, false},           {"zigzag", LayoutKind::kZigzag, false},
    {"stripe", LayoutKind::kStripe, false},       {"llama3", LayoutKind::kLlama3, false},
    {"varlen_ring", LayoutKind::kRing, true},     {"varlen_zigzag", LayoutKind::kZigzag, true},
    {"varlen_llama3", LayoutKind::kLlama3, true}, {"varlen_balanced", LayoutKind::kBalanced, true},
};

// The seed's varlen benchmark's per-rank document sets of 8192 tokens;
// boundaries scale with the tokens per rank and the world.
const std::vector<std::vector<int64_t>>& SeedDocuments();

// A row's shape: W ranks of `tokens` tokens each, causal.
struct BenchShape {
  int world = 1;
  int64_t tokens = 8192, heads = 32, kv_heads = 32, head_dim = 128;
};

struct BenchProblem {
  LayoutSpec layout;
  MaskSpec mask;
  AttentionShape shape;
};

// The problem of `row` for one per-rank document set `docs` (ignored unless
// the row is varlen). llama3 gathers kv_heads / 2 heads per step.
BenchProblem MakeBenchProblem(const BenchRow& row, const BenchShape& shape,
                              absl::Span<const int64_t> docs);

// The simulated iteration (forward, or forward and backward) of `row`,
// averaged over the document sets when varlen, every rank on its own GPU.
absl::StatusOr<double> PredictBenchRow(const Calibration& calibration, const BenchRow& row,
                                       const BenchShape& shape, bool backward);
// The simulator's options for one problem as ring_bench runs it (bf16,
// every rank on its own GPU); outputs: SimOptions::outputs (ring_bench
// --outputs).
SimOptions BenchProblemOptions(const Calibration& calibration, const BenchProblem& problem,
                               bool backward, bool outputs = false);
// The same problem's simulated iteration.
absl::StatusOr<double> PredictBenchProblem(const Calibration& calibration,
                                           const BenchProblem& problem, bool backward,
                                           bool outputs = false);

}  // namespace ringattn::sim

#endif  // RINGATTN_SIM_BENCH_ROWS_H_
