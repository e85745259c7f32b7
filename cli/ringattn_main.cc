// ringattn: exact ring attention. Subcommands:
//   ringattn plan [flags]   which tokens each rank holds, work per rank/step
//   ringattn run  [flags]   ring attention on CPU ranks or GPUs, .npy in and out
//   ringattn sim  [flags]   simulated runs on calibrated GPUs and links
// Each subcommand's flags live in their own files (cli/subcommands.h).
// Built twice: //cli:ringattn (ranks as threads) and //cli:ringattn_mpi
// (also --comm=mpi: one process per rank under mpirun).
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/subcommands.h"

namespace ringattn::cli {
namespace {

struct Subcommand {
  absl::string_view name;
  absl::string_view summary;
  std::vector<absl::string_view> flag_files;  // the files whose flags it reads
  absl::StatusOr<std::string> (*run)(int* argc, char*** argv);
};

const std::vector<Subcommand>& Subcommands() {
  static const auto* const kSubcommands = new std::vector<Subcommand>{
      {"plan",
       "which tokens each rank holds and the FLOPs of every rank at every ring step, with the "
       "load imbalance",
       {"cli/problem_flags.cc"},
       [](int*, char***) { return PlanFromFlags(); }},
      {"run",
       "ring attention over .npy inputs (or --random) on CPU ranks or GPUs "
       "(--backend=cpu|cuda); --check compares with the fp64 oracle",
       {"cli/problem_flags.cc", "cli/compute_flags.cc", "cli/run_flags.cc"},
       RunFromFlags},
      {"sim",
       "simulated runs on calibrated GPUs and links: summary, Chrome trace, "
       "--ring_flash_attention_table, sweeps (--sweep_csv, --plot)",
       {"cli/problem_flags.cc", "cli/compute_flags.cc", "cli/sim_flags.cc"},
       [](int*, char***) { return SimFromFlags(); }},
  };
  return *kSubcommands;
}

// Every ringattn flag given a value other than its default must come from a
// file the subcommand reads, and must apply to the layout and mask chosen:
// nothing is accepted and then ignored.
absl::Status CheckFlagsApply(const Subcommand& command) {
  std::vector<std::string> stray;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    const std::string file = flag->Filename();
    if (!absl::StartsWith(file, "cli/") || flag->CurrentValue() == flag->DefaultValue()) continue;
    if (std::find(command.flag_files.begin(), command.flag_files.end(), file) ==
        command.flag_files.end()) {
      stray.push_back(absl::StrCat("--", name));
    }
  }
  std::sort(stray.begin(), stray.end());
  if (!stray.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(absl::StrJoin(stray, ", "), stray.size() == 1 ? " does" : " do",
                     " not apply to `", command.name, "`; see --help for its flags"));
  }
  return CheckProblemFlagsApply();
}

std::string Usage() {
  std::vector<absl::string_view> names;
  for (const Subcommand& c : Subcommands()) names.push_back(c.name);
  std::string usage = absl::StrCat("exact ring attention.\n\nUsage: ringattn ",
                                   absl::StrJoin(names, "|"), " [flags]\n");
  for (const Subcommand& c : Subcommands()) {
    absl::StrAppend(&usage, "  ", c.name, std::string(6 - c.name.size(), ' '), c.summary, "\n");
  }
  absl::StrAppend(&usage, "\nrun --comm (auto: threads on CPU; nccl or device on GPUs):\n",
                  CommunicatorUsage(), "\nTry --helpfull for flags.");
  return usage;
}

int Main(int argc, char** argv) {
  absl::SetProgramUsageMessage(Usage());
  // --help lists the flags of every subcommand's file (grouped by file).
  absl::FlagsUsageConfig config;
  config.contains_help_flags = [](absl::string_view file) {
    return absl::StartsWith(file, "cli/") && absl::EndsWith(file, "_flags.cc");
  };
  config.contains_helpshort_flags = config.contains_help_flags;
  absl::SetFlagsUsageConfig(config);
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  const Subcommand* command = nullptr;
  for (const Subcommand& c : Subcommands()) {
    if (args.size() == 2 && c.name == args[1]) command = &c;
  }
  if (command == nullptr) {
    std::fprintf(
        stderr, "%s\n%s\n",
        absl::StrCat("ringattn: expected one subcommand, plan, run or sim; got ",
                     args.size() < 2 ? "none" : args[1], args.size() > 2 ? " and more" : "")
            .c_str(),
        std::string(absl::ProgramUsageMessage()).c_str());
    return 2;
  }
  const std::string name(command->name);
  if (const absl::Status applies = CheckFlagsApply(*command); !applies.ok()) {
    std::fprintf(stderr, "ringattn %s: %s\n", name.c_str(), std::string(applies.message()).c_str());
    return 1;
  }
  absl::StatusOr<std::string> report = command->run(&argc, &argv);
  if (!report.ok()) {
    std::fprintf(stderr, "ringattn %s: %s\n", name.c_str(),
                 std::string(report.status().message()).c_str());
    return 1;
  }
  std::fputs(report->c_str(), stdout);
  return 0;
}

}  // namespace
}  // namespace ringattn::cli

int main(int argc, char** argv) { return ringattn::cli::Main(argc, argv); }
