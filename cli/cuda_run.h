// `ringattn run --backend=cuda` with device communicators: the ranks as
// threads of this process on local GPUs (peer copies or NCCL), or this
// process as one rank of a torchrun / Slurm launch (NCCL).
#ifndef RINGATTN_CLI_CUDA_RUN_H_
#define RINGATTN_CLI_CUDA_RUN_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cli/run_command.h"

namespace ringattn::cli {

enum class CudaComm {
  kDeviceCopy,  // any ranks per GPU (virtual ranks), cudaMemcpyAsync between them
  kNccl,        // one rank per GPU, NCCL, single process
};

// Runs options.config.layout.world ranks, rank r on GPU r % gpus (gpus 0:
// every visible GPU; NCCL needs world <= gpus). The report adds each rank's
// peak device memory next to the theoretical need.
// Errors: Unavailable without a GPU (or NCCL), InvalidArgument for a world
// NCCL cannot place, and every error RunRank gives.
absl::StatusOr<std::string> RunCudaThreads(RunOptions options, CudaComm comm, int gpus,
                                           absl::Duration timeout);

// This process is one rank: rank, world and local GPU from the launcher's
// environment (RANK / WORLD_SIZE / LOCAL_RANK or SLURM_*), the NCCL id
// through `id_file`. Rank 0 returns the report, the others an empty string.
absl::StatusOr<std::string> RunCudaProcess(RunOptions options, const std::string& id_file,
                                           absl::Duration timeout);

}  // namespace ringattn::cli

#endif  // RINGATTN_CLI_CUDA_RUN_H_
