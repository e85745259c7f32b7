#include "cli/sim_command.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "cli/npy.h"
#include "core/status_macros.h"
#include "sim/bench_rows.h"

namespace ringattn::cli {
namespace {

// ring-flash-attention README rows, 8xH800 and 8xA100 (efficiency %, as it
// defines it: ring iter/s over single-GPU iter/s on one rank's 8192 tokens
// / 8): fwd, fwd+bwd on each.
struct SeedRow {
  const char* api;
  LayoutKind kind;
  bool varlen;
  double h800[2], a100[2];
};
constexpr SeedRow kSeedRows[] = {
    {"ring_attn", LayoutKind::kRing, false, {52.1, 53.9}, {51.4, 52.5}},
    {"zigzag_ring", LayoutKind::kZigzag, false, {85.2, 90.2}, {81.7, 89.8}},
    {"stripe_attn", LayoutKind::kStripe, false, {74.4, 82.9}, {69.6, 82.6}},
    {"varlen ring_attn", LayoutKind::kRing, true, {49.1, 51.1}, {49.8, 52.1}},
    {"varlen zigzag_ring", LayoutKind::kZigzag, true, {70.2, 75.9}, {72.0, 80.2}},
    {"varlen llama3_attn", LayoutKind::kLlama3, true, {57.0, 58.1}, {51.6, 58.0}},
};

constexpr int kSeedWorld = 8;
constexpr int64_t kSeedTokens = 8192;

sim::SimOptions SeedOptions(const sim::Calibration& c, LayoutKind kind, bool backward,
                            bool seed_implementation) {
  sim::SimOptions o;
  o.layout = {.kind = kind, .world = kSeedWorld};
  if (kind == LayoutKind::kLlama3) o.layout.kv_heads_per_group = 4;
  o.mask = {.causal = true};
  o.shape = {1, kSeedWorld * kSeedTokens, kSeedWorld * kSeedTokens, 32, 8, 128};
  o.dtype = DType::kBFloat16;
  o.backward = backward;
  o.calibration = c;
  o.seed_implementation = seed_implementation;
  return o;
}

// Seconds of one iteration, averaged over the seed's document sets when
// varlen; with world 1 this is the single-GPU baseline on one rank's tokens.
absl::StatusOr<double> SeedSeconds(sim::SimOptions o, bool varlen, int world) {
  o.layout.world = world;
  o.shape.seqlen_q = o.shape.seqlen_k = world * kSeedTokens;
  // World 1: one flash_attn call on one rank's tokens, the kernel alone.
  const auto seconds = [&]() -> absl::StatusOr<double> {
    if (world == 1) return sim::KernelSeconds(o);
    ASSIGN_OR_RETURN(sim::SimResult r, sim::Simulate(o));
    return r.iteration_s;
  };
  if (!varlen) return seconds();
  double total = 0;
  for (const std::vector<int64_t>& local : sim::SeedDocuments()) {
    o.mask.cu_seqlens.clear();
    for (int64_t x : local) o.mask.cu_seqlens.push_back(x * world);
    ASSIGN_OR_RETURN(double s, seconds());
    total += s;
  }
  return total / sim::SeedDocuments().size();
}

}  // namespace

absl::StatusOr<std::string> RunSim(sim::SimOptions options, const std::string& trace_path) {
  options.trace = !trace_path.empty();
  ASSIGN_OR_RETURN(sim::SimResult result, sim::Simulate(options));
  std::string out = sim::FormatSummary(options, result);
  if (options.trace) {
    RETURN_IF_ERROR(WriteFilesAtomically({{trace_path, result.trace_json}}));
    absl::StrAppend(&out, "  trace: ", trace_path,
                    " (open in https://ui.perfetto.dev or chrome://tracing)\n");
  }
  return out;
}

absl::StatusOr<std::vector<SeedComparison>> CompareWithSeed(const sim::Calibration& c) {
  std::vector<SeedComparison> rows;
  for (const SeedRow& row : kSeedRows) {
    const double* measured = c.gpu == "h800" ? row.h800 : c.gpu == "a100" ? row.a100 : nullptr;
    for (bool backward : {false, true}) {
      SeedComparison out{row.api, backward,
                         measured == nullptr ? std::nan("") : measured[backward ? 1 : 0]};
      for (bool seed_implementation : {true, false}) {
        const sim::SimOptions o = SeedOptions(c, row.kind, backward, seed_implementation);
        ASSIGN_OR_RETURN(double ring, SeedSeconds(o, row.varlen, kSeedWorld));
        ASSIGN_OR_RETURN(double single, SeedSeconds(o, row.varlen, 1));
        (seed_implementation ? out.sim_seed_implementation : out.sim_ringattn) =
            100.0 * kSeedWorld * single / ring;
      }
      rows.push_back(out);
    }
  }
  return rows;
}

absl::StatusOr<std::string> SeedTable(const sim::Calibration& c) {
  ASSIGN_OR_RETURN(std::vector<SeedComparison> rows, CompareWithSeed(c));
  std::string out = absl::StrFormat(
      "ring-flash-attention README, 8x%s (the seed measured h800 and a100), efficiency %% as "
      "the seed defines it\n(ring iter/s over single-GPU iter/s on 8192 tokens / 8); "
      "simulated from single-GPU rates and link bandwidths only\n\n"
      "  %-20s %-8s %7s %12s %7s %14s\n",
      c.gpu, "api", "pass", "seed", "sim (seed impl)", "diff", "sim (ringattn)");
  for (const SeedComparison& r : rows) {
    const char* pass = r.backward ? "fwd+bwd" : "fwd";
    if (std::isnan(r.seed)) {
      absl::StrAppendFormat(&out, "  %-20s %-8s %7s %14.1f%% %6s %13.1f%%\n", r.api, pass, "-",
                            r.sim_seed_implementation, "-", r.sim_ringattn);
    } else {
      absl::StrAppendFormat(&out, "  %-20s %-8s %6.1f%% %14.1f%% %+6.1f %13.1f%%\n", r.api, pass,
                            r.seed, r.sim_seed_implementation, r.sim_seed_implementation - r.seed,
                            r.sim_ringattn);
    }
  }
  return out;
}

absl::StatusOr<std::string> Sweep(const sim::SimOptions& base, const SweepSpec& spec) {
  const size_t total = spec.layouts.size() * spec.worlds.size() * spec.tokens_per_rank.size() *
                       spec.link_gbps.size() * spec.ring_sizes.size();
  std::string csv =
      "layout,world,ring_size,tokens_per_rank,link_GBps,iteration_ms,"
      "forward_ms,ideal_ms,efficiency,max_exposed_comm_ms,peak_MiB,tasks\n";
  size_t done = 0;
  for (LayoutKind kind : spec.layouts)
    for (int world : spec.worlds)
      for (int64_t tokens : spec.tokens_per_rank)
        for (double gbps : spec.link_gbps)
          for (int ring_size : spec.ring_sizes) {
            sim::SimOptions o = base;
            o.layout.kind = kind;
            o.layout.world = world;
            o.layout.ring_size = ring_size;
            const int rings = ring_size == 0 ? 1 : world / std::max(ring_size, 1);
            o.shape.batch = base.shape.batch * rings;
            o.shape.seqlen_q = o.shape.seqlen_k = tokens * (ring_size == 0 ? world : ring_size);
            o.calibration.link_gbps = gbps;
            o.trace = false;
            absl::StatusOr<sim::SimResult> r = sim::Simulate(o);
            ++done;
            std::fprintf(stderr, "\rsweep [%-40s] %zu/%zu",
                         std::string(40 * done / total, '#').c_str(), done, total);
            if (!r.ok()) {
              std::fprintf(stderr, "\n");
              return absl::Status(
                  r.status().code(),
                  absl::StrCat(LayoutKindName(kind), " world ", world, ": ", r.status().message()));
            }
            double exposed = 0;
            int64_t peak = 0;
            for (const sim::RankSummary& s : r->ranks) {
              exposed = std::max(exposed, s.exposed_comm_s);
              peak = std::max(peak, s.peak_bytes);
            }
            absl::StrAppendFormat(&csv, "%s,%d,%d,%d,%g,%.4f,%.4f,%.4f,%.4f,%.4f,%.1f,%d\n",
                                  LayoutKindName(kind), world, ring_size, tokens, gbps,
                                  1e3 * r->iteration_s, 1e3 * r->forward_s, 1e3 * r->ideal_s,
                                  r->efficiency, 1e3 * exposed, peak / 1048576.0, r->tasks);
          }
  std::fprintf(stderr, "\n");
  RETURN_IF_ERROR(WriteFilesAtomically({{spec.csv_path, csv}}));
  std::string out = absl::StrCat("sweep: ", total, " runs written to ", spec.csv_path, "\n");
  if (!spec.plot_path.empty()) {
    // Efficiency vs W per layout (first token count, bandwidth, ring size).
    std::string script = absl::StrCat(
        "set datafile separator ','\nset terminal pngcairo size 900,560\n"
        "set output '",
        spec.plot_path,
        "'\nset key bottom left\n"
        "set xlabel 'world W'\nset ylabel 'efficiency (ideal / simulated)'\n"
        "set yrange [0:1.05]\nset logscale x 2\nset grid\n"
        "set title 'simulated ",
        base.calibration.gpu, ", ", spec.tokens_per_rank[0], " tokens per rank'\nplot ");
    std::vector<std::string> plots;
    for (LayoutKind kind : spec.layouts) {
      plots.push_back(
          absl::StrFormat("'%s' using (stringcolumn(1) eq '%s' && $4 == %d && $5 == %g && "
                          "$3 == %d ? $2 : 1/0):9 with linespoints lw 2 title '%s'",
                          spec.csv_path, LayoutKindName(kind), spec.tokens_per_rank[0],
                          spec.link_gbps[0], spec.ring_sizes[0], LayoutKindName(kind)));
    }
    absl::StrAppend(&script, absl::StrJoin(plots, ", \\\n  "), "\n");
    const std::string script_path = spec.plot_path + ".gp";
    RETURN_IF_ERROR(WriteFilesAtomically({{script_path, script}}));
    const std::string command = absl::StrCat("gnuplot '", script_path, "'");
    if (std::system(command.c_str()) != 0) {
      return absl::UnavailableError(
          absl::StrCat("gnuplot failed (is it installed? apt-get install gnuplot-nox); the "
                       "script is ",
                       script_path));
    }
    absl::StrAppend(&out, "plot: ", spec.plot_path, "\n");
  }
  return out;
}

}  // namespace ringattn::cli
