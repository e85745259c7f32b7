#include "cuda/gpu_timeline.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cuda/device.h"

namespace ringattn::cuda {

GpuTimeline::~GpuTimeline() {
  for (cudaEvent_t e : events_) cudaEventDestroy(e);
}

absl::Status GpuTimeline::Mark(cudaStream_t stream, absl::string_view label) {
  if (used_ == static_cast<int>(events_.size())) {
    cudaEvent_t e = nullptr;
    if (const cudaError_t err = cudaEventCreate(&e); err != cudaSuccess) {
      return CudaStatus(err, "creating a timeline event");
    }
    events_.push_back(e);
    labels_.emplace_back();
    host_.emplace_back();
  }
  host_[used_] = std::chrono::steady_clock::now();
  labels_[used_] = std::string(label);
  if (const cudaError_t err = cudaEventRecord(events_[used_], stream); err != cudaSuccess) {
    return CudaStatus(err, "recording a timeline event");
  }
  ++used_;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<GpuTimeline::Entry>> GpuTimeline::Read() {
  std::vector<Entry> entries;
  const int used = used_;
  used_ = 0;
  if (used == 0) return entries;
  if (const cudaError_t err = cudaEventSynchronize(events_[used - 1]); err != cudaSuccess) {
    return CudaStatus(err, "waiting for the timeline's last event");
  }
  for (int i = 0; i < used; ++i) {
    float ms = 0;
    if (const cudaError_t err = cudaEventElapsedTime(&ms, events_[0], events_[i]);
        err != cudaSuccess) {
      return CudaStatus(err, "reading a timeline event");
    }
    entries.push_back(
        {labels_[i], ms, std::chrono::duration<double, std::milli>(host_[i] - host_[0]).count()});
  }
  return entries;
}

std::string FormatTimeline(const std::vector<GpuTimeline::Entry>& entries) {
  std::string out;
  for (const GpuTimeline::Entry& e : entries) {
    absl::StrAppend(&out, out.empty() ? "" : "; ",
                    absl::StrFormat("%s %.3f (%.3f)", e.label, e.gpu_ms, e.host_ms));
  }
  return out;
}

}  // namespace ringattn::cuda
