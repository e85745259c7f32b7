// ringattn: exact ring attention. Subcommands:
//   ringattn plan [flags]   which tokens each rank holds, work per rank/step
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "cli/plan_command.h"

ABSL_FLAG(std::string, layout, "zigzag",
          "ring | zigzag | stripe | llama3 | all (a comparison)");
ABSL_FLAG(int, world, 8, "number of ranks W");
ABSL_FLAG(int, ring_size, 0,
          "ranks per ring R (W/R independent rings over batch slices); "
          "0: one ring of W");
ABSL_FLAG(int64_t, stripe_width, 1, "tokens per stripe (stripe layout)");
ABSL_FLAG(int64_t, kv_heads_per_group, 0,
          "kv heads all-gathered per step (llama3); 0: all");
ABSL_FLAG(int64_t, batch, 1, "batch size");
ABSL_FLAG(int64_t, seqlen, 8 * 8192,
          "tokens per sequence (the packed total for varlen)");
ABSL_FLAG(int64_t, num_heads, 32, "query heads");
ABSL_FLAG(int64_t, num_kv_heads, 0, "key/value heads; 0: num_heads");
ABSL_FLAG(int64_t, head_dim, 128, "head dimension");
ABSL_FLAG(bool, causal, true, "causal mask (bottom-right aligned)");
ABSL_FLAG(int64_t, window_left, -1, "sliding window to the left; -1: none");
ABSL_FLAG(int64_t, window_right, -1, "sliding window to the right; -1: none");
ABSL_FLAG(std::string, cu_seqlens, "",
          "varlen document boundaries, e.g. 0,1000,4096 (batch must be 1)");
ABSL_FLAG(std::string, key_lengths, "",
          "valid key length per batch row, e.g. 8000,6000");

namespace ringattn::cli {
namespace {

absl::StatusOr<std::string> Plan() {
  PlanOptions options;
  absl::StatusOr<std::vector<int64_t>> cu =
      ParseIntList("cu_seqlens", absl::GetFlag(FLAGS_cu_seqlens));
  if (!cu.ok()) return cu.status();
  absl::StatusOr<std::vector<int64_t>> key_lengths =
      ParseIntList("key_lengths", absl::GetFlag(FLAGS_key_lengths));
  if (!key_lengths.ok()) return key_lengths.status();
  absl::StatusOr<std::vector<LayoutKind>> layouts =
      ParseLayouts(absl::GetFlag(FLAGS_layout), !cu->empty());
  if (!layouts.ok()) return layouts.status();
  options.layouts = *layouts;
  options.layout.world = absl::GetFlag(FLAGS_world);
  options.layout.ring_size = absl::GetFlag(FLAGS_ring_size);
  options.layout.stripe_width = absl::GetFlag(FLAGS_stripe_width);
  options.layout.kv_heads_per_group = absl::GetFlag(FLAGS_kv_heads_per_group);
  AttentionShape& shape = options.shape;
  shape.batch = absl::GetFlag(FLAGS_batch);
  shape.seqlen_q = shape.seqlen_k = absl::GetFlag(FLAGS_seqlen);
  shape.num_heads = absl::GetFlag(FLAGS_num_heads);
  shape.num_kv_heads = absl::GetFlag(FLAGS_num_kv_heads) == 0
                           ? shape.num_heads
                           : absl::GetFlag(FLAGS_num_kv_heads);
  shape.head_dim = absl::GetFlag(FLAGS_head_dim);
  options.mask.causal = absl::GetFlag(FLAGS_causal);
  options.mask.window_left = absl::GetFlag(FLAGS_window_left);
  options.mask.window_right = absl::GetFlag(FLAGS_window_right);
  options.mask.cu_seqlens = *cu;
  options.mask.key_lengths = *key_lengths;
  return RunPlan(options);
}

}  // namespace
}  // namespace ringattn::cli

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "exact ring attention.\n\nUsage: ringattn plan [flags]\n"
      "  plan   which tokens each rank holds and the FLOPs of every rank at "
      "every ring step, with the load imbalance\n\nTry --helpfull for flags.");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() != 2 || std::string(args[1]) != "plan") {
    std::fprintf(stderr, "%s\n",
                 absl::StrCat("ringattn: expected one subcommand, plan; got ",
                              args.size() < 2 ? "none" : args[1],
                              args.size() > 2 ? " and more" : "")
                     .c_str());
    std::fprintf(stderr, "%s\n", absl::ProgramUsageMessage().data());
    return 2;
  }
  absl::StatusOr<std::string> report = ringattn::cli::Plan();
  if (!report.ok()) {
    std::fprintf(stderr, "ringattn plan: %s\n",
                 std::string(report.status().message()).c_str());
    return 1;
  }
  std::fputs(report->c_str(), stdout);
  return 0;
}
