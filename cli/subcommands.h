// The subcommands of the `ringattn` binary and the flag files they read.
// Every flag is defined in exactly one file, and a subcommand accepts the
// flags of the files it lists and no others:
//   cli/problem_flags.cc  shape, mask and layout      plan, run, sim
//   cli/compute_flags.cc  dtype and backward          run, sim
//   cli/run_flags.cc      inputs, outputs, backends   run
//   cli/sim_flags.cc      calibration, links, sweeps  sim
// Each *_flags.cc turns its flags into the subcommand's options struct
// (PlanOptions, RunOptions, sim::SimOptions + SweepSpec) and runs it.
#ifndef RINGATTN_CLI_SUBCOMMANDS_H_
#define RINGATTN_CLI_SUBCOMMANDS_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/dtype.h"
#include "core/layout.h"
#include "core/mask.h"
#include "core/shapes.h"

namespace ringattn::cli {

// The problem flags (cli/problem_flags.cc). `defaults` are the values a flag
// left at 0 takes; plan and sim use kPlanDefaults, run kRunDefaults.
struct ProblemDefaults {
  int world;
  int64_t seqlen, num_heads, head_dim;
};
inline constexpr ProblemDefaults kPlanDefaults = {8, 8 * 8192, 32, 128};
inline constexpr ProblemDefaults kRunDefaults = {4, 1024, 8, 64};
absl::Status ProblemFromFlags(const ProblemDefaults& defaults, MaskSpec* mask, LayoutSpec* layout,
                              AttentionShape* shape);
std::string LayoutFlag();  // --layout as given
// The problem flags that apply only to some layouts or masks, given anyway.
absl::Status CheckProblemFlagsApply();

// The compute flags (cli/compute_flags.cc): --dtype (empty: `fallback`) and
// --backward.
absl::StatusOr<DType> DTypeFromFlag(absl::string_view fallback);
bool DTypeFlagGiven();
bool BackwardFlag();

// The subcommands (cli/plan_flags.cc, cli/run_flags.cc, cli/sim_flags.cc):
// each reads its flags, validates them and returns its report.
absl::StatusOr<std::string> PlanFromFlags();
absl::StatusOr<std::string> RunFromFlags(int* argc, char*** argv);
absl::StatusOr<std::string> SimFromFlags();
// `run --comm` choices, one per line, for the usage message.
std::string CommunicatorUsage();

}  // namespace ringattn::cli

#endif  // RINGATTN_CLI_SUBCOMMANDS_H_
