// How a host thread that polls for the GPU (an event, a peer's transfer)
// waits between two polls. It yields while the wait is young and then
// sleeps a slice that grows with the wait so far, so that the time a sleep
// overshoots the GPU's completion stays a small share of the wait.
//
// Why not a fixed sleep: a pass's final wait used to yield 100 times and
// then sleep 50 us a poll; a sleep's wake-up there took 70-100 us more than
// the GPU (one H200, gVisor): ring_bench's 2048-token passes measured
// 0.16-0.19 ms against a GPU span of 0.085 ms (ring_bench --timeline,
// issue #19, docs/RING_BENCH.md forty-sixth section).
#ifndef RINGATTN_COMM_POLL_BACKOFF_H_
#define RINGATTN_COMM_POLL_BACKOFF_H_

#include "absl/time/time.h"

namespace ringattn::comm {

class PollBackoff {
 public:
  // Waits up to `spin` only yield; later pauses sleep waited / kShare, at
  // most kLongestSleep.
  static constexpr absl::Duration kDefaultSpin = absl::Milliseconds(50);
  static constexpr int kShare = 100;
  static constexpr absl::Duration kLongestSleep = absl::Milliseconds(1);

  explicit PollBackoff(absl::Duration spin = kDefaultSpin);

  // The pause after a poll that found the work unfinished, `waited` after
  // the wait began: zero (yield) or the sleep.
  static absl::Duration PauseAfter(absl::Duration waited, absl::Duration spin);
  // Yields or sleeps, as PauseAfter says for the time since construction.
  void Pause() const;

 private:
  const absl::Time start_;
  const absl::Duration spin_;
};

}  // namespace ringattn::comm

#endif  // RINGATTN_COMM_POLL_BACKOFF_H_
