// N CUDA events in a stream (the default one unless given): a slot
// recorded behind the work launched so far, a wait for it, the device time
// between two done slots (< 0: not available). bench::Settle's three
// (bench/settle.h) in kernel_bench and ring_bench, kernel_bench's timer's
// two.
#ifndef RINGATTN_BENCH_CUDA_EVENTS_H_
#define RINGATTN_BENCH_CUDA_EVENTS_H_

#include <cuda_runtime.h>

namespace ringattn::bench {

template <int N>
class CudaEvents {
 public:
  explicit CudaEvents(cudaStream_t stream = nullptr) : stream_(stream) {
    for (cudaEvent_t& e : events_) cudaEventCreate(&e);
  }
  ~CudaEvents() {
    for (cudaEvent_t e : events_) cudaEventDestroy(e);
  }
  CudaEvents(const CudaEvents&) = delete;
  CudaEvents& operator=(const CudaEvents&) = delete;
  void Record(int slot) { cudaEventRecord(events_[slot], stream_); }
  void Synchronize(int slot) { cudaEventSynchronize(events_[slot]); }
  float ElapsedMs(int from, int to) {
    float ms = 0;
    return cudaEventElapsedTime(&ms, events_[from], events_[to]) == cudaSuccess ? ms : -1.0f;
  }

 private:
  cudaStream_t stream_;
  cudaEvent_t events_[N];
};

}  // namespace ringattn::bench

#endif  // RINGATTN_BENCH_CUDA_EVENTS_H_
