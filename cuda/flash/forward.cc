#include "cuda/flash/forward.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <utility>

#include "cuda/flash/dispatch.h"
#include "cuda/flash/tensor_map.h"

namespace ringattn::cuda::flash {

bool FlashForwardSupports(const ForwardBlockArgs& a) {
  const bool half = a.dtype == ElementType::kFloat16 || a.dtype == ElementType::kBFloat16;
  return (half ? a.head_dim == 64 || a.head_dim == 128 || a.head_dim == 256
               : a.dtype == ElementType::kFloat32 && (a.head_dim == 64 || a.head_dim == 128)) &&
         a.num_kv_heads >= 1 && a.num_heads % a.num_kv_heads == 0 && a.kv_head_begin >= 0 &&
         a.kv_head_begin < a.kv_head_end && a.kv_head_end <= a.num_kv_heads && Aligned16(a.q) &&
         Aligned16(a.k) && Aligned16(a.v) && Aligned16(a.out) && Aligned16(a.state_o);
}

namespace {

// RINGATTN_FORWARD_KERNEL=mma_sync|cp_async|warp_specialized replaces kAuto's
// choice for fp16/bf16 (for benchmarks and bisecting); unset: kAuto chooses
// (another value too, with a warning on stderr).
TensorCoreKernel AutoOverride() {
  static const TensorCoreKernel kernel = [] {
    const char* name = std::getenv("RINGATTN_FORWARD_KERNEL");
    if (name == nullptr) return TensorCoreKernel::kAuto;
    if (std::strcmp(name, "mma_sync") == 0) return TensorCoreKernel::kMmaSync;
    if (std::strcmp(name, "cp_async") == 0) return TensorCoreKernel::kHopper;
    if (std::strcmp(name, "warp_specialized") == 0) return TensorCoreKernel::kWarpSpecialized;
    std::fprintf(stderr,
                 "ringattn: RINGATTN_FORWARD_KERNEL='%s' ignored; expected mma_sync, cp_async or "
                 "warp_specialized\n",
                 name);
    return TensorCoreKernel::kAuto;
  }();
  return kernel;
}

}  // namespace

cudaError_t CurrentDeviceFacts(DeviceFacts* facts) {
  // One slot per device ordinal below kDevices, filled once (under mu) and
  // then read without a lock; a device past them is asked every time.
  constexpr int kDevices = 64;
  struct Slot {
    std::atomic<bool> known{false};
    DeviceFacts facts;
  };
  static Slot slots[kDevices];
  static std::mutex mu;
  int device = 0;
  if (const cudaError_t e = cudaGetDevice(&device); e != cudaSuccess) return e;
  const bool cached = device >= 0 && device < kDevices;
  if (cached && slots[device].known.load(std::memory_order_acquire)) {
    *facts = slots[device].facts;
    return cudaSuccess;
  }
  int major = 0, minor = 0;
  DeviceFacts f;
  for (auto [value, attribute] : {std::pair{&major, cudaDevAttrComputeCapabilityMajor},
                                  std::pair{&minor, cudaDevAttrComputeCapabilityMinor},
                                  std::pair{&f.sms, cudaDevAttrMultiProcessorCount},
                                  std::pair{&f.l2_bytes, cudaDevAttrL2CacheSize}}) {
    if (const cudaError_t e = cudaDeviceGetAttribute(value, attribute, device); e != cudaSuccess) {
      return e;
    }
  }
  f.hopper = major == 9 && minor == 0;
  if (cached) {
    std::lock_guard<std::mutex> lock(mu);
    if (!slots[device].known.load(std::memory_order_relaxed)) {
      slots[device].facts = f;
      slots[device].known.store(true, std::memory_order_release);
    }
  }
  *facts = f;
  return cudaSuccess;
}

bool HopperDevice() {
  DeviceFacts facts;
  return CurrentDeviceFacts(&facts) == cudaSuccess && facts.hopper;
}

cudaError_t LaunchFlashForward(const ForwardBlockArgs& a, cudaStream_t stream,
                               TensorCoreKernel kernel) {
  if (!FlashForwardSupports(a)) return cudaErrorNotSupported;
  const bool hopper = HopperDevice();
  const bool sm90_kernel =
      kernel == TensorCoreKernel::kHopper || kernel == TensorCoreKernel::kWarpSpecialized;
  const bool fp32 = a.dtype == ElementType::kFloat32;
  if (sm90_kernel && (!hopper || (fp32 && kernel == TensorCoreKernel::kWarpSpecialized))) {
    return cudaErrorNotSupported;
  }
  if (a.q_pos.length == 0 || a.k_pos.length == 0 || a.batch == 0) return cudaSuccess;
  if (fp32) {
    // On Hopper the wgmma kernel (head_dims 64 and 128) unless mma.sync is named.
    if (hopper && kernel != TensorCoreKernel::kMmaSync) {
      return a.head_dim == 64 ? LaunchFlashForwardF32HopperKernel<64>(a, stream)
                              : LaunchFlashForwardF32HopperKernel<128>(a, stream);
    }
    return a.head_dim == 64 ? LaunchFlashForwardF32Kernel<64>(a, stream)
                            : LaunchFlashForwardF32Kernel<128>(a, stream);
  }
  // kAuto on Hopper: the warp-specialized kernel (persistent, so short
  // sequences with many heads or batch rows fill the GPU too).
  TensorCoreKernel chosen = kernel;
  if (chosen == TensorCoreKernel::kAuto) {
    chosen = AutoOverride();
    if (chosen != TensorCoreKernel::kMmaSync && !hopper) chosen = TensorCoreKernel::kAuto;
  }
  if (chosen == TensorCoreKernel::kAuto) {
    chosen = hopper ? TensorCoreKernel::kWarpSpecialized : TensorCoreKernel::kMmaSync;
  }
  return DispatchDtypeHeadDim(a.dtype, a.head_dim, [&](auto dtype, auto head_dim) {
    constexpr ElementType E = decltype(dtype)::value;
    constexpr int D = decltype(head_dim)::value;
    switch (chosen) {
      case TensorCoreKernel::kWarpSpecialized:
        return LaunchFlashForwardWarpSpecializedKernel<E, D>(a, stream);
      case TensorCoreKernel::kHopper:
        return LaunchFlashForwardHopperKernel<E, D>(a, stream);
      default:
        return LaunchFlashForwardKernel<E, D>(a, stream);
    }
  });
}

}  // namespace ringattn::cuda::flash
