#include "cli/auto_layout.h"

#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/status_macros.h"
#include "sim/simulator.h"

namespace ringattn::cli {

absl::StatusOr<LayoutChoice> PickLayout(const LayoutSpec& base, const MaskSpec& mask,
                                        const AttentionShape& shape, DType dtype, bool backward) {
  constexpr absl::string_view kGpu = "h200";
  ASSIGN_OR_RETURN(sim::Calibration calibration, sim::Calibration::Builtin(kGpu));
  std::vector<LayoutKind> candidates = {LayoutKind::kRing, LayoutKind::kZigzag, LayoutKind::kStripe,
                                        LayoutKind::kLlama3, LayoutKind::kBalanced};
  LayoutChoice best;
  double best_s = std::numeric_limits<double>::infinity();
  std::vector<std::string> times;
  absl::Status last_error;
  for (LayoutKind kind : candidates) {
    sim::SimOptions o;
    o.layout = base;
    o.layout.kind = kind;
    o.mask = mask;
    o.shape = shape;
    o.dtype = dtype;
    o.backward = backward;
    o.calibration = calibration;
    absl::StatusOr<sim::SimResult> r = sim::Simulate(o);
    if (!r.ok()) {
      last_error = r.status();
      continue;
    }
    times.push_back(absl::StrFormat("%s %.3f ms", LayoutKindName(kind), 1e3 * r->iteration_s));
    if (r->iteration_s < best_s) {
      best_s = r->iteration_s;
      best.kind = kind;
    }
  }
  if (times.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--layout=auto: no layout takes the problem; ", last_error.message()));
  }
  best.report = absl::StrCat("layout auto: ", LayoutKindName(best.kind), " (simulated ",
                             backward ? "fwd+bwd" : "fwd", " on ", kGpu, ": ",
                             absl::StrJoin(times, ", "), ")\n");
  return best;
}

}  // namespace ringattn::cli
