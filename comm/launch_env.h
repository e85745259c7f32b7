// Where this process sits in a multi-process launch (torchrun or Slurm).
#ifndef RINGATTN_COMM_LAUNCH_ENV_H_
#define RINGATTN_COMM_LAUNCH_ENV_H_

#include "absl/status/statusor.h"

namespace ringattn::comm {

// The process's rank, world size and local rank from the environment that
// torchrun (RANK, WORLD_SIZE, LOCAL_RANK) or Slurm (SLURM_PROCID,
// SLURM_NTASKS, SLURM_LOCALID) sets. Errors: NotFound when neither is set,
// InvalidArgument for values that are not integers or out of range.
struct LaunchEnvironment {
  int rank = 0;
  int world = 1;
  int local_rank = 0;
};
absl::StatusOr<LaunchEnvironment> LaunchEnvironmentFromEnv();

}  // namespace ringattn::comm

#endif  // RINGATTN_COMM_LAUNCH_ENV_H_
