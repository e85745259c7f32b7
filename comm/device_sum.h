// The reduce-scatter's sum on the device: dst[j] = sum over i in [0, parts)
// of src[i * n + j], in order i = 0, 1, ... (deterministic).
#ifndef RINGATTN_COMM_DEVICE_SUM_H_
#define RINGATTN_COMM_DEVICE_SUM_H_

#include <cuda_runtime_api.h>

#include <cstdint>

namespace ringattn::comm {

cudaError_t LaunchSumParts(float* dst, const float* src, int parts, int64_t n, cudaStream_t stream);
cudaError_t LaunchSumParts(double* dst, const double* src, int parts, int64_t n,
                           cudaStream_t stream);

}  // namespace ringattn::comm

#endif  // RINGATTN_COMM_DEVICE_SUM_H_
