// The host's time for a call, measured the way the issue probes measure it
// (bench/nccl_issue_probe's NCCL groups, ring_bench's hop issue): rounds
// of an untimed set-up (the GPU idle, the ranks in step), the timed call
// under the host clock and an untimed finish, after untimed warm-up rounds.
#ifndef RINGATTN_COMM_HOST_ROUNDS_H_
#define RINGATTN_COMM_HOST_ROUNDS_H_

#include <functional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ringattn::comm {

struct HostRound {
  std::function<absl::Status()> before;  // untimed; may be empty
  std::function<absl::Status()> timed;
  std::function<absl::Status()> after;  // untimed; may be empty
};

// Runs `warmup` + `timed` rounds; returns the median (the upper one of an
// even count) of the timed rounds' seconds. Errors: InvalidArgument for
// warmup < 0 or timed < 1 or no timed call; else the first error a round's
// part returns (the rounds stop there).
absl::StatusOr<double> MedianHostSeconds(int warmup, int timed, const HostRound& round);

}  // namespace ringattn::comm

#endif  // RINGATTN_COMM_HOST_ROUNDS_H_
