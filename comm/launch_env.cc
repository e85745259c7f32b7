#include "comm/launch_env.h"

#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace ringattn::comm {

absl::StatusOr<LaunchEnvironment> LaunchEnvironmentFromEnv() {
  struct Names {
    const char* rank;
    const char* world;
    const char* local;
  };
  for (const Names& n : {Names{"RANK", "WORLD_SIZE", "LOCAL_RANK"},
                         Names{"SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"}}) {
    const char* rank = std::getenv(n.rank);
    const char* world = std::getenv(n.world);
    if (rank == nullptr || world == nullptr) continue;
    const char* local = std::getenv(n.local);
    LaunchEnvironment env;
    const auto parse = [](const char* name, const char* text, int* out) -> absl::Status {
      if (!absl::SimpleAtoi(text, out)) {
        return absl::InvalidArgumentError(absl::StrCat(name, "='", text, "' is not an integer"));
      }
      return absl::OkStatus();
    };
    RETURN_IF_ERROR(parse(n.rank, rank, &env.rank));
    RETURN_IF_ERROR(parse(n.world, world, &env.world));
    env.local_rank = env.rank;
    if (local != nullptr) {
      RETURN_IF_ERROR(parse(n.local, local, &env.local_rank));
    }
    if (env.world < 1 || env.rank < 0 || env.rank >= env.world || env.local_rank < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(n.rank, "=", env.rank, ", ", n.world, "=", env.world, ", local rank ",
                       env.local_rank, "; expected 0 <= rank < world and local rank >= 0"));
    }
    return env;
  }
  return absl::NotFoundError(
      "no launcher environment: expected RANK and WORLD_SIZE (torchrun) or "
      "SLURM_PROCID and SLURM_NTASKS (Slurm)");
}

}  // namespace ringattn::comm
