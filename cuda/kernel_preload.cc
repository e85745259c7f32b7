#include "cuda/kernel_preload.h"

#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_runtime_api.h>

#include <map>
#include <set>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/mutex.h"
#include "core/status_macros.h"

namespace ringattn::cuda {
namespace {

struct Registry {
  Mutex mu;
  std::vector<const void*> anchors ABSL_GUARDED_BY(mu);
};

Registry& Modules() {
  static auto* const registry = new Registry;
  return *registry;
}

// The driver calls PreloadKernels makes, reached through the runtime (no
// link against libcuda), each at the version its signature has.
struct Driver {
  PFN_cuGetErrorName_v6000 error_name = nullptr;
  PFN_cuModuleGetLoadingMode_v11070 loading_mode = nullptr;
  PFN_cuFuncGetModule_v11000 function_module = nullptr;
  PFN_cuModuleGetFunctionCount_v12040 function_count = nullptr;
  PFN_cuModuleEnumerateFunctions_v12040 enumerate_functions = nullptr;
  PFN_cuFuncLoad_v12040 load_function = nullptr;
};

template <typename F>
absl::Status Find(const char* name, int version, F* f) {
  void* p = nullptr;
  cudaDriverEntryPointQueryResult found{};
  const cudaError_t e =
      cudaGetDriverEntryPointByVersion(name, &p, version, cudaEnableDefault, &found);
  if (e != cudaSuccess || found != cudaDriverEntryPointSuccess || p == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("the CUDA driver gave no ", name, " (version ", version,
                     "): ", cudaGetErrorString(e), "; expected a driver of CUDA 12.4 or later"));
  }
  *f = reinterpret_cast<F>(p);
  return absl::OkStatus();
}

absl::StatusOr<Driver> GetDriver() {
  static const absl::StatusOr<Driver>* const driver = [] {
    Driver d;
    absl::Status s = Find("cuGetErrorName", 6000, &d.error_name);
    if (s.ok()) s = Find("cuModuleGetLoadingMode", 11070, &d.loading_mode);
    if (s.ok()) s = Find("cuFuncGetModule", 11000, &d.function_module);
    if (s.ok()) s = Find("cuModuleGetFunctionCount", 12040, &d.function_count);
    if (s.ok()) s = Find("cuModuleEnumerateFunctions", 12040, &d.enumerate_functions);
    if (s.ok()) s = Find("cuFuncLoad", 12040, &d.load_function);
    return s.ok() ? new absl::StatusOr<Driver>(d) : new absl::StatusOr<Driver>(s);
  }();
  return *driver;
}

absl::Status DriverCall(const Driver& d, CUresult r, const char* what) {
  if (r == CUDA_SUCCESS) return absl::OkStatus();
  const char* name = nullptr;
  if (d.error_name(r, &name) != CUDA_SUCCESS || name == nullptr) name = "an unknown error";
  return absl::InternalError(absl::StrCat(what, " failed: ", name, " (", static_cast<int>(r), ")"));
}

absl::Status RuntimeCall(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, " failed: ", cudaGetErrorString(e)));
}

absl::StatusOr<bool> Lazy(const Driver& d) {
  CUmoduleLoadingMode mode{};
  RETURN_IF_ERROR(DriverCall(d, d.loading_mode(&mode), "cuModuleGetLoadingMode"));
  return mode == CU_MODULE_LAZY_LOADING;
}

absl::StatusOr<KernelPreload> Preload(int device) {
  ASSIGN_OR_RETURN(const Driver d, GetDriver());
  KernelPreload preload;
  ASSIGN_OR_RETURN(preload.lazy, Lazy(d));
  if (!preload.lazy) return preload;
  int previous = 0;
  RETURN_IF_ERROR(RuntimeCall(cudaGetDevice(&previous), "cudaGetDevice"));
  RETURN_IF_ERROR(RuntimeCall(cudaSetDevice(device), "cudaSetDevice"));
  absl::Cleanup restore = [previous] { cudaSetDevice(previous); };
  std::vector<const void*> anchors;
  {
    Registry& r = Modules();
    MutexLock lock(&r.mu);
    anchors = r.anchors;
  }
  std::set<CUmodule> seen;
  std::vector<CUfunction> functions;
  for (const void* anchor : anchors) {
    cudaFunction_t f = nullptr;
    RETURN_IF_ERROR(RuntimeCall(cudaGetFuncBySymbol(&f, anchor), "cudaGetFuncBySymbol"));
    CUmodule module = nullptr;
    RETURN_IF_ERROR(DriverCall(d, d.function_module(&module, reinterpret_cast<CUfunction>(f)),
                               "cuFuncGetModule"));
    if (!seen.insert(module).second) continue;
    unsigned count = 0;
    RETURN_IF_ERROR(DriverCall(d, d.function_count(&count, module), "cuModuleGetFunctionCount"));
    functions.assign(count, nullptr);
    RETURN_IF_ERROR(DriverCall(d, d.enumerate_functions(functions.data(), count, module),
                               "cuModuleEnumerateFunctions"));
    for (CUfunction function : functions) {
      RETURN_IF_ERROR(DriverCall(d, d.load_function(function), "cuFuncLoad"));
    }
    ++preload.modules;
    preload.kernels += static_cast<int>(count);
  }
  return preload;
}

}  // namespace

void RegisterKernelModule(const void* anchor) {
  Registry& r = Modules();
  MutexLock lock(&r.mu);
  r.anchors.push_back(anchor);
}

absl::StatusOr<KernelPreload> PreloadKernels(int device) {
  // Devices in turn: a load waits only for its own device's kernels.
  struct Done {
    Mutex mu;
    std::map<int, KernelPreload> devices ABSL_GUARDED_BY(mu);
  };
  static auto* const done = new Done;
  MutexLock lock(&done->mu);
  if (const auto it = done->devices.find(device); it != done->devices.end()) return it->second;
  ASSIGN_OR_RETURN(const KernelPreload preload, Preload(device));
  done->devices.emplace(device, preload);
  return preload;
}

absl::StatusOr<bool> LazyKernelLoading() {
  ASSIGN_OR_RETURN(const Driver d, GetDriver());
  return Lazy(d);
}

int RegisteredKernelModules() {
  Registry& r = Modules();
  MutexLock lock(&r.mu);
  return static_cast<int>(r.anchors.size());
}

}  // namespace ringattn::cuda
