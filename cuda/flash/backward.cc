#include "cuda/flash/backward.h"

#include "cuda/flash/dispatch.h"
#include "cuda/flash/forward.h"
#include "cuda/flash/tensor_map.h"

namespace ringattn::cuda::flash {

bool FlashBackwardSupports(const BackwardBlockArgs& args) {
  const ForwardBlockArgs& a = args.task;
  ForwardBlockArgs plain = a;
  plain.out = nullptr;
  // head_dim 256: a wgmma kernel alone (Hopper).
  return (a.head_dim != 256 || HopperDevice()) && FlashForwardSupports(plain) &&
         Aligned16(args.dout) && reinterpret_cast<uintptr_t>(args.dq) % 8 == 0 &&
         reinterpret_cast<uintptr_t>(args.dk) % 8 == 0 &&
         reinterpret_cast<uintptr_t>(args.dv) % 8 == 0;
}

namespace {

// The kernel LaunchFlashBackward(args, kernel) runs.
enum class BackwardKernel {
  kNotSupported,
  kNothing,  // an empty task: no launch
  kF32Hopper,
  kF32MmaSync,
  kColumnSplit,
  kWarpSpecialized,
  kHopper,
  kMmaSync,
};

BackwardKernel ChosenKernel(const BackwardBlockArgs& args, TensorCoreKernel kernel) {
  if (!FlashBackwardSupports(args)) return BackwardKernel::kNotSupported;
  const bool hopper = HopperDevice();
  const bool hopper_kernel =
      kernel == TensorCoreKernel::kHopper || kernel == TensorCoreKernel::kWarpSpecialized;
  if (hopper_kernel && !hopper) return BackwardKernel::kNotSupported;
  // The warp-specialized kernel adds dQ rows (and at head_dim 64 dK and dV
  // rows; at 128 it adds them from registers where they are not aligned)
  // with 16-byte bulk reductions.
  const bool grads_aligned = Aligned16(args.dq) && (args.task.head_dim != 64 ||
                                                    (Aligned16(args.dk) && Aligned16(args.dv)));
  if (kernel == TensorCoreKernel::kWarpSpecialized && !grads_aligned) {
    return BackwardKernel::kNotSupported;
  }
  const ForwardBlockArgs& a = args.task;
  const bool fp32 = a.dtype == ElementType::kFloat32;
  // fp32: the mma.sync kernel, and on Hopper the wgmma one at head_dim 64
  // (kAuto's choice there); head_dim 256: the wgmma kernel alone.
  const bool fp32_wgmma = fp32 && hopper && a.head_dim == 64;
  if ((fp32 && (kernel == TensorCoreKernel::kWarpSpecialized ||
                (kernel == TensorCoreKernel::kHopper && !fp32_wgmma))) ||
      (a.head_dim == 256 && kernel != TensorCoreKernel::kAuto &&
       kernel != TensorCoreKernel::kHopper)) {
    return BackwardKernel::kNotSupported;
  }
  if (a.q_pos.length == 0 || a.k_pos.length == 0 || a.batch == 0) return BackwardKernel::kNothing;
  if (fp32) {
    return fp32_wgmma && kernel != TensorCoreKernel::kMmaSync ? BackwardKernel::kF32Hopper
                                                              : BackwardKernel::kF32MmaSync;
  }
  if (a.head_dim > 128) return BackwardKernel::kColumnSplit;
  // kAuto: the warp-specialized kernel on Hopper (when its gradients are
  // 16-byte aligned), see docs/KERNEL_BENCH.md.
  const bool auto_hopper = kernel == TensorCoreKernel::kAuto && hopper;
  if (kernel == TensorCoreKernel::kWarpSpecialized || (auto_hopper && grads_aligned)) {
    return BackwardKernel::kWarpSpecialized;
  }
  if (kernel == TensorCoreKernel::kHopper || auto_hopper) return BackwardKernel::kHopper;
  return BackwardKernel::kMmaSync;
}

}  // namespace

bool FlashBackwardStoresEveryKeyRow(const BackwardBlockArgs& args, TensorCoreKernel kernel) {
  // The warp-specialized kernel stores a fresh buffer's rows where no other
  // CTA adds to them (no GQA: StoresKeyGrads), zeros for key tiles no query
  // meets; the other kernels add.
  return ChosenKernel(args, kernel) == BackwardKernel::kWarpSpecialized && args.key_grads_fresh &&
         args.task.num_heads == args.task.num_kv_heads;
}

cudaError_t LaunchFlashBackward(const BackwardBlockArgs& args, cudaStream_t stream,
                                TensorCoreKernel kernel) {
  const BackwardKernel chosen = ChosenKernel(args, kernel);
  switch (chosen) {
    case BackwardKernel::kNotSupported:
      return cudaErrorNotSupported;
    case BackwardKernel::kNothing:
      return cudaSuccess;
    case BackwardKernel::kF32Hopper:
      return LaunchFlashBackwardF32HopperKernel<64>(args, stream);
    case BackwardKernel::kF32MmaSync:
      return args.task.head_dim == 64 ? LaunchFlashBackwardF32Kernel<64>(args, stream)
                                      : LaunchFlashBackwardF32Kernel<128>(args, stream);
    default:
      break;
  }
  return DispatchDtypeHeadDim(args.task.dtype, args.task.head_dim, [&](auto dtype, auto head_dim) {
    constexpr ElementType E = decltype(dtype)::value;
    constexpr int D = decltype(head_dim)::value;
    if constexpr (D > 128) {
      return LaunchFlashBackwardColumnSplitKernel<E, D>(args, stream);
    } else {
      if (chosen == BackwardKernel::kWarpSpecialized) {
        return LaunchFlashBackwardWarpSpecializedKernel<E, D>(args, stream);
      }
      if (chosen == BackwardKernel::kHopper) {
        return LaunchFlashBackwardHopperKernel<E, D>(args, stream);
      }
      return LaunchFlashBackwardKernel<E, D>(args, stream);
    }
  });
}

}  // namespace ringattn::cuda::flash
