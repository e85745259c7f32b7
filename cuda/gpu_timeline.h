// A timeline of the GPU work enqueued on one stream, for diagnosis (issue
// #19: passes that take twice their kernels' event-timed time): Mark()
// records an event after the work enqueued so far, with the host time of
// the call; Read() waits for the last mark and gives every mark's GPU time
// and host time since the first. One object per stream and host thread.
#ifndef RINGATTN_CUDA_GPU_TIMELINE_H_
#define RINGATTN_CUDA_GPU_TIMELINE_H_

#include <cuda_runtime_api.h>

#include <chrono>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ringattn::cuda {

class GpuTimeline {
 public:
  struct Entry {
    std::string label;   // what the work before the mark was
    double gpu_ms = 0;   // the mark's event, in ms after the first mark's
    double host_ms = 0;  // Mark()'s call, in ms after the first call
  };

  GpuTimeline() = default;
  GpuTimeline(const GpuTimeline&) = delete;
  GpuTimeline& operator=(const GpuTimeline&) = delete;
  ~GpuTimeline();

  // Records an event on `stream` after its work so far (events are pooled:
  // created on first use, reused after Read()).
  absl::Status Mark(cudaStream_t stream, absl::string_view label);
  // Every mark since the last Read(), in order (empty without marks); waits
  // for the last one. The timeline starts over.
  absl::StatusOr<std::vector<Entry>> Read();
  // Marks since the last Read().
  int size() const { return used_; }

 private:
  std::vector<cudaEvent_t> events_;  // the pool; the first used_ are marks
  std::vector<std::string> labels_;
  std::vector<std::chrono::steady_clock::time_point> host_;
  int used_ = 0;
};

// "label gpu_ms (host_ms); ..." of a timeline, times in ms to 3 decimals.
std::string FormatTimeline(const std::vector<GpuTimeline::Entry>& entries);

}  // namespace ringattn::cuda

#endif  // RINGATTN_CUDA_GPU_TIMELINE_H_
