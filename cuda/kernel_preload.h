// Every ringattn kernel loaded on a device before a ring runs there.
//
// CUDA loads a kernel lazily, at its first launch (CUDA_MODULE_LOADING=LAZY,
// the default since CUDA 12.2), and that load waits until every kernel
// running on the device has ended (measured on an H200, CUDA 13.0, driver
// 580: docs/measurements/2026-12-04_h200_lazy_loading_and_w1_python.txt).
// A ring pass runs an NCCL send/recv kernel that spins until the peer's
// matching kernel runs; a first launch of an attention kernel beside it
// then holds the device, and every later launch on it, until the hop ends,
// and where the peer is driven by the same process (one thread per GPU),
// its host thread blocks too while the load waits: the hop never ends, a
// deadlock (CUDA's programming guide names the pattern under lazy loading's
// hazards: kernels that wait for each other must be loaded first).
// CudaRingBackend::Create therefore loads every kernel of every module that
// cuda_library compiled (each .cu registers its module through
// cuda/kernel_module.cuh) on its device, once per device and process,
// before it launches anything.
#ifndef RINGATTN_CUDA_KERNEL_PRELOAD_H_
#define RINGATTN_CUDA_KERNEL_PRELOAD_H_

#include "absl/status/statusor.h"

namespace ringattn::cuda {

// Called by every module's static initializer (cuda/kernel_module.cuh):
// `anchor` is a kernel of the module.
void RegisterKernelModule(const void* anchor);

// What PreloadKernels did on a device.
struct KernelPreload {
  bool lazy = false;  // the process loads kernels lazily (else: nothing to do)
  int modules = 0;    // modules registered and found on the device
  int kernels = 0;    // kernels those modules hold, each loaded now
};

// Loads every registered module's kernels on `device` (its primary context;
// the calling thread's current device is restored), once per device: a
// later call returns the first one's result. Under eager loading it only
// reports lazy = false. An error names the driver call that failed.
absl::StatusOr<KernelPreload> PreloadKernels(int device);

// Whether the process loads kernels lazily (CUDA_MODULE_LOADING).
absl::StatusOr<bool> LazyKernelLoading();

// How many modules have registered (one per .cu linked in; no GPU needed).
int RegisteredKernelModules();

}  // namespace ringattn::cuda

#endif  // RINGATTN_CUDA_KERNEL_PRELOAD_H_
