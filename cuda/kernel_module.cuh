// Force-included in every .cu that cuda_library compiles (build_defs.bzl:
// nvcc -include): registers the file's CUDA module (one per .cu: every
// kernel the file instantiates) for PreloadKernels (cuda/kernel_preload.h),
// through a kernel of its own that nothing launches.
#ifndef RINGATTN_CUDA_KERNEL_MODULE_CUH_
#define RINGATTN_CUDA_KERNEL_MODULE_CUH_

namespace ringattn::cuda {

// Defined in cuda/kernel_preload.cc (declared here so that nvcc compiles no
// Abseil header).
void RegisterKernelModule(const void* anchor);

namespace {

// This translation unit's kernel: its module is the file's.
__global__ void KernelModuleAnchor() {}

[[maybe_unused]] const bool kKernelModuleRegistered =
    (RegisterKernelModule(reinterpret_cast<const void*>(&KernelModuleAnchor)), true);

}  // namespace
}  // namespace ringattn::cuda

#endif  // RINGATTN_CUDA_KERNEL_MODULE_CUH_
