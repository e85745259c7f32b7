// `--layout=auto` (plan and run): the layout the simulator predicts fastest
// for the problem, the world and the documents given.
#ifndef RINGATTN_CLI_AUTO_LAYOUT_H_
#define RINGATTN_CLI_AUTO_LAYOUT_H_

#include <string>

#include "absl/status/statusor.h"
#include "core/dtype.h"
#include "core/layout.h"
#include "core/mask.h"
#include "core/shapes.h"

namespace ringattn::cli {

struct LayoutChoice {
  LayoutKind kind = LayoutKind::kZigzag;
  // E.g. "layout auto: balanced (simulated fwd+bwd on h200: ring 51.9 ms,
  // zigzag 20.8 ms, llama3 4.8 ms, balanced 1.6 ms)\n".
  std::string report;
};

// Simulates every layout that takes the problem (ring, zigzag, stripe
// without documents, llama3, balanced; `base` gives the world, ring size,
// stripe width and kv heads per group) on the built-in h200 calibration and
// returns the fastest (the earliest listed on a tie).
// Errors: InvalidArgument if no layout takes the problem (the last reason).
absl::StatusOr<LayoutChoice> PickLayout(const LayoutSpec& base, const MaskSpec& mask,
                                        const AttentionShape& shape, DType dtype, bool backward);

}  // namespace ringattn::cli

#endif  // RINGATTN_CLI_AUTO_LAYOUT_H_
