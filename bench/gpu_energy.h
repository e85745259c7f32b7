// The energy a GPU has drawn, from NVML's counter (nvmlDeviceGetTotalEnergyConsumption,
// millijoules since the driver loaded; Volta and later), and its SM clock, for
// benchmarks that report joules per call and the mean clock beside the time:
// under the GPU's power cap the rate a kernel sustains is set by the energy it
// costs, and the cap takes it out of the clock (docs/KERNEL_BENCH.md,
// twenty-ninth and thirty-ninth sessions). NVML is opened at run time (dlopen of
// libnvidia-ml.so.1, which comes with the driver), so binaries carry no
// link dependency on it.
#ifndef RINGATTN_BENCH_GPU_ENERGY_H_
#define RINGATTN_BENCH_GPU_ENERGY_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

#include "absl/status/statusor.h"

namespace ringattn::bench {

class GpuEnergy {
 public:
  // The counter of the current CUDA device (matched by PCI bus id).
  // Errors: Unavailable when there is no CUDA device, no NVML library, or
  // NVML fails (its error code named); FailedPrecondition when the GPU has
  // no energy counter (before Volta).
  static absl::StatusOr<GpuEnergy> ForCurrentDevice();

  // Joules drawn since the driver loaded. Errors: Unavailable with NVML's code.
  absl::StatusOr<double> Joules() const;

  // The SM clock now, in MHz (nvmlDeviceGetClockInfo). Errors: Unavailable
  // with NVML's code.
  absl::StatusOr<unsigned> SmClockMhz() const;

 private:
  using ReadFn = int (*)(void* device, unsigned long long* millijoules);
  using ClockFn = int (*)(void* device, int clock_type, unsigned* mhz);
  GpuEnergy(void* device, ReadFn read, ClockFn clock)
      : device_(device), read_(read), clock_(clock) {}
  void* device_;  // nvmlDevice_t
  ReadFn read_;
  ClockFn clock_;
};

// The mean SM clock over a timed run: a thread of its own reads the clock
// every `period` from construction until MeanMhz() (NVML's reading is the
// clock at that moment; a run of seconds gives hundreds of samples).
class SmClockSampler {
 public:
  SmClockSampler(const GpuEnergy& gpu, std::chrono::milliseconds period);
  ~SmClockSampler();
  SmClockSampler(const SmClockSampler&) = delete;
  SmClockSampler& operator=(const SmClockSampler&) = delete;

  // Stops the sampling; the mean of the samples in MHz, or -1 when no read
  // succeeded.
  double MeanMhz();

 private:
  std::atomic<bool> stop_{false};
  double sum_ = 0;
  int64_t samples_ = 0;
  std::thread thread_;
};

}  // namespace ringattn::bench

#endif  // RINGATTN_BENCH_GPU_ENERGY_H_
