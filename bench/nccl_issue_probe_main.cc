// What NCCL's group end costs the host, on one GPU: a one-rank communicator
// sends to itself in groups of 1 or 2 sends and receives (a ring step's
// one block; a forward's first step, K and V apart), blocking and
// non-blocking (ringattn's communicators are non-blocking), the GPU idle
// before each group; the median of `--rounds` host times from
// ncclGroupStart until the transfers are enqueued.
//   nccl_issue_probe [--mib=64] [--rounds=50] [--device=0]
// On 2 x H200 a ring pass's first kernel waited ~0.18 ms for its step's
// group (ring_bench --timeline, docs/RING_BENCH.md).
#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "comm/nccl_communicator.h"

ABSL_FLAG(int64_t, mib, 64, "MiB each way per group (split among its messages)");
ABSL_FLAG(int, rounds, 50, "timed groups per line");
ABSL_FLAG(int, device, 0, "the GPU");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int64_t bytes = absl::GetFlag(FLAGS_mib) << 20;
  int failed = 0;
  for (const bool blocking : {false, true}) {
    for (const int parts : {1, 2}) {
      const absl::StatusOr<double> s = ringattn::comm::NcclSelfGroupIssueSeconds(
          absl::GetFlag(FLAGS_device), blocking, parts, bytes, absl::GetFlag(FLAGS_rounds));
      if (!s.ok()) {
        std::fprintf(stderr, "%s, %d message(s): %s\n", blocking ? "blocking" : "non-blocking",
                     parts, std::string(s.status().message()).c_str());
        failed = 1;
        continue;
      }
      std::printf(
          "%-12s communicator, %d send(s) and %d receive(s) of %lld MiB in all: group issue "
          "%.1f us (median of %d)\n",
          blocking ? "blocking" : "non-blocking", parts, parts,
          static_cast<long long>(absl::GetFlag(FLAGS_mib)), 1e6 * *s, absl::GetFlag(FLAGS_rounds));
    }
  }
  return failed;
}
