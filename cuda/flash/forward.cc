#include "cuda/flash/forward.h"

#include "cuda/flash/dispatch.h"

namespace ringattn::cuda::flash {

bool FlashForwardSupports(const ForwardBlockArgs& a) {
  return (a.dtype == ElementType::kFloat16 || a.dtype == ElementType::kBFloat16) &&
         (a.head_dim == 64 || a.head_dim == 128 || a.head_dim == 256) &&
         a.num_kv_heads >= 1 && a.num_heads % a.num_kv_heads == 0 &&
         a.kv_head_begin >= 0 && a.kv_head_begin < a.kv_head_end &&
         a.kv_head_end <= a.num_kv_heads && Aligned16(a.q) && Aligned16(a.k) &&
         Aligned16(a.v) && Aligned16(a.out) && Aligned16(a.state_o);
}

bool HopperDevice() {
  int device = 0, major = 0, minor = 0;
  return cudaGetDevice(&device) == cudaSuccess &&
         cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) ==
             cudaSuccess &&
         cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) ==
             cudaSuccess &&
         major == 9 && minor == 0;
}

cudaError_t LaunchFlashForward(const ForwardBlockArgs& a, cudaStream_t stream,
                               ForwardKernel kernel) {
  if (!FlashForwardSupports(a)) return cudaErrorNotSupported;
  const bool hopper = HopperDevice();
  if (kernel == ForwardKernel::kHopper && !hopper) return cudaErrorNotSupported;
  if (a.q_pos.length == 0 || a.k_pos.length == 0 || a.batch == 0) return cudaSuccess;
  const bool use_hopper =
      kernel == ForwardKernel::kHopper || (kernel == ForwardKernel::kAuto && hopper);
  return DispatchDtypeHeadDim(a.dtype, a.head_dim, [&](auto dtype, auto head_dim) {
    constexpr ElementType E = decltype(dtype)::value;
    constexpr int D = decltype(head_dim)::value;
    return use_hopper ? LaunchFlashForwardHopperKernel<E, D>(a, stream)
                      : LaunchFlashForwardKernel<E, D>(a, stream);
  });
}

}  // namespace ringattn::cuda::flash

namespace ringattn::cuda {

cudaError_t LaunchForward(const ForwardBlockArgs& a, cudaStream_t stream) {
  if (flash::FlashForwardSupports(a)) return flash::LaunchFlashForward(a, stream);
  return LaunchForwardBlock(a, stream);
}

}  // namespace ringattn::cuda
