// The ring loop, generic over a compute backend and a communicator: every
// rank calls RunRingForward (then RunRingBackward) with the same schedule.
//
// Ring passes: the K/V in hand is sent to the next rank while this rank
// computes on it, and the next one is received into the other buffer
// (double buffering). In backward, the dK/dV partial sums of each source
// travel with its K/V and arrive home one hop after the last step; dQ stays
// home. A rank computes its contribution into a fresh buffer while the
// partial sum from the previous rank is still arriving, adds it, and sends
// the sum on without waiting, so every hop hides behind the next step's
// compute (one element-wise add per step instead of an exposed transfer).
// All-gather (llama3): K/V of the next kv-head group is gathered while the
// current group computes; dK/dV are reduce-scattered per group.
#ifndef RINGATTN_CORE_RING_DRIVER_H_
#define RINGATTN_CORE_RING_DRIVER_H_

#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "core/communicator.h"
#include "core/ring_backend.h"
#include "core/schedule.h"

namespace ringattn {

// One of the two backend buffers a ring pass's K/V alternates between.
enum class KvBuffer { kA, kB };

struct RingRunStats {
  // Wall time of each step (none where RingBackend::wall_clock_steps() is
  // false).
  std::vector<double> step_seconds;
  std::vector<double> compute_seconds;  // of which computing
  double total_seconds = 0;
  // Of which in the communicator's final Synchronize(): the host waiting
  // for the pass's device work (and transfers) after enqueuing it all.
  double synchronize_seconds = 0;
  // A ring-pass forward: the buffer that holds the last visiting K/V (the
  // next rank's shard) when it returns; none otherwise.
  std::optional<KvBuffer> last_kv;
};

struct BackwardOptions {
  // The forward's RingRunStats::last_kv, when that forward ran on this
  // backend and its buffers are untouched: the backward starts on that
  // block without a transfer. None: it is fetched first (one exposed hop).
  std::optional<KvBuffer> forward_kv;
  // The classic order (ring-flash-attention's; the simulator's seed model):
  // each rank starts on its own K/V and the finished dK/dV sums take one
  // more hop home after the last step. By default a ring pass visits the
  // blocks the other way round and ends on its own, so every dK/dV sum
  // completes at home and no transfer is left after the last compute.
  bool own_block_first = false;
};

// Runs this rank's forward pass. Errors: InvalidArgument if the
// communicator's world differs from the layout's; any backend or
// communication error (the communicator is then aborted, so other ranks
// fail fast).
absl::StatusOr<RingRunStats> RunRingForward(const Schedule& schedule, Communicator& comm,
                                            RingBackend& backend);

// Runs this rank's backward pass (after the forward, or with the backend
// given out and LSE). Errors: as RunRingForward.
absl::StatusOr<RingRunStats> RunRingBackward(const Schedule& schedule, Communicator& comm,
                                             RingBackend& backend,
                                             const BackwardOptions& options = {});

}  // namespace ringattn

#endif  // RINGATTN_CORE_RING_DRIVER_H_
