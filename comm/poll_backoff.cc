#include "comm/poll_backoff.h"

#include <algorithm>
#include <thread>

#include "absl/time/clock.h"

namespace ringattn::comm {

PollBackoff::PollBackoff(absl::Duration spin) : start_(absl::Now()), spin_(spin) {}

absl::Duration PollBackoff::PauseAfter(absl::Duration waited, absl::Duration spin) {
  if (waited < spin) return absl::ZeroDuration();
  return std::min(waited / kShare, kLongestSleep);
}

void PollBackoff::Pause() const {
  const absl::Duration sleep = PauseAfter(absl::Now() - start_, spin_);
  if (sleep == absl::ZeroDuration()) {
    std::this_thread::yield();
  } else {
    absl::SleepFor(sleep);
  }
}

}  // namespace ringattn::comm
