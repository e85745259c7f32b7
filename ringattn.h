// ringattn's public C++ API: exact ring attention, one call per rank.
//
// Every rank of a communicator creates a RingAttention for the same global
// shape and config, gives it its local shard (as the layout shards: ask
// PositionIds() for the global positions, e.g. for rotary embeddings) and
// gets back its shard of O and LSE; Backward gives dQ, dK, dV of its shard.
// Inputs may be dense or packed (qkv-packed, kv-packed): any strides.
// This is the family of ring-flash-attention's functions:
//   ring_flash_attn_func          -> LayoutKind::kRing
//   zigzag_ring_flash_attn_func   -> LayoutKind::kZigzag
//   stripe_flash_attn_func        -> LayoutKind::kStripe
//   llama3_flash_attn_varlen_func -> LayoutKind::kLlama3 (+ cu_seqlens)
//   *_varlen_*                    -> MaskSpec::cu_seqlens (documents of any
//                                    length; or LayoutKind::kBalanced)
//   *_qkvpacked_* / *_kvpacked_*  -> PackedStrides(shape, packing)
// With documents whose lengths do not split evenly, ranks hold a few tokens
// more or less: every local shard has the layout's local_seqlen() rows, and
// rows whose PositionIds() entry is -1 are padding (give anything; their
// outputs and gradients are zero or meaningless and belong to no token).
// The state is fp32 (fp64 for float64 inputs) from the first block to the
// last; bf16/fp16 inputs are upcast per block.
#ifndef RINGATTN_RINGATTN_H_
#define RINGATTN_RINGATTN_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/communicator.h"
#include "core/dtype.h"
#include "core/layout.h"
#include "core/mask.h"
#include "core/ring_driver.h"
#include "core/schedule.h"
#include "core/shapes.h"

namespace ringattn {

// The CPU backend (cpu::CpuRingBackend): the default.
RankBackendFactory CpuBackendFactory();

struct RingAttentionConfig {
  LayoutSpec layout;           // world must equal the communicator's
  MaskSpec mask;               // cu_seqlens: varlen
  double softmax_scale = 0;    // 0: 1 / sqrt(head_dim)
  RankBackendFactory backend;  // empty: CpuBackendFactory()
};

// One rank's local tensor: (local_batch, local_seqlen, heads, head_dim)
// elements of `dtype` at `strides` inside `data`. With `device`, `data` is
// memory of the GPU the CUDA backend runs on, dense (DenseStrides), at an
// address that is a multiple of kDeviceTensorAlignment bytes (the kernels
// read it by the TMA and 16-byte loads; cudaMalloc's and torch's
// allocations are, a view at an odd offset into one may not be).
inline constexpr int kDeviceTensorAlignment = 16;
struct RankTensor {
  DType dtype = DType::kFloat32;
  absl::Span<const uint8_t> data;
  TensorStrides strides;
  bool device = false;
};

struct RankForward {
  std::vector<uint8_t> out;  // dense, like q, in the input dtype
  std::vector<float> lse;    // (local_batch, num_heads, local_seqlen)
  RingRunStats stats;
};

struct RankGrads {
  std::vector<uint8_t> dq, dk, dv;  // dense, like q, k, v, input dtype
  RingRunStats stats;
};

class RingAttention {
 public:
  // Errors: InvalidArgument for an invalid shape, config (layout, mask,
  // scale) or a world that differs from the communicator's.
  static absl::StatusOr<std::unique_ptr<RingAttention>> Create(Communicator& comm,
                                                               const RingAttentionConfig& config,
                                                               const AttentionShape& shape);
  ~RingAttention();

  const Schedule& schedule() const { return *schedule_; }
  // Global positions of this rank's local rows (-1: a padding row).
  std::vector<int64_t> PositionIds() const;

  // Errors: InvalidArgument if a tensor does not fit its buffer or dtypes
  // differ; communication errors (DeadlineExceeded, Aborted).
  absl::StatusOr<RankForward> Forward(const RankTensor& q, const RankTensor& k,
                                      const RankTensor& v);
  // After Forward on this object: gradients for upstream `dout`.
  absl::StatusOr<RankGrads> Backward(const RankTensor& dout);
  // The results into the caller's dense buffers instead of returned
  // vectors, in the memory the tensors are in (GPU tensors, RankTensor::
  // device: the GPU's, enqueued on the CUDA backend's stream;
  // RankBackend::WriteOutputs / WriteGrads): O like q and LSE
  // (local_batch, num_heads, local_seqlen) in fp32; dQ, dK, dV like q, k, v.
  absl::StatusOr<RingRunStats> ForwardInto(const RankTensor& q, const RankTensor& k,
                                           const RankTensor& v, void* out, float* lse);
  absl::StatusOr<RingRunStats> BackwardInto(const RankTensor& dout, void* dq, void* dk, void* dv);
  // For a backward without the Forward here (it ran on another
  // RingAttention of the same problem, which then served other passes, so
  // that only the forward's results stay between the passes): q, k, v and
  // the forward's out (like q) and lse (local_batch, num_heads,
  // local_seqlen), in the memory q is in; then Backward(dout) or
  // BackwardInto. A failure aborts the communicator, like a failed pass.
  absl::Status LoadForward(const RankTensor& q, const RankTensor& k, const RankTensor& v,
                           const RankTensor& out, absl::Span<const float> lse);
  // LoadForward, then Backward(dout).
  absl::StatusOr<RankGrads> Backward(const RankTensor& q, const RankTensor& k, const RankTensor& v,
                                     const RankTensor& out, absl::Span<const float> lse,
                                     const RankTensor& dout);

 private:
  RingAttention(Communicator& comm, AttentionShape shape, double scale,
                std::unique_ptr<Schedule> schedule, RankBackendFactory factory);
  absl::Status Load(const RankTensor& q, const RankTensor& k, const RankTensor& v);
  absl::StatusOr<RingRunStats> RunForward(const RankTensor& q, const RankTensor& k,
                                          const RankTensor& v);
  absl::StatusOr<RingRunStats> RunBackward(const RankTensor& dout);

  Communicator& comm_;
  AttentionShape shape_;
  double softmax_scale_;
  std::unique_ptr<Schedule> schedule_;
  RankBackendFactory factory_;
  std::unique_ptr<RankBackend> backend_;
  // Whether the loaded inputs (and so dO) are GPU memory.
  bool inputs_on_device_ = false;
  // The buffer slot holding the forward's last visiting K/V (-1: none).
  std::optional<KvBuffer> forward_kv_;
};

// Dense local strides for a (local_batch, local_seqlen, heads, head_dim)
// tensor of `dtype`.
RankTensor DenseRankTensor(DType dtype, absl::Span<const uint8_t> data, int64_t local_seqlen,
                           int64_t heads, int64_t head_dim);

// ring_flash_attn_func and its family: one call per rank, forward only.
absl::StatusOr<RankForward> RingFlashAttnFunc(Communicator& comm, LayoutKind layout,
                                              const AttentionShape& shape, const RankTensor& q,
                                              const RankTensor& k, const RankTensor& v,
                                              const MaskSpec& mask = {}, double softmax_scale = 0);

}  // namespace ringattn

#endif  // RINGATTN_RINGATTN_H_
