#include "comm/host_rounds.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace ringattn::comm {

absl::StatusOr<double> MedianHostSeconds(int warmup, int timed, const HostRound& round) {
  if (warmup < 0 || timed < 1 || !round.timed) {
    return absl::InvalidArgumentError(
        absl::StrCat(warmup, " warm-up and ", timed,
                     " timed rounds; expected warm-up >= 0, timed >= 1 and a call to time"));
  }
  // One round: the set-up, the call under the host clock, the finish; its
  // call's seconds.
  const auto run = [&]() -> absl::StatusOr<double> {
    if (round.before) {
      if (absl::Status s = round.before(); !s.ok()) return s;
    }
    const absl::Time start = absl::Now();
    const absl::Status s = round.timed();
    const absl::Time end = absl::Now();  // before anything else: the call alone
    if (!s.ok()) return s;
    if (round.after) {
      if (absl::Status a = round.after(); !a.ok()) return a;
    }
    return absl::ToDoubleSeconds(end - start);
  };
  for (int r = 0; r < warmup; ++r) {
    if (absl::StatusOr<double> s = run(); !s.ok()) return s.status();
  }
  std::vector<double> seconds;
  for (int r = 0; r < timed; ++r) {
    absl::StatusOr<double> s = run();
    if (!s.ok()) return s.status();
    seconds.push_back(*s);
  }
  std::sort(seconds.begin(), seconds.end());
  return seconds[seconds.size() / 2];
}

}  // namespace ringattn::comm
