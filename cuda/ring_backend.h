// The CUDA backend of the ring: one rank's shard on one GPU. Block tasks
// become kernel launches on the backend's stream (the tensor-core kernels
// where they take the task, else the correctness-first ones); the forward
// merges into the rank's fp32 (O, LSE) state in-kernel, the backward adds
// into fp32 dQ and the travelling fp32 dK/dV.
//
// Ring buffers (Buffer()) are device memory for the device communicators
// (comm/cuda_communicator.h: peer copies, NCCL), which order their transfers
// with the backend's stream by events: calls then only enqueue
// (synchronous = false), and compute overlaps the transfers. With a host
// communicator (comm::ThreadWorld) the buffers are managed memory and every
// call returns with its work finished (synchronous = true).
//
// Memory: every allocation is counted; memory() gives the peak next to the
// theoretical need of an exact ring (see MemoryReport).
#ifndef RINGATTN_CUDA_RING_BACKEND_H_
#define RINGATTN_CUDA_RING_BACKEND_H_

#include <cuda_runtime_api.h>

#include <cstdint>
#include <functional>
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

class GpuTimeline;  // cuda/gpu_timeline.h

struct CudaBackendOptions {
  int device = 0;
  RingBufferMemory memory = RingBufferMemory::kDevice;
  // The compute stream (not owned; a device communicator is bound to it);
  // null: a stream of the backend's own.
  cudaStream_t stream = nullptr;
  // Wait for the stream at the end of every call (host communicators).
  bool synchronous = true;
  // Filled with memory() when the backend is destroyed (not owned).
  struct MemoryReport* final_memory = nullptr;
  // A pass's first launch on its state rows writes them without reading
  // them (ForwardBlockArgs::state_fresh), and a backward step's first launch
  // on rows of its zeroed dK/dV stores them (key_grads_fresh). false: every
  // launch merges / adds (ring_bench --fresh_writes=false: the ring with
  // the older paths, for A/B runs in one binary).
  bool fresh_writes = true;
  // Not owned; set: every call marks it after its work (the call's name,
  // e.g. "a forward step"), and each forward launch after its kernel (ring_bench --timeline).
  GpuTimeline* timeline = nullptr;
};

// Bytes of device memory one rank holds.
struct MemoryReport {
  int64_t peak = 0;  // the most this backend had allocated at once
  // An exact ring's need, from the shapes: local Q, K, V (input dtype),
  // the fp32 state (O, LSE), O in the input dtype while the backend holds
  // it (Out(), SetForwardResult from host memory; WriteOutputs converts the
  // state straight into the caller's buffer), two visiting K/V buffers (the one in hand, the
  // one arriving; all-gather: two gathered head groups). Backward adds dO,
  // D, fp32 dQ and three fp32 dK/dV travel buffers (the partial sum being
  // computed, the one leaving, the one arriving: the finished sum is the
  // rank's dK/dV); all-gather: fp32 dK/dV, the gathered group's dK/dV and
  // its reduced share.
  int64_t theoretical = 0;
};

class CudaRingBackend : public RankBackend {
 public:
  // Copies the inputs to `device`. Errors: InvalidArgument for a bad rank,
  // shape, scale, byte size or dtype (float64 is CPU-only), Unavailable
  // without a GPU, ResourceExhausted when device memory runs out.
  static absl::StatusOr<std::unique_ptr<CudaRingBackend>> Create(
      const Schedule& schedule, int rank, const AttentionShape& shape, double softmax_scale,
      const HostRankInputs& inputs, const CudaBackendOptions& options = {});

  // Starts over for another forward (and backward) on the same inputs,
  // keeping every buffer (benchmarks repeat passes without allocating).
  virtual absl::Status Restart() = 0;
  virtual int device() const = 0;
  virtual cudaStream_t stream() const = 0;
  // Peak and theoretical bytes so far (theoretical: of the passes run).
  virtual MemoryReport memory() const = 0;
};

// The placement of every rank: rank r on device r % devices.
using PlacementFn = std::function<CudaBackendOptions(int rank)>;

// RingAttention's factory for this backend: rank r on device r % devices
// (devices <= 0: every visible GPU), ring buffers in managed memory so that
// the thread communicator (one host thread per rank) moves them. More ranks
// than GPUs are virtual ranks sharing a GPU.
RankBackendFactory CudaBackendFactory(int devices = 0);
// A factory with each rank's options given (device communicators: the
// rank's device and the stream its communicator is bound to).
RankBackendFactory CudaBackendFactory(PlacementFn placement);

}  // namespace ringattn::cuda

#endif  // RINGATTN_CUDA_RING_BACKEND_H_
