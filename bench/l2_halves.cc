#include "bench/l2_halves.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "bench/l2_halves_probe.h"
#include "cuda/device.h"

namespace ringattn::bench {

absl::StatusOr<L2Halves> SplitSmsByLatency(const std::vector<SmLatency>& latencies, int sm_count,
                                           double min_separation) {
  if (latencies.size() < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("L2 halves: ", latencies.size(), " SM(s) measured; at least two are needed"));
  }
  // -1: not measured; 0 while the input is checked (a second 0 is an SM
  // measured twice); the slower group's SMs become 1 at the end.
  std::vector<int> half(sm_count, -1);
  for (const SmLatency& l : latencies) {
    if (l.sm < 0 || l.sm >= sm_count) {
      return absl::InvalidArgumentError(
          absl::StrCat("L2 halves: SM id ", l.sm, " outside [0, ", sm_count, ")"));
    }
    if (half[l.sm] != -1) {
      return absl::InvalidArgumentError(absl::StrCat("L2 halves: SM ", l.sm, " measured twice"));
    }
    if (!(l.cycles > 0) || !std::isfinite(l.cycles)) {
      return absl::InvalidArgumentError(absl::StrCat("L2 halves: SM ", l.sm, "'s latency ",
                                                     l.cycles, " is not a positive number"));
    }
    half[l.sm] = 0;
  }
  std::vector<SmLatency> sorted = latencies;
  std::sort(sorted.begin(), sorted.end(),
            [](const SmLatency& a, const SmLatency& b) { return a.cycles < b.cycles; });
  size_t cut = 1;  // the first index of the slower group
  for (size_t i = 1; i < sorted.size(); ++i) {
    if (sorted[i].cycles - sorted[i - 1].cycles > sorted[cut].cycles - sorted[cut - 1].cycles) {
      cut = i;
    }
  }
  const auto mean = [&](size_t begin, size_t end) {
    double sum = 0;
    for (size_t i = begin; i < end; ++i) sum += sorted[i].cycles;
    return sum / static_cast<double>(end - begin);
  };
  const double gap = sorted[cut].cycles - sorted[cut - 1].cycles;
  const double spread = std::max(sorted[cut - 1].cycles - sorted.front().cycles,
                                 sorted.back().cycles - sorted[cut].cycles);
  const double separation = spread > 0 ? gap / spread : INFINITY;
  if (!(separation > min_separation)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "L2 halves: no two latency groups (largest gap ", gap, " cycles between ",
        sorted[cut - 1].cycles, " and ", sorted[cut].cycles, ", against a spread of ", spread,
        " within a group; expected the gap more than ", min_separation, "x the spread)"));
  }
  for (size_t i = cut; i < sorted.size(); ++i) half[sorted[i].sm] = 1;
  return L2Halves{std::move(half), mean(0, cut), mean(cut, sorted.size()), separation};
}

absl::StatusOr<std::vector<SmLatency>> ProbeL2Latency(int lines_per_sm) {
  if (lines_per_sm < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("L2 probe: lines_per_sm must be at least 1, not ", lines_per_sm));
  }
  int device = 0, sms = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) {
    cudaGetLastError();
    return absl::UnavailableError("L2 probe: no CUDA device");
  }
  constexpr int kWords = kL2ProbeLineWords;
  const int64_t count = int64_t{sms} * lines_per_sm;
  // Each CTA's lines a ring: line i holds the index of line i + 1.
  std::vector<uint32_t> host(count * kWords, 0);
  for (int64_t b = 0; b < sms; ++b) {
    for (int i = 0; i < lines_per_sm; ++i) {
      const int64_t at = b * lines_per_sm + i;
      host[at * kWords] = static_cast<uint32_t>(i + 1 < lines_per_sm ? at + 1 : b * lines_per_sm);
    }
  }
  uint32_t *lines = nullptr, *sm_ids = nullptr, *sink = nullptr;
  double* cycles = nullptr;
  void* flush = nullptr;
  constexpr size_t kFlushBytes = size_t{512} << 20;  // ten times the L2
  absl::Status s;
  for (const auto& [p, bytes] :
       {std::pair<void**, size_t>{reinterpret_cast<void**>(&lines), host.size() * 4},
        {reinterpret_cast<void**>(&sm_ids), size_t(sms) * 4},
        {reinterpret_cast<void**>(&cycles), size_t(sms) * 8},
        {reinterpret_cast<void**>(&sink), 4},
        {&flush, kFlushBytes}}) {
    if (s.ok()) s = cuda::CudaStatus(cudaMalloc(p, bytes), "L2 probe: cudaMalloc");
  }
  if (s.ok()) {
    s = cuda::CudaStatus(cudaMemcpy(lines, host.data(), host.size() * 4, cudaMemcpyHostToDevice),
                         "L2 probe: copy");
  }
  // The lines out of the L2 before SM 0 reads them.
  if (s.ok()) s = cuda::CudaStatus(cudaMemset(flush, 1, kFlushBytes), "L2 probe: flush");
  if (s.ok())
    s = cuda::CudaStatus(LaunchL2Probe(lines, count, sms, lines_per_sm, sm_ids, cycles, sink),
                         "L2 probe: kernels");
  std::vector<SmLatency> out;
  if (s.ok()) {
    std::vector<uint32_t> ids(sms);
    std::vector<double> c(sms);
    s = cuda::CudaStatus(cudaMemcpy(ids.data(), sm_ids, sms * 4, cudaMemcpyDeviceToHost),
                         "L2 probe: copy back");
    if (s.ok())
      s = cuda::CudaStatus(cudaMemcpy(c.data(), cycles, sms * 8, cudaMemcpyDeviceToHost),
                           "L2 probe: copy back");
    for (int b = 0; s.ok() && b < sms; ++b) out.push_back({static_cast<int>(ids[b]), c[b]});
  }
  for (void* p : {static_cast<void*>(lines), static_cast<void*>(sm_ids), static_cast<void*>(cycles),
                  static_cast<void*>(sink), flush}) {
    cudaFree(p);
  }
  if (!s.ok()) return s;
  return out;
}

}  // namespace ringattn::bench
