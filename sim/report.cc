// What a simulation prints: the summary table and the Chrome trace.
#include "sim/report.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace ringattn::sim {
namespace internal {

std::string TraceJson(SimNetwork& net, int world) {
  std::string out = "{\"displayTimeUnit\": \"ms\", \"traceEvents\": [\n";
  bool first = true;
  for (int r = 0; r < world; ++r) {
    for (int lane = 0; lane < 2; ++lane) {
      absl::StrAppendFormat(&out,
                            "%s{\"name\": \"thread_name\", \"ph\": \"M\", \"pid\": %d, "
                            "\"tid\": %d, \"args\": {\"name\": \"%s\"}}",
                            first ? "" : ",\n", r, lane, lane == 0 ? "compute" : "comm");
      first = false;
    }
    absl::StrAppendFormat(&out,
                          ",\n{\"name\": \"process_name\", \"ph\": \"M\", "
                          "\"pid\": %d, \"args\": {\"name\": \"rank %d\"}}",
                          r, r);
    for (const Event& e : net.clock(r).events) {
      absl::StrAppendFormat(&out,
                            ",\n{\"name\": \"%s\", \"ph\": \"X\", \"pid\": %d, \"tid\": %d, "
                            "\"ts\": %.3f, \"dur\": %.3f, \"args\": {%s}}",
                            e.name, r, e.lane, 1e6 * e.start_s, 1e6 * (e.end_s - e.start_s),
                            e.args);
    }
  }
  absl::StrAppend(&out, "\n]}\n");
  return out;
}

}  // namespace internal

std::string FormatSummary(const SimOptions& o, const SimResult& r) {
  std::string out = absl::StrFormat(
      "simulated %s, world %d, %s, %s, %s on %s (%s)\n"
      "  iteration %.3f ms (forward %.3f ms), ideal %.3f ms, efficiency %.1f%%, "
      "%d block tasks\n",
      LayoutKindName(o.layout.kind), o.layout.world, o.shape.DebugString(),
      o.mask.causal ? "causal" : "full", DTypeName(o.dtype), o.calibration.gpu,
      o.backward ? "fwd+bwd" : "fwd", 1e3 * r.iteration_s, 1e3 * r.forward_s, 1e3 * r.ideal_s,
      100 * r.efficiency, r.tasks);
  double max_compute = 0, sum_compute = 0, max_exposed = 0, sum_exposed = 0;
  int64_t peak = 0;
  for (const RankSummary& s : r.ranks) {
    max_compute = std::max(max_compute, s.compute_s);
    sum_compute += s.compute_s;
    max_exposed = std::max(max_exposed, s.exposed_comm_s);
    sum_exposed += s.exposed_comm_s;
    peak = std::max(peak, s.peak_bytes);
  }
  const double n = static_cast<double>(r.ranks.size());
  absl::StrAppendFormat(&out,
                        "  exposed comm: mean %.3f ms, max %.3f ms; compute imbalance (max/mean) "
                        "%.3f; peak memory per rank %.1f MiB\n",
                        1e3 * sum_exposed / n, 1e3 * max_exposed, max_compute / (sum_compute / n),
                        peak / 1048576.0);
  absl::StrAppend(&out, "  rank   compute_ms  exposed_ms  idle_ms  peak_MiB\n");
  const size_t shown = std::min<size_t>(r.ranks.size(), 16);
  for (size_t i = 0; i < shown; ++i) {
    const RankSummary& s = r.ranks[i];
    absl::StrAppendFormat(&out, "  %4d %12.3f %11.3f %8.3f %9.1f\n", i, 1e3 * s.compute_s,
                          1e3 * s.exposed_comm_s, 1e3 * (r.iteration_s - s.compute_s),
                          s.peak_bytes / 1048576.0);
  }
  if (shown < r.ranks.size()) {
    absl::StrAppendFormat(&out, "  ... (%d ranks)\n", r.ranks.size());
  }
  return out;
}

}  // namespace ringattn::sim
