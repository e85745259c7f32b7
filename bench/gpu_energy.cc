#include "bench/gpu_energy.h"

#include <cuda_runtime_api.h>
#include <dlfcn.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace ringattn::bench {
namespace {

// NVML's C entry points used here (nvml.h is not among the build's headers;
// these signatures are NVML's stable ABI). nvmlReturn_t is an int enum:
// 0 success, 3 not supported.
using InitFn = int (*)();
using HandleByBusIdFn = int (*)(const char* pci_bus_id, void** device);
constexpr int kNvmlSuccess = 0;
constexpr int kNvmlClockSm = 1;  // nvmlClockType_t NVML_CLOCK_SM
constexpr int kNvmlNotSupported = 3;

}  // namespace

absl::StatusOr<GpuEnergy> GpuEnergy::ForCurrentDevice() {
  int device = 0;
  char bus_id[32] = {};
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetPCIBusId(bus_id, sizeof(bus_id), device) != cudaSuccess) {
    cudaGetLastError();
    return absl::UnavailableError("GPU energy: no CUDA device to read the counter of");
  }
  // Opened once and kept: NVML stays initialized for the process.
  static void* const library = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (library == nullptr) {
    return absl::UnavailableError(
        "GPU energy: libnvidia-ml.so.1 (NVML, installed with the NVIDIA driver) could not be "
        "opened");
  }
  const auto init = reinterpret_cast<InitFn>(dlsym(library, "nvmlInit_v2"));
  const auto by_bus_id =
      reinterpret_cast<HandleByBusIdFn>(dlsym(library, "nvmlDeviceGetHandleByPciBusId_v2"));
  const auto read = reinterpret_cast<ReadFn>(dlsym(library, "nvmlDeviceGetTotalEnergyConsumption"));
  const auto clock = reinterpret_cast<ClockFn>(dlsym(library, "nvmlDeviceGetClockInfo"));
  if (init == nullptr || by_bus_id == nullptr || read == nullptr || clock == nullptr) {
    return absl::UnavailableError(
        "GPU energy: this NVML lacks nvmlInit_v2, nvmlDeviceGetHandleByPciBusId_v2, "
        "nvmlDeviceGetTotalEnergyConsumption or nvmlDeviceGetClockInfo");
  }
  if (const int e = init(); e != kNvmlSuccess) {
    return absl::UnavailableError(
        absl::StrCat("GPU energy: nvmlInit_v2 failed with NVML code ", e));
  }
  void* handle = nullptr;
  if (const int e = by_bus_id(bus_id, &handle); e != kNvmlSuccess) {
    return absl::UnavailableError(absl::StrCat("GPU energy: NVML has no device at PCI bus id ",
                                               bus_id, " (NVML code ", e, ")"));
  }
  unsigned long long millijoules = 0;
  if (const int e = read(handle, &millijoules); e != kNvmlSuccess) {
    if (e == kNvmlNotSupported) {
      return absl::FailedPreconditionError(absl::StrCat(
          "GPU energy: the GPU at ", bus_id, " has no energy counter (Volta and later do)"));
    }
    return absl::UnavailableError(
        absl::StrCat("GPU energy: reading the energy counter failed with NVML code ", e));
  }
  return GpuEnergy(handle, read, clock);
}

absl::StatusOr<double> GpuEnergy::Joules() const {
  unsigned long long millijoules = 0;
  if (const int e = read_(device_, &millijoules); e != kNvmlSuccess) {
    return absl::UnavailableError(
        absl::StrCat("GPU energy: reading the energy counter failed with NVML code ", e));
  }
  return 1e-3 * static_cast<double>(millijoules);
}

absl::StatusOr<unsigned> GpuEnergy::SmClockMhz() const {
  unsigned mhz = 0;
  if (const int e = clock_(device_, kNvmlClockSm, &mhz); e != kNvmlSuccess) {
    return absl::UnavailableError(
        absl::StrCat("GPU energy: reading the SM clock failed with NVML code ", e));
  }
  return mhz;
}

SmClockSampler::SmClockSampler(const GpuEnergy& gpu, std::chrono::milliseconds period)
    : thread_([this, gpu, period] {
        while (!stop_.load(std::memory_order_relaxed)) {
          if (const absl::StatusOr<unsigned> mhz = gpu.SmClockMhz(); mhz.ok()) {
            sum_ += *mhz;
            ++samples_;
          }
          std::this_thread::sleep_for(period);
        }
      }) {}

SmClockSampler::~SmClockSampler() { MeanMhz(); }

double SmClockSampler::MeanMhz() {
  stop_.store(true, std::memory_order_relaxed);
  if (thread_.joinable()) thread_.join();  // sum_ and samples_ are the thread's until here
  return samples_ > 0 ? sum_ / static_cast<double>(samples_) : -1.0;
}

}  // namespace ringattn::bench
