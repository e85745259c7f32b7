// The problem flags, read by plan, run and sim: shape, mask and layout.
#include <cstring>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "cli/npy.h"
#include "cli/plan_command.h"
#include "cli/subcommands.h"
#include "core/status_macros.h"

ABSL_FLAG(std::string, layout, "zigzag",
          "ring | zigzag | stripe | llama3 | balanced, or auto (plan, run: the one the simulator "
          "predicts fastest on an H200, bf16 fwd+bwd for plan); plan also: all, a comparison");
ABSL_FLAG(int, world, 0, "number of ranks W (default: 8 for plan and sim, 4 for run)");
ABSL_FLAG(int, ring_size, 0,
          "ranks per ring R (W/R independent rings over batch slices); "
          "0: one ring of W");
ABSL_FLAG(int64_t, stripe_width, 1, "tokens per stripe (stripe layout)");
ABSL_FLAG(int64_t, kv_heads_per_group, 0, "kv heads all-gathered per step (llama3); 0: all");
ABSL_FLAG(int64_t, batch, 1, "batch size (plan, sim, run --random)");
ABSL_FLAG(int64_t, seqlen, 0,
          "tokens per sequence, the packed total for varlen (default: 65536 "
          "for plan and sim, 1024 for run --random)");
ABSL_FLAG(int64_t, num_heads, 0, "query heads (default: 32 plan and sim, 8 run)");
ABSL_FLAG(int64_t, num_kv_heads, 0, "key/value heads; 0: num_heads");
ABSL_FLAG(int64_t, head_dim, 0, "head dimension (default: 128 plan and sim, 64 run)");
ABSL_FLAG(bool, causal, true, "causal mask (bottom-right aligned)");
ABSL_FLAG(int64_t, window_left, -1, "sliding window to the left; -1: none");
ABSL_FLAG(int64_t, window_right, -1, "sliding window to the right; -1: none");
ABSL_FLAG(std::string, cu_seqlens, "",
          "varlen documents: a comma list (0,1000,4096) or an int32/int64 "
          ".npy file; batch must be 1");
ABSL_FLAG(std::string, key_lengths, "", "valid key length per batch row, e.g. 8000,6000");

namespace ringattn::cli {
namespace {

int64_t Or(int64_t value, int64_t fallback) { return value != 0 ? value : fallback; }

absl::StatusOr<std::vector<int64_t>> CuSeqlens() {
  const std::string flag = absl::GetFlag(FLAGS_cu_seqlens);
  if (!absl::EndsWith(flag, ".npy")) return ParseIntList("cu_seqlens", flag);
  ASSIGN_OR_RETURN(NpyArray a, ReadNpy(flag));
  if (a.shape.size() != 1 || (a.type != NpyType::kInt32 && a.type != NpyType::kInt64)) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": expected a 1-D int32 or int64 array of document boundaries"));
  }
  if (a.shape[0] < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": holds ", a.shape[0],
                     " boundaries; expected at least 2 (0, then each document's end)"));
  }
  std::vector<int64_t> cu(a.shape[0]);
  for (size_t i = 0; i < cu.size(); ++i) {
    if (a.type == NpyType::kInt32) {
      int32_t x;
      std::memcpy(&x, a.data.data() + 4 * i, 4);
      cu[i] = x;
    } else {
      std::memcpy(&cu[i], a.data.data() + 8 * i, 8);
    }
  }
  return cu;
}

}  // namespace

absl::Status ProblemFromFlags(const ProblemDefaults& defaults, MaskSpec* mask, LayoutSpec* layout,
                              AttentionShape* shape) {
  ASSIGN_OR_RETURN(std::vector<int64_t> cu, CuSeqlens());
  ASSIGN_OR_RETURN(std::vector<int64_t> key_lengths,
                   ParseIntList("key_lengths", absl::GetFlag(FLAGS_key_lengths)));
  mask->causal = absl::GetFlag(FLAGS_causal);
  mask->window_left = absl::GetFlag(FLAGS_window_left);
  mask->window_right = absl::GetFlag(FLAGS_window_right);
  mask->cu_seqlens = cu;
  mask->key_lengths = key_lengths;
  layout->world = static_cast<int>(Or(absl::GetFlag(FLAGS_world), defaults.world));
  layout->ring_size = absl::GetFlag(FLAGS_ring_size);
  layout->stripe_width = absl::GetFlag(FLAGS_stripe_width);
  layout->kv_heads_per_group = absl::GetFlag(FLAGS_kv_heads_per_group);
  shape->batch = absl::GetFlag(FLAGS_batch);
  shape->seqlen_q = shape->seqlen_k = Or(absl::GetFlag(FLAGS_seqlen), defaults.seqlen);
  shape->num_heads = Or(absl::GetFlag(FLAGS_num_heads), defaults.num_heads);
  shape->num_kv_heads = Or(absl::GetFlag(FLAGS_num_kv_heads), shape->num_heads);
  shape->head_dim = Or(absl::GetFlag(FLAGS_head_dim), defaults.head_dim);
  return absl::OkStatus();
}

std::string LayoutFlag() { return absl::GetFlag(FLAGS_layout); }

absl::Status CheckProblemFlagsApply() {
  const std::string layout = absl::GetFlag(FLAGS_layout);
  const bool several = layout == "all" || layout == "auto";
  if (layout != "stripe" && !several && absl::GetFlag(FLAGS_stripe_width) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--stripe_width applies to the stripe layout; the layout is ", layout));
  }
  if (layout != "llama3" && !several && absl::GetFlag(FLAGS_kv_heads_per_group) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--kv_heads_per_group applies to the llama3 layout; the layout is ", layout));
  }
  if (absl::GetFlag(FLAGS_causal) && absl::GetFlag(FLAGS_window_right) != -1) {
    return absl::InvalidArgumentError(
        "--window_right does not apply under --causal (which allows no key to the right); "
        "give --nocausal to use it");
  }
  return absl::OkStatus();
}

}  // namespace ringattn::cli
