#include "cuda/flash/backward.h"

#include "cuda/flash/dispatch.h"
#include "cuda/flash/forward.h"

namespace ringattn::cuda::flash {

bool FlashBackwardSupports(const BackwardBlockArgs& args) {
  const ForwardBlockArgs& a = args.task;
  ForwardBlockArgs plain = a;
  plain.out = nullptr;
  return a.dtype != ElementType::kFloat32 && FlashForwardSupports(plain) && a.head_dim <= 128 &&
         Aligned16(args.dout) && reinterpret_cast<uintptr_t>(args.dq) % 8 == 0 &&
         reinterpret_cast<uintptr_t>(args.dk) % 8 == 0 &&
         reinterpret_cast<uintptr_t>(args.dv) % 8 == 0;
}

cudaError_t LaunchFlashBackward(const BackwardBlockArgs& args, cudaStream_t stream,
                                TensorCoreKernel kernel) {
  if (!FlashBackwardSupports(args)) return cudaErrorNotSupported;
  const bool hopper = HopperDevice();
  if (kernel == TensorCoreKernel::kHopper && !hopper) return cudaErrorNotSupported;
  if (kernel == TensorCoreKernel::kWarpSpecialized) return cudaErrorNotSupported;
  const ForwardBlockArgs& a = args.task;
  if (a.q_pos.length == 0 || a.k_pos.length == 0 || a.batch == 0) return cudaSuccess;
  return DispatchDtypeHeadDim(a.dtype, a.head_dim, [&](auto dtype, auto head_dim) {
    constexpr ElementType E = decltype(dtype)::value;
    constexpr int D = decltype(head_dim)::value;
    // kAuto: wgmma on Hopper (H100, s8192 d128 causal: 339 vs 182 TFLOP/s;
    // s16384 d64: 243 vs 148), see docs/KERNEL_BENCH.md.
    const bool use_hopper =
        kernel == TensorCoreKernel::kHopper || (kernel == TensorCoreKernel::kAuto && hopper);
    if constexpr (D > 128) {
      return cudaErrorNotSupported;
    } else {
      return use_hopper ? LaunchFlashBackwardHopperKernel<E, D>(args, stream)
                        : LaunchFlashBackwardKernel<E, D>(args, stream);
    }
  });
}

}  // namespace ringattn::cuda::flash
