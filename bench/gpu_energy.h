// The energy a GPU has drawn, from NVML's counter (nvmlDeviceGetTotalEnergyConsumption,
// millijoules since the driver loaded; Volta and later), for benchmarks that
// report joules per call beside the time: under the GPU's power cap the rate
// a kernel sustains is set by the energy it costs (docs/KERNEL_BENCH.md,
// twenty-ninth session). NVML is opened at run time (dlopen of
// libnvidia-ml.so.1, which comes with the driver), so binaries carry no
// link dependency on it.
#ifndef RINGATTN_BENCH_GPU_ENERGY_H_
#define RINGATTN_BENCH_GPU_ENERGY_H_

#include <cstdint>

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

 private:
  using ReadFn = int (*)(void* device, unsigned long long* millijoules);
  GpuEnergy(void* device, ReadFn read) : device_(device), read_(read) {}
  void* device_;  // nvmlDevice_t
  ReadFn read_;
};

}  // namespace ringattn::bench

#endif  // RINGATTN_BENCH_GPU_ENERGY_H_
