// The CUDA backend of the ring: one rank's shard on one GPU. Block tasks
// become kernel launches on the backend's stream (the tensor-core kernels
// where they take the task, else the correctness-first ones); the forward
// merges into the rank's fp32 (O, LSE) state in-kernel, the backward adds
// into fp32 dQ and the travelling fp32 dK/dV.
//
// Ring buffers (Buffer()) are device memory, or managed memory so that a
// host-side communicator (comm::ThreadWorld) can move them: that is how W
// virtual ranks run on one GPU, one host thread each. Every call returns
// with its work finished (the stream synchronized), so a communicator may
// read or write the buffers right after it; overlapping compute with NCCL
// transfers through events is the NCCL communicator's job (issue #7).
#ifndef RINGATTN_CUDA_RING_BACKEND_H_
#define RINGATTN_CUDA_RING_BACKEND_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/dtype.h"
#include "core/ring_driver.h"
#include "core/schedule.h"
#include "core/shapes.h"

namespace ringattn::cuda {

// One rank's dense local tensors in host memory, (local_batch,
// local_seqlen, heads, head_dim) in `dtype`: what Layout::Shard gives.
struct HostRankInputs {
  DType dtype = DType::kFloat32;
  absl::Span<const uint8_t> q;
  absl::Span<const uint8_t> k;
  absl::Span<const uint8_t> v;
};

enum class RingBufferMemory { kDevice, kManaged };

class CudaRingBackend : public RingBackend {
 public:
  // Copies the inputs to `device`. Errors: InvalidArgument for a bad rank,
  // shape, scale, byte size or dtype (float64 is CPU-only), Unavailable
  // without a GPU, ResourceExhausted when device memory runs out.
  static absl::StatusOr<std::unique_ptr<CudaRingBackend>> Create(
      const Schedule& schedule, int rank, const AttentionShape& shape,
      double softmax_scale, const HostRankInputs& inputs,
      RingBufferMemory memory = RingBufferMemory::kDevice, int device = 0);

  // dO (like q, input dtype), required before the backward pass.
  virtual absl::Status SetDout(absl::Span<const uint8_t> dout) = 0;

  // After the forward: O in the input dtype and LSE (local_batch,
  // num_heads, local_seqlen), copied to the host.
  virtual absl::StatusOr<std::vector<uint8_t>> Out() = 0;
  virtual absl::StatusOr<std::vector<float>> Lse() = 0;
  // After the backward: dQ, dK, dV in the input dtype.
  virtual absl::StatusOr<std::vector<uint8_t>> Dq() = 0;
  virtual absl::StatusOr<std::vector<uint8_t>> Dk() = 0;
  virtual absl::StatusOr<std::vector<uint8_t>> Dv() = 0;
};

}  // namespace ringattn::cuda

#endif  // RINGATTN_CUDA_RING_BACKEND_H_
