#include "cuda/flash/backward.h"

#include "cuda/flash/dispatch.h"
#include "cuda/flash/forward.h"

namespace ringattn::cuda::flash {

bool FlashBackwardSupports(const BackwardBlockArgs& args) {
  const ForwardBlockArgs& a = args.task;
  ForwardBlockArgs plain = a;
  plain.out = nullptr;
  return FlashForwardSupports(plain) && a.head_dim <= 128 && Aligned16(args.dout) &&
         reinterpret_cast<uintptr_t>(args.dq) % 8 == 0 &&
         reinterpret_cast<uintptr_t>(args.dk) % 8 == 0 &&
         reinterpret_cast<uintptr_t>(args.dv) % 8 == 0;
}

cudaError_t LaunchFlashBackward(const BackwardBlockArgs& args, cudaStream_t stream) {
  if (!FlashBackwardSupports(args)) return cudaErrorNotSupported;
  const ForwardBlockArgs& a = args.task;
  if (a.q_pos.length == 0 || a.k_pos.length == 0 || a.batch == 0) return cudaSuccess;
  return DispatchDtypeHeadDim(a.dtype, a.head_dim, [&](auto dtype, auto head_dim) {
    if constexpr (decltype(head_dim)::value > 128) {
      return cudaErrorNotSupported;
    } else {
      return LaunchFlashBackwardKernel<decltype(dtype)::value, decltype(head_dim)::value>(
          args, stream);
    }
  });
}

}  // namespace ringattn::cuda::flash

namespace ringattn::cuda {

cudaError_t LaunchBackward(const BackwardBlockArgs& args, cudaStream_t stream) {
  if (flash::FlashBackwardSupports(args)) return flash::LaunchFlashBackward(args, stream);
  return LaunchBackwardBlock(args, stream);
}

}  // namespace ringattn::cuda
