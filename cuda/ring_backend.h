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

using HostRankInputs = ::ringattn::RankInputs;

enum class RingBufferMemory { kDevice, kManaged };

class CudaRingBackend : public RankBackend {
 public:
  // Copies the inputs to `device`. Errors: InvalidArgument for a bad rank,
  // shape, scale, byte size or dtype (float64 is CPU-only), Unavailable
  // without a GPU, ResourceExhausted when device memory runs out.
  static absl::StatusOr<std::unique_ptr<CudaRingBackend>> Create(
      const Schedule& schedule, int rank, const AttentionShape& shape,
      double softmax_scale, const HostRankInputs& inputs,
      RingBufferMemory memory = RingBufferMemory::kDevice, int device = 0);

  // RankBackend. SetForwardResult is Unimplemented: the CUDA backend runs
  // the backward after its own forward (its fp32 O and LSE stay on the GPU).
};

// RingAttention's factory for this backend: rank r on device r % devices
// (devices <= 0: every visible GPU), ring buffers in managed memory so that
// the thread communicator (one host thread per rank) moves them. More ranks
// than GPUs are virtual ranks sharing a GPU.
RankBackendFactory CudaBackendFactory(int devices = 0);

}  // namespace ringattn::cuda

#endif  // RINGATTN_CUDA_RING_BACKEND_H_
