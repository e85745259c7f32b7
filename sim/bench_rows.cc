#include "sim/bench_rows.h"

#include <algorithm>

#include "core/status_macros.h"
#include "sim/simulator.h"

namespace ringattn::sim {

const std::vector<std::vector<int64_t>>& SeedDocuments() {
  static const auto* const documents = new std::vector<std::vector<int64_t>>{
      {0, 8192}, {0, 256, 7648, 8192}, {0, 4096, 8192}, {0, 3104, 6304, 7904, 8064, 8192}};
  return *documents;
}

BenchProblem MakeBenchProblem(const BenchRow& row, const BenchShape& shape,
                              absl::Span<const int64_t> docs) {
  BenchProblem p;
  p.layout.kind = row.kind;
  p.layout.world = shape.world;
  if (row.kind == LayoutKind::kLlama3) {
    p.layout.kv_heads_per_group = std::max<int64_t>(1, shape.kv_heads / 2);
  }
  p.mask.causal = true;
  if (row.varlen) {
    for (int64_t x : docs) p.mask.cu_seqlens.push_back(x * shape.tokens / 8192 * shape.world);
  }
  const int64_t seqlen = shape.world * shape.tokens;
  p.shape = {1, seqlen, seqlen, shape.heads, shape.kv_heads, shape.head_dim};
  return p;
}

SimOptions BenchProblemOptions(const Calibration& calibration, const BenchProblem& problem,
                               bool backward, bool outputs) {
  SimOptions o;
  o.outputs = outputs;
  o.layout = problem.layout;
  o.mask = problem.mask;
  o.shape = problem.shape;
  o.dtype = DType::kBFloat16;
  o.backward = backward;
  o.calibration = calibration;
  return o;
}

absl::StatusOr<double> PredictBenchProblem(const Calibration& calibration,
                                           const BenchProblem& problem, bool backward,
                                           bool outputs) {
  ASSIGN_OR_RETURN(SimResult r,
                   Simulate(BenchProblemOptions(calibration, problem, backward, outputs)));
  return r.iteration_s;
}

absl::StatusOr<double> PredictBenchRow(const Calibration& calibration, const BenchRow& row,
                                       const BenchShape& shape, bool backward) {
  const std::vector<std::vector<int64_t>> dense = {{}};
  const std::vector<std::vector<int64_t>>& sets = row.varlen ? SeedDocuments() : dense;
  double total = 0;
  for (const std::vector<int64_t>& docs : sets) {
    ASSIGN_OR_RETURN(
        double s, PredictBenchProblem(calibration, MakeBenchProblem(row, shape, docs), backward));
    total += s;
  }
  return total / static_cast<double>(sets.size());
}

}  // namespace ringattn::sim
