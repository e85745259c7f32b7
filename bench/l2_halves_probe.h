// The kernels of ProbeL2Latency (bench/l2_halves.h): the CTA on SM 0 reads
// `count` 128-byte lines, then each of `ctas` CTAs walks its own
// `per_cta` lines as a chain (line i holds the index of the next) and
// writes its SM id and mean cycles per load. Synchronizes; returns the
// first CUDA error.
#ifndef RINGATTN_BENCH_L2_HALVES_PROBE_H_
#define RINGATTN_BENCH_L2_HALVES_PROBE_H_

#include <cuda_runtime_api.h>

#include <cstdint>

namespace ringattn::bench {

inline constexpr int kL2ProbeLineWords = 32;  // uint32_t words a line

cudaError_t LaunchL2Probe(const uint32_t* lines, int64_t count, int ctas, int per_cta,
                          uint32_t* sm_ids, double* cycles, uint32_t* sink);

}  // namespace ringattn::bench

#endif  // RINGATTN_BENCH_L2_HALVES_PROBE_H_
