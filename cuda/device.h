// CUDA device discovery with absl::Status errors.
#ifndef RINGATTN_CUDA_DEVICE_H_
#define RINGATTN_CUDA_DEVICE_H_

#include <cuda_runtime_api.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ringattn::cuda {

// Returns the number of visible CUDA devices.
// Errors: Unavailable with the CUDA runtime's reason when there is no driver
// or no device (GPU tests skip on it).
absl::StatusOr<int> DeviceCount();

// What CUDA knows of pointer `p`: its attributes, or type
// cudaMemoryTypeUnregistered (host memory) for a pointer it does not know
// (that error is cleared, so a later cudaGetLastError does not see it).
cudaPointerAttributes PointerAttributes(const void* p);

// Converts a CUDA runtime error into a Status naming `what` was attempted.
absl::Status CudaStatus(cudaError_t error, const char* what);

}  // namespace ringattn::cuda

#endif  // RINGATTN_CUDA_DEVICE_H_
