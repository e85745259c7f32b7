// Which L2 half each SM reads through, measured. H100 / H200's L2 is two
// partitions, each caching for the GPCs wired to it; a line an SM misses
// in its own half comes across the fabric from the other when that half
// holds the line's memory. The thirty-ninth session found our b16 forward
// moving 45 % more sectors across that fabric than cuDNN's
// (docs/KERNEL_BENCH.md): a scheduler that keeps a head's tiles on one
// half needs to know each SM's half, which CUDA does not say. The fortieth
// found two halves of 66 SMs (whole TPCs, ids differing between machines)
// and such a scheduler (h66) cutting the fabric traffic 30 % without moving
// the rate; the probe stays as the tool that measures the halves.
//
// The probe (ProbeL2Latency): one CTA per SM; the CTA on SM 0 reads a
// buffer's lines into the L2 (its half keeps them all, the other half keeps
// those homed there); then every CTA times a dependent chain of loads
// (ld.global.cg, past the L1) through lines of its own. SMs of SM 0's half
// hit every line near; the others hit about half of them only across the
// fabric, so their mean latency is higher. SplitSmsByLatency groups the
// SMs by that mean.
#ifndef RINGATTN_BENCH_L2_HALVES_H_
#define RINGATTN_BENCH_L2_HALVES_H_

#include <vector>

#include "absl/status/statusor.h"

namespace ringattn::bench {

// One CTA's measurement: the SM it ran on and its mean cycles per load.
struct SmLatency {
  int sm;
  double cycles;
};

struct L2Halves {
  // By SM id: 0 the half of the lowest-latency SMs, 1 the other, -1 not
  // measured.
  std::vector<int> half;
  double near_cycles;  // the two groups' mean latencies
  double far_cycles;
  // The gap between the groups over the larger spread within one: above 1
  // the groups do not overlap even shifted by their own width (the H200
  // measured 1.57: a 52-cycle gap, 33 cycles within a half).
  double separation;
};

// Groups SMs into two by mean latency (the split at the largest gap of the
// sorted means). Errors: InvalidArgument for fewer than two SMs, an SM id
// out of [0, sm_count) or measured twice, or a latency that is not a
// positive number; FailedPrecondition when the gap is not more than
// `min_separation` times the larger group's spread (no two groups).
absl::StatusOr<L2Halves> SplitSmsByLatency(const std::vector<SmLatency>& latencies, int sm_count,
                                           double min_separation = 1.0);

// Runs the probe on the current device: `lines_per_sm` loads per SM.
// Errors: Unavailable without a device; Internal with the CUDA error.
absl::StatusOr<std::vector<SmLatency>> ProbeL2Latency(int lines_per_sm);

}  // namespace ringattn::bench

#endif  // RINGATTN_BENCH_L2_HALVES_H_
